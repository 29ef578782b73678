"""The evaluator's fork server: a trusted process with torch, Triton and the evaluator already
imported, from which every judge is forked (each judge then forks its harness processes), so an
evaluation costs a fork instead of a Python start and a torch import.

It never runs task or candidate code and never holds a secret: what a judge learns (the answer
key, the salt) arrives after its fork. It is started isolated (`python -I`: no current folder,
no PYTHONPATH, no user site) and is not dumpable, and candidates cannot signal it (their seccomp
filter only lets them name processes newer than themselves). It serves one caller process over
a Unix socket: each request carries the judge's pipes as file descriptors; the answer is the
judge's pid; when a judge ends, its wait status is written to the status pipe of that request.
The server exits, killing its judges and every orphan of theirs, when the caller's end of the
socket closes.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket

from kerneldisc.evaluate.link import JUDGE_STATUS

REQUEST_FDS = 5  # command (read end), reply (write end), stdout, stderr, status (write ends)


def main(sock_fd: int) -> None:
    # One intra-op thread, for the reference and the candidate alike (a kernel's thread count
    # must not change its reward), before torch reads the setting.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    import torch

    torch.set_num_threads(1)
    _preload()
    from kerneldisc.evaluate.sandbox import become_subreaper, not_dumpable

    not_dumpable()
    # A judge killed from outside (its caller's deadline, the OOM killer) leaves its harness
    # processes' helpers orphaned: they come here, and are killed, instead of running on.
    become_subreaper()
    sock = socket.socket(fileno=sock_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    judges: dict[int, int] = {}  # pid -> status pipe
    sock.sendall(b"ready\n")
    while True:
        ready, _, _ = select.select([sock, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
            _reap(judges)
        if sock in ready:
            try:
                message, fds, _, _ = socket.recv_fds(sock, 1 << 16, REQUEST_FDS)
            except OSError:
                message, fds = b"", []
            if not message:
                break
            pid = _spawn(json.loads(message), fds, sock, wake_r, wake_w)
            for fd in fds[:-1]:
                os.close(fd)
            judges[pid] = fds[-1]
            sock.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    # The caller is gone: its judges, and whatever of their harnesses is reparented here as they
    # die (a stopped helper included), go with it.
    from kerneldisc.evaluate.sandbox import kill_orphans

    kill_orphans()
    os._exit(0)


def _spawn(request: dict, fds: list[int], sock: socket.socket, wake_r: int, wake_w: int) -> int:
    cmd_r, reply_w, out_w, err_w, status_w = fds
    pid = os.fork()
    if pid:
        return pid
    try:  # the judge: its own pipes only, default signal handling, then judge.main
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        from kerneldisc.evaluate.sandbox import keep_only_fds

        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        keep_only_fds({0, 1, 2, cmd_r, reply_w})
        import kerneldisc.evaluate.judge as judge

        judge.main(cmd_r, reply_w)
    finally:
        os._exit(70)


def _reap(judges: dict[int, int]) -> None:
    from kerneldisc.evaluate.sandbox import children

    for pid in children(os.getpid()):
        if pid not in judges:  # an orphan of a judge that died: nothing of ours
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        fd = judges.pop(pid, None)
        if fd is not None:
            try:
                os.write(fd, JUDGE_STATUS.pack(status))
            except OSError:
                pass
            os.close(fd)


def _preload() -> None:
    """Import, before any judge is forked, every module a judge or harness process needs, so none
    is imported later from files a candidate could have changed meanwhile."""
    import importlib

    # Triton is loaded to compile (a GPU harness runs it so; a CPU harness switches to the
    # interpreter, see triton_mode.py), and its GPU backend warmed once.
    saved = os.environ.pop("TRITON_INTERPRET", None)
    try:
        for name in (
            "kerneldisc.evaluate.judge", "kerneldisc.evaluate.harness", "kerneldisc.evaluate.controller",
            "kerneldisc.evaluate.arena", "kerneldisc.evaluate.memread", "kerneldisc.evaluate.check",
            "kerneldisc.evaluate.problem", "kerneldisc.evaluate.protocol", "kerneldisc.evaluate.verdict",
            "kerneldisc.evaluate.device", "kerneldisc.evaluate.seccomp", "kerneldisc.evaluate.tripwire",
            "kerneldisc.evaluate.link", "kerneldisc.evaluate.cuda_ipc", "kerneldisc.evaluate.uids", "kerneldisc.evaluate.cgroups", "kerneldisc.kernelbench",
            "kerneldisc.evaluate.gpu_compile", "kerneldisc.evaluate.triton_mode", "kerneldisc.cache",
            "kerneldisc.task", "kerneldisc.errors", "torch.nn.functional", "torch.utils._device",
            "torch.utils._python_dispatch", "torch.overrides", "triton", "triton.language",
            "triton.runtime.autotuner", "numpy",
        ):  # fmt: skip
            try:
                importlib.import_module(name)
            except ImportError:
                continue
        try:
            from kerneldisc.evaluate.gpu_compile import warm

            warm()
        except Exception:  # noqa: BLE001,S110 - no GPU backend here: each compile then starts cold
            pass
    finally:
        if saved is not None:
            os.environ["TRITON_INTERPRET"] = saved
