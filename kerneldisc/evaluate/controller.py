"""The judge's handle on one harness process (the candidate's, or the reference's): forked from
the judge, stopped whenever it is not serving a call, and charged for the CPU it uses.

Between two calls every process of the harness's group is stopped (SIGSTOP to the group,
confirmed from the kernel: the leader's stop is reported to its parent, the judge, once every
thread of it has stopped; other members are read from /proc). A call is: send the command,
read the group's CPU time, SIGCONT, wait for the reply, SIGSTOP, read the CPU time again. What
the group ran in between (the kernel's accounting of every thread and process in it) is the
call's cost, so work started before the reply and finished after it is charged as well.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from kerneldisc.evaluate.cgroups import HarnessGroup
from kerneldisc.evaluate.link import LineReader, MalformedLine, Outbox
from kerneldisc.evaluate.memread import ProcessMemory
from kerneldisc.evaluate.sandbox import (
    ChildDied,
    ChildTimeout,
    Tail,
    children,
    close_fds,
    descendants,
    describe_status,
    stat_fields,
    state,
    threads,
)

MAX_MESSAGE_BYTES = 1 << 22
STOP_DEADLINE_S = 5.0  # a group whose threads do not all stop within this is killed
_TICK_NS = 10**9 // os.sysconf("SC_CLK_TCK")
_STOPPED = (b"T", b"t", b"Z", b"X")
# Fixed descriptor numbers in a harness process (see HarnessProcess.fork).
CMD_FD, REPLY_FD, ARENA_FD = 3, 4, 5


class HarnessProcess:
    def __init__(self, pid: int, cmd_w: int, reply_r: int, out_r: int, err_r: int, tail_bytes: int,
                 budget_s: float, role: str) -> None:  # fmt: skip
        self.pid = pid
        self.role = role
        self._cmd = cmd_w
        self._outbox = Outbox(cmd_w)  # never a blocking write to a process that may be stopped
        self._reply = reply_r
        self._reader = LineReader(reply_r, MAX_MESSAGE_BYTES)
        self._out_r, self._err_r, self._tail_bytes = out_r, err_r, tail_bytes
        self.stdout: Tail | None = None
        self.stderr: Tail | None = None
        self.budget_s = budget_s
        self.used_s = 0.0
        self.status: int | None = None  # wait status once reaped
        self.frozen = False
        self.stopped_itself = False
        self.violation = ""  # why the judge killed it, when that is the harness's doing
        self.timed_out = False
        self.memory: ProcessMemory | None = None
        self.reaped_cpu_ns = 0  # CPU time of group members the judge reaped itself (orphans)
        self.others: frozenset[int] = frozenset()  # the judge's other children: never members
        self._members: list[int] | None = None  # as enumerated at the last freeze
        self.group: HarnessGroup | None = None  # exact CPU accounting where a cgroup could be made
        # Without a group, reaped children's CPU moves /proc's counters in whole ticks: what they
        # move in an uncharged window is charged to the next call, so no window is a free place
        # to set the counters' phase (the error is then one tick per evaluation, not per call).
        self._carried_ns = 0

    # --- birth ---------------------------------------------------------------------------
    @classmethod
    def fork(cls, body: Callable[[], None], arena_fd: int, tail_bytes: int, budget_s: float, role: str,
             read_memory: bool, group: HarnessGroup | None = None) -> HarnessProcess:  # fmt: skip
        """Fork a harness process that runs `body` (which never returns) with its command pipe on
        fd 3, its reply pipe on fd 4, the input arena on fd 5 and stdout/stderr on pipes. The
        judge must be single-threaded here (fork keeps only the calling thread)."""
        from kerneldisc.evaluate.sandbox import keep_only_fds

        cmd_r, cmd_w = os.pipe()
        reply_r, reply_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the harness process: only its own descriptors, then `body`
            try:
                null = os.open(os.devnull, os.O_RDONLY)
                for src, dst in ((null, 0), (out_w, 1), (err_w, 2)):
                    os.dup2(src, dst)
                # Through fresh numbers first, so no dup2 overwrites a source still needed.
                moved = [os.dup(fd) for fd in (cmd_r, reply_w, arena_fd)]
                for src, dst in zip(moved, (CMD_FD, REPLY_FD, ARENA_FD), strict=True):
                    os.dup2(src, dst)
                keep_only_fds({0, 1, 2, CMD_FD, REPLY_FD, ARENA_FD})
                body()
            finally:
                os._exit(70)
        for fd in (cmd_r, reply_w, out_w, err_w):
            os.close(fd)
        proc = cls(pid, cmd_w, reply_r, out_r, err_r, tail_bytes, budget_s, role)
        # The harness makes itself readable, says so, and waits; the judge opens its memory and
        # maps (an open descriptor keeps working once the harness is no longer dumpable).
        hello = proc.recv(time.monotonic() + 60.0)
        if hello.get("event") != "hello":
            raise ChildDied()
        if read_memory:
            proc.memory = ProcessMemory(pid)
        if group is not None:  # before it runs anything of the candidate's; its children follow
            group.add(pid)
            proc.group = group
        proc.send({"op": "proceed"})
        return proc

    def start_tails(self) -> None:
        """Drain stdout/stderr on threads (once every fork of the judge is done)."""
        self.stdout = Tail(self._out_r, self._tail_bytes)
        self.stderr = Tail(self._err_r, self._tail_bytes)

    # --- messages ------------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        """Queue one command; what the pipe cannot take now goes while the reply is awaited."""
        self._outbox.put(json.dumps(message).encode() + b"\n")

    def recv(self, deadline: float) -> dict[str, Any]:
        """The next reply line; ChildDied when the process is gone, stopped itself or sent
        something that is not a reply; ChildTimeout (after killing the group) at `deadline`."""
        try:
            return self._reader.read(deadline, idle=self._check_alive, outbox=self._outbox)
        except ChildTimeout:
            self.timed_out = True
            self.kill()
            raise
        except MalformedLine:
            self.violation = "sent the judge a reply that is not a line of the harness's protocol"
            self.kill()
            raise
        except ChildDied:
            if self.status is None and not self.stopped_itself:
                self._reap(wait_s=2.0)
            if self.status is None:
                self.kill()
            raise

    def _check_alive(self) -> None:
        """Between polls: a harness that stopped itself (SIGSTOP) can never answer; one that died
        has its status taken."""
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG | os.WUNTRACED)
        except ChildProcessError:
            raise ChildDied() from None
        if pid == 0:
            return
        if os.WIFSTOPPED(status):
            self.stopped_itself = True
            self.kill()
            raise ChildDied()
        self.status = status
        raise ChildDied()

    # --- running and stopping ------------------------------------------------------------
    def run(self, message: dict[str, Any] | None, meanwhile: Callable[[], None] | None = None
            ) -> tuple[dict[str, Any], int, float]:  # fmt: skip
        """Serve one command with the group running: (reply, CPU ns the group used, wall s until
        the reply). `meanwhile` runs in the judge while the harness works (untimed calls only).
        The group is stopped again before this returns, whatever happens."""
        if message is not None:
            self.send(message)
        return self._window(meanwhile, charged=True)

    def call(self, prepare: dict[str, Any], write_inputs: Callable[[], None],
             meanwhile: Callable[[], None] | None = None) -> tuple[dict[str, Any], int, float]:  # fmt: skip
        """One call of the kernel, in two windows. In the first (not charged) the harness reads
        the command and builds its views of the arena, which still holds the last call's values,
        and says it is prepared. With the group stopped again, `write_inputs` puts this call's
        values into the arena; then the second window, charged, is the kernel itself: from the
        one byte that lets the harness go to its reply. So the harness's own per-call work is
        mostly outside the charge, and whatever the candidate does in the first window sees no
        input of this call."""
        self.send(prepare)
        prepared, _, _ = self._window(None, charged=False)
        if prepared.get("event") != "prepared":
            # A failure the harness reports before the call; anything else is not our harness.
            return (
                ({**prepared, "ok": False} if prepared.get("ok") is False else {"ok": "not prepared"}),
                0,
                0.0,
            )
        write_inputs()
        self._outbox.put(b"g")
        return self._window(meanwhile, charged=True)

    def _window(
        self, meanwhile: Callable[[], None] | None, charged: bool
    ) -> tuple[dict[str, Any], int, float]:
        before = self.cpu_ns(self._members) if charged else self._children_ns(self._members)
        started = time.monotonic()
        self.cont()
        try:
            if meanwhile is not None:
                meanwhile()
            reply = self.recv(started + max(self.budget_s - self.used_s, 0.0))
            wall = time.monotonic() - started
        finally:
            self.used_s += time.monotonic() - started
            if self.status is None or self.members():
                self.freeze()
        if not charged:
            self._carried_ns += max(self._children_ns(self._members) - before, 0)
            return reply, 0, wall
        used, self._carried_ns = max(self.cpu_ns(self._members) - before, 0) + self._carried_ns, 0
        return reply, used, wall

    def wait_ready(self) -> dict[str, Any]:
        """The first message after start-up (the candidate imported, or failed to), then frozen."""
        return self.run(None)[0]

    def cont(self) -> None:
        self.frozen = False
        self._members = None
        try:
            os.killpg(self.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def freeze(self) -> None:
        """Stop every process of the group and confirm that every thread of each has stopped (or
        is dead): the leader's from the kernel's stop report to its parent (sent once every
        thread of it has stopped), any other member's from /proc."""
        try:
            os.killpg(self.pid, signal.SIGSTOP)
        except ProcessLookupError:
            return
        started = time.monotonic()
        deadline = started + STOP_DEADLINE_S
        leader_stopped = False
        while True:
            if self.status is None and not leader_stopped:
                pid, status = os.waitpid(self.pid, os.WNOHANG | os.WUNTRACED)
                if pid and os.WIFSTOPPED(status):
                    leader_stopped = True
                elif pid:
                    self.status = status
            if leader_stopped or self.status is not None:
                members = self.members()
                if self._all_stopped([m for m in members if m != self.pid]):
                    self.frozen = True
                    self._members = members  # a stopped group cannot fork: the list stays exact
                    if state(self.pid) == b"Z" and any(t != self.pid for t in threads(self.pid)):
                        # Its main thread is gone but others run on: that is no harness of ours.
                        self.violation = (
                            "the harness's main thread exited while other threads of its process ran on"
                        )
                        self.kill()
                        raise ChildDied()
                    return
            now = time.monotonic()
            if now > deadline:
                self.kill()
                raise ChildDied()
            # Stopping takes microseconds: yield at first (the harness runs on another CPU),
            # sleep once it takes longer (a loaded machine, a thread in uninterruptible sleep).
            if now - started < 2e-3:
                os.sched_yield()
            else:
                time.sleep(1e-3)

    @staticmethod
    def _all_stopped(members: list[int]) -> bool:
        for pid in members:
            for tid in threads(pid):
                fields = stat_fields(pid, tid)
                if fields is not None and fields[0] not in _STOPPED:
                    return False
        return True

    def members(self) -> list[int]:
        """The processes of this harness: its own and everything below it, including helpers it
        orphaned (the judge is their subreaper; they are reparented to its main thread, which
        also forked the harness), but never the judge's other harness processes."""
        me = os.getpid()
        mine = children(me, thread=me)
        roots = [self.pid] + [p for p in mine if p != self.pid and p not in self.others]
        return descendants(roots)

    def _children_ns(self, members: list[int] | None) -> int:
        """What the members' reaped children used, as /proc counts it (whole ticks); 0 with a
        group, whose count is exact and covers every window."""
        if self.group is not None:
            return 0
        total = 0
        for pid in members if members is not None else self.members():
            fields = stat_fields(pid)
            if fields is not None:
                total += (int(fields[13]) + int(fields[14])) * _TICK_NS
        return total

    def cpu_ns(self, members: list[int] | None = None) -> int:
        """CPU time of every process of the group, read from the kernel's accounting: the cgroup's
        count where there is one; else each live process's CPU clock, what their reaped children
        used, and orphans the judge reaped."""
        if self.group is not None:
            self._reap_orphans(members)
            return self.group.cpu_ns()
        total = self.reaped_cpu_ns
        for pid in members if members is not None else self.members():
            fields = stat_fields(pid)
            if fields is None:
                continue
            if (
                pid != self.pid
                and fields[0] == b"Z"
                and int(fields[1]) == os.getpid()
                and self._reap_orphan(pid)
            ):
                continue
            try:
                total += time.clock_gettime_ns((~pid << 3) | 2)  # the process's CPU clock
            except OSError:
                total += (int(fields[11]) + int(fields[12])) * _TICK_NS  # utime + stime
            total += (int(fields[13]) + int(fields[14])) * _TICK_NS  # reaped children
        return total

    def _reap_orphans(self, members: list[int] | None) -> None:
        for pid in members if members is not None else self.members():
            fields = stat_fields(pid)
            if pid != self.pid and fields is not None and fields[0] == b"Z" and int(fields[1]) == os.getpid():
                self._reap_orphan(pid)

    def _reap_orphan(self, pid: int) -> bool:
        """Reap an orphan that has ended and keep its CPU time; False when it has not ended (a
        zombie main thread whose other threads still run: its clock is read like any member's)."""
        try:
            reaped, _, usage = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:
            return False
        if not reaped:
            return False
        self.reaped_cpu_ns += int((usage.ru_utime + usage.ru_stime) * 1e9)
        return True

    # --- the end -------------------------------------------------------------------------
    def alive(self) -> bool:
        if self.status is not None:
            return False
        return state(self.pid) not in (None, b"Z", b"X")

    def _reap(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while self.status is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return
            if pid:
                self.status = status
                return
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)

    def kill(self) -> None:
        for target in (
            lambda: os.killpg(self.pid, signal.SIGKILL),
            lambda: os.kill(self.pid, signal.SIGKILL),
        ):
            try:
                target()
            except (ProcessLookupError, PermissionError):
                pass
        self._reap(wait_s=5.0)

    def close(self) -> None:
        """Kill whatever is left of the group and release the pipes."""
        if self.status is None:
            self.kill()
        else:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        close_fds(self._cmd, self._reply)
        if self.memory is not None:
            self.memory.close()
        if self.stdout is None:  # never drained: close the read ends ourselves
            close_fds(self._out_r, self._err_r)

    def exit_description(self) -> str:
        if self.violation:
            return f"was killed: {self.violation}"
        if self.stopped_itself:
            return "was stopped (SIGSTOP) and killed"
        if self.status is None and self.alive():
            return "still running"
        if self.status is None:
            self._reap(wait_s=1.0)
        return describe_status(self.status)

    def faulted(self) -> bool:
        """Killed by a memory fault (SIGSEGV or SIGBUS)."""
        return (
            self.status is not None
            and os.WIFSIGNALED(self.status)
            and os.WTERMSIG(self.status) in (signal.SIGSEGV, signal.SIGBUS)
        )

    def tails(self, limit: int) -> tuple[str, str]:
        if self.stdout is None or self.stderr is None:
            return "", ""
        return self.stdout.text()[-limit:], self.stderr.text()[-limit:]
