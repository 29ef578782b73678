"""The evaluator's trust boundary piece by piece, on real processes: the seccomp filter, the
arena the judge writes inputs into, reading a stopped process's memory, the judge's control and
CPU accounting of a harness process group, the tripwire, and a task's pinned sources."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

from kerneldisc.evaluate import seccomp
from kerneldisc.evaluate.arena import CpuArena, LayoutError, plan, views
from kerneldisc.evaluate.controller import HarnessProcess
from kerneldisc.evaluate.memread import MemoryReadError, ProcessMemory, overlaps
from kerneldisc.evaluate.sandbox import Limits, children, stat_fields, threads
from kerneldisc.evaluate.tripwire import Tripwire


def _in_child(body) -> dict:
    """Run `body` in a forked child and return the JSON-able dict it produces."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            result = body()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            result = {"error": repr(exc)}
        os.write(w, json.dumps(result).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def _errno_of(fn) -> int:
    try:
        fn()
        return 0
    except OSError as exc:
        return exc.errno


# --- seccomp ---------------------------------------------------------------------------------


def test_with_exact_accounting_sigchld_may_be_ignored_and_without_it_may_not():
    import signal as sig

    def body(lock):
        def run():
            os.setsid()
            seccomp.install(os.getpid(), lock_sigchld=lock)
            return {"ignore": _errno_of(lambda: sig.signal(sig.SIGCHLD, sig.SIG_IGN))}

        return run

    assert _in_child(body(True))["ignore"] == 1
    assert _in_child(body(False))["ignore"] == 0


def test_non_contiguous_outputs_are_made_contiguous_by_the_harness_inside_the_call():
    """The judge reads plain bytes: a transposed view would have it do the transposition."""
    from kerneldisc.evaluate.harness import describe

    x = torch.arange(12.0).view(3, 4)
    keep: list = []
    meta = describe(x.t(), "cpu", keep)["tensors"][0]
    assert meta["shape"] == [4, 3] and meta["stride"] == [3, 1]
    assert len(keep) == 1 and keep[0].data_ptr() == meta["ptr"] and torch.equal(keep[0], x.t())
    kept_plain: list = []
    assert describe(x, "cpu", kept_plain)["tensors"][0]["ptr"] == x.data_ptr() and not kept_plain


def test_the_filter_is_built_for_both_architectures_and_refuses_others():
    for arch in ("x86_64", "aarch64"):
        program = seccomp.build(1234, arch)
        assert program and len(program) % 8 == 0
    assert seccomp.build(1234, "sparc64") is None


def test_the_filter_closes_every_way_out_and_leaves_a_kernel_its_tools():
    def body():
        os.setsid()
        installed = seccomp.install(os.getpid())
        libc = ctypes.CDLL(None, use_errno=True)
        result = {"installed": installed, "active": seccomp.active(os.getpid())}
        group = os.getpgid(0)
        result["setsid"] = _errno_of(os.setsid)
        result["setpgid"] = _errno_of(lambda: os.setpgid(0, 0))
        result["still_in_group"] = os.getpgid(0) == group and os.getsid(0) == group
        import subprocess

        spawned = subprocess.run(["sh", "-c", "ps -o pgid= -p $$"], start_new_session=True,
                                 capture_output=True, text=True, check=True)  # fmt: skip
        result["child_in_group"] = int(spawned.stdout) == group
        cpus = os.sched_getaffinity(0)
        result["affinity"] = _errno_of(lambda: os.sched_setaffinity(0, set(range(os.cpu_count() or 1))))
        result["affinity_unchanged"] = os.sched_getaffinity(0) == cpus
        result["kill_parent"] = _errno_of(lambda: os.kill(os.getppid(), 0))
        result["kill_everyone"] = _errno_of(lambda: os.kill(-1, 0))
        result["kill_self_and_group"] = _errno_of(
            lambda: (os.kill(os.getpid(), 0), os.killpg(os.getpid(), 0))
        )
        result["dumpable"] = libc.prctl(4, 1, 0, 0, 0)
        result["io_uring"] = libc.syscall(425, 8, ctypes.create_string_buffer(120))
        result["new_user_namespace"] = libc.unshare(0x10000000)
        parent = os.open(f"/proc/{os.getppid()}", os.O_RDONLY | os.O_DIRECTORY)
        result["pidfd_send_signal"] = _errno_of(lambda: signal.pidfd_send_signal(parent, 0))
        import signal as sig

        result["sigchld_ignored"] = _errno_of(lambda: sig.signal(sig.SIGCHLD, sig.SIG_IGN))
        result["sigchld_asked"] = sig.getsignal(sig.SIGCHLD) == sig.SIG_DFL  # asking stays allowed
        result["sigusr1_handler"] = _errno_of(lambda: sig.signal(sig.SIGUSR1, lambda *a: None))
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        child = os.fork()
        if child == 0:
            os._exit(7)
        result["fork_and_wait"] = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
        result["torch"] = float(torch.ones(3).sum())
        return result

    r = _in_child(body)
    assert r["installed"] and r["active"]
    for key in ("kill_parent", "kill_everyone", "pidfd_send_signal"):
        assert r[key] == 1, key  # EPERM
    assert r["affinity"] == 0 and r["affinity_unchanged"]  # pretended, like leaving the group
    # Leaving the group is pretended: the calls succeed, nothing leaves (ninja's posix_spawn works).
    assert r["setsid"] == 0 and r["setpgid"] == 0 and r["still_in_group"] and r["child_in_group"]
    assert r["dumpable"] == -1 and r["io_uring"] == -1 and r["new_user_namespace"] == -1
    assert r["sigchld_ignored"] == 1 and r["sigchld_asked"] and r["sigusr1_handler"] == 0
    assert r["kill_self_and_group"] == 0 and r["fork_and_wait"] == 7 and r["torch"] == 3.0


# --- the arena -------------------------------------------------------------------------------


def test_inputs_cross_through_the_arena_with_their_layout_strides_and_scalars():
    arena = CpuArena()
    data = (
        torch.arange(12, dtype=torch.float32).reshape(3, 4).t(),  # not contiguous
        {"w": torch.ones(2, dtype=torch.bfloat16), 3: torch.tensor(7)},
        [torch.zeros(0, 5), 2.5, float("inf"), None, "name", torch.float16, True],
    )
    layout = arena.write(data)
    back = views(arena.bytes(), json.loads(json.dumps(layout)))  # the harness gets it as JSON
    assert torch.equal(back[0], data[0]) and back[0].stride() == data[0].stride()
    assert back[1]["w"].dtype == torch.bfloat16 and torch.equal(back[1][3], data[1][3])
    assert back[2][0].shape == (0, 5) and back[2][1:] == [
        2.5,
        float("inf"),
        None,
        "name",
        torch.float16,
        True,
    ]
    # The views share the arena's memory: a write through one is what the judge reads back.
    back[0][0, 0] = 100.0
    assert arena.read(layout["tensors"][0])[0, 0] == 100.0
    arena.close()


def test_an_input_the_arena_cannot_carry_is_a_clear_error():
    with pytest.raises(LayoutError, match="type object"):
        plan((torch.ones(2), object()))


def test_the_arena_cannot_be_shrunk_under_the_judge():
    arena = CpuArena()
    arena.write(torch.ones(1000))
    with pytest.raises(PermissionError):
        os.ftruncate(arena.fd, 0)
    with pytest.raises(PermissionError):
        os.ftruncate(arena.fd, arena.size + 4096)  # nor grown: its size is fixed when it is made
    layout = arena.write(torch.ones(100_000))  # the judge maps more of it as inputs grow
    assert arena.mapped >= 400_000 and layout["size"] == arena.mapped
    assert views(arena.bytes(), layout).sum() == 100_000
    arena.close()


def test_an_input_with_no_elements_still_has_a_region_to_view():
    arena = CpuArena()
    layout = arena.write((torch.empty(0), torch.empty(0, 3)))
    assert layout["size"] > 0
    back = views(arena.bytes(), layout)
    assert back[0].shape == (0,) and back[1].shape == (0, 3)
    arena.close()


# --- memory reads and the harness process ----------------------------------------------------


def _sleeping_child_with(tensor: torch.Tensor):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, str(tensor.data_ptr()).encode())
        time.sleep(60)
        os._exit(0)
    os.close(w)
    return pid, int(os.read(r, 100))


def test_the_judge_reads_a_stopped_process_memory_and_its_mappings():
    t = torch.arange(16, dtype=torch.float32).reshape(4, 4)
    pid, ptr = _sleeping_child_with(t)
    memory = ProcessMemory(pid)
    try:
        os.kill(pid, signal.SIGSTOP)
        got = memory.tensor(ptr, torch.float32, [4, 2], [4, 1])  # a strided view of the child's data
        assert torch.equal(got, t[:, :2])
        with pytest.raises(MemoryReadError):
            memory.read(4096, 16)  # nothing is mapped there
        maps = memory.mappings()
        assert any(m.start <= ptr < m.end for m in maps) and overlaps(ptr, 4, maps)
    finally:
        memory.close()
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _spawn(entry, read_memory=True, group=None) -> tuple[HarnessProcess, CpuArena]:
    from kerneldisc.evaluate.harness import HarnessSpec, run

    arena = CpuArena()
    spec = HarnessSpec(role="reference", device="cpu", core=None, limits=Limits(), work_dir=tempfile.mkdtemp(),
                       entry=entry, exact_cpu=group is not None)  # fmt: skip
    proc = HarnessProcess.fork(
        lambda: run(spec), arena.reader_fd, 4000, 60.0, "test", read_memory=read_memory, group=group
    )
    # This test process stands in for the judge, whose only other children are harness processes.
    proc.others = frozenset(children(os.getpid())) - {proc.pid}
    proc.start_tails()
    assert proc.wait_ready()["event"] == "ready"
    return proc, arena


def _call(proc: HarnessProcess, arena: CpuArena, data) -> tuple[dict, int, float]:
    """One call as the judge makes it: layout, a prepared harness, this call's inputs, the kernel."""
    layout, spans = arena.layout(data)
    proc.send({"op": "layout", "layout": layout})
    return proc.call({"op": "call"}, lambda: arena.fill(layout, spans))


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _kernel_with_helper_thread(data):
    helper = threading.Thread(target=_burn, args=(0.05,))
    helper.start()
    _burn(0.05)
    helper.join()
    return data * 2


def test_a_call_is_charged_the_cpu_time_of_every_thread_and_the_group_is_stopped_between_calls():
    proc, arena = _spawn(_kernel_with_helper_thread)
    try:
        reply, cpu_ns, wall_s = _call(proc, arena, torch.ones(8))
        assert reply["ok"], reply
        assert cpu_ns >= 95_000_000  # both threads' 50 ms, whatever the wall time was
        out = reply["outputs"]["tensors"][0]
        assert torch.equal(
            proc.memory.tensor(out["ptr"], torch.float32, out["shape"], out["stride"]), torch.full((8,), 2.0)
        )
        assert proc.frozen and all(stat_fields(proc.pid, t)[0] == b"T" for t in threads(proc.pid))
    finally:
        proc.close()
        arena.close()


def _kernel_leaving_work_behind(data):
    threading.Thread(target=_burn, args=(0.2,), daemon=True).start()
    return data + 1


def test_work_left_running_after_the_reply_gets_no_cpu_while_the_judge_works():
    proc, arena = _spawn(_kernel_leaving_work_behind)
    try:
        charged = [_call(proc, arena, torch.ones(8))[1] for _ in range(3)]
        clock = (~proc.pid << 3) | 2
        before = time.clock_gettime_ns(clock)
        time.sleep(0.3)  # frozen: the busy threads it left cannot run, so nothing happens unseen
        assert time.clock_gettime_ns(clock) == before
        # What they burn while the group runs in a call's charged window is the call's.
        assert sum(charged) > 3 * 1e6
    finally:
        proc.close()
        arena.close()


def _forks_a_burner(data):
    pid = os.fork()
    if pid == 0:
        _burn(0.1)
        os._exit(0)
    os.waitpid(pid, 0)
    return data


def test_a_helper_process_that_ends_within_the_call_is_charged():
    proc, arena = _spawn(_forks_a_burner)
    try:
        total = sum(_call(proc, arena, torch.ones(8))[1] for _ in range(3))
        # The kernel's accounting of reaped children is in clock ticks: 3 x 100 ms, minus a tick each.
        assert total >= 3 * 0.1e9 - 3 * 0.011e9
    finally:
        proc.close()
        arena.close()


def _forks_a_short_burner(data):
    pid = os.fork()
    if pid == 0:
        _burn(0.004)  # under half a clock tick: /proc's counters for reaped children may not move
        os._exit(0)
    os.waitpid(pid, 0)
    return data


def _forks_a_burner_the_kernel_reaps(data):
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps: no wait, no counter moves
    done_r, done_w = os.pipe()
    if os.fork() == 0:
        _burn(0.004)
        os.write(done_w, b"1")
        os._exit(0)
    os.read(done_r, 1)
    os.close(done_r)
    os.close(done_w)
    return data


@pytest.mark.skipif(os.geteuid() != 0, reason="a cgroup is made as root only")
@pytest.mark.parametrize("kernel", [_forks_a_short_burner, _forks_a_burner_the_kernel_reaps])
def test_with_a_cgroup_children_reaped_within_a_call_are_charged_to_the_microsecond(kernel):
    from kerneldisc.evaluate.cgroups import HarnessGroup

    group = HarnessGroup.create(f"{os.getpid()}-test", memory_mb=2048)
    assert group is not None
    proc, arena = _spawn(kernel, group=group)
    try:
        charged = [_call(proc, arena, torch.ones(8))[1] for _ in range(5)]
        assert all(c >= 4_000_000 for c in charged), charged  # every call, not on average
    finally:
        proc.close()
        arena.close()
        group.remove()
    assert not any(os.path.exists(p) for p in group.paths.values())


def test_without_a_cgroup_reaped_children_counted_in_an_uncharged_window_go_to_the_next_call():
    """/proc's reaped-children counters move in whole ticks; what they move while a call is being
    prepared (not charged) is charged to the call, so no window sets their phase for free."""
    proc, arena = _spawn(lambda data: data)
    try:
        readings = iter([0, 50_000_000])  # before and after the prepare window: 50 ms appeared
        proc._children_ns = lambda members: next(readings, 50_000_000)
        reply, charged_ns, _ = _call(proc, arena, torch.ones(8))
        assert reply["ok"] and charged_ns >= 50_000_000
        assert _call(proc, arena, torch.ones(8))[1] < 50_000_000  # carried once, not again
    finally:
        proc.close()
        arena.close()


def _stops_itself(data):
    os.kill(os.getpid(), signal.SIGSTOP)
    return data


def test_a_harness_process_that_stops_itself_is_noticed_and_killed():
    from kerneldisc.evaluate.sandbox import ChildDied

    proc, arena = _spawn(_stops_itself)
    try:
        with pytest.raises(ChildDied):
            _call(proc, arena, torch.ones(8))
        assert proc.stopped_itself and "was stopped (SIGSTOP)" in proc.exit_description()
    finally:
        proc.close()
        arena.close()


# --- the tripwire ----------------------------------------------------------------------------


def test_the_tripwire_names_patched_clocks_builtins_and_hooks_but_not_a_default_device():
    import builtins

    wire = Tripwire()
    assert wire.check() is None
    real = time.perf_counter
    time.perf_counter = lambda: 0.0
    try:
        assert "time.perf_counter" in wire.check()
    finally:
        time.perf_counter = real
    real_len = builtins.len
    builtins.len = lambda x: 0
    try:
        assert "builtins.len" in wire.check()
    finally:
        builtins.len = real_len
    sys.setprofile(lambda *a: None)
    try:
        assert "setprofile" in wire.check()
    finally:
        sys.setprofile(None)
    from torch.utils._python_dispatch import TorchDispatchMode

    with TorchDispatchMode():
        assert "TorchDispatchMode" in wire.check()
    torch.set_default_device("cpu")
    try:
        assert wire.check() is None
    finally:
        torch.set_default_device(None)


# --- the task's sources, pinned --------------------------------------------------------------


def test_a_task_round_trips_through_the_judges_request(tmp_path):
    from kerneldisc.evaluate.problem import task_from_dict, task_to_dict
    from kerneldisc.task import load_task

    task = load_task("vectoradd")
    again = task_from_dict(json.loads(json.dumps(task_to_dict(task))))
    assert again == task


def test_modules_of_a_task_folder_are_imported_from_the_bytes_read_when_it_was_loaded(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "helpers.py").write_text("VALUE = 'pinned'\n")
    (folder / "reference.py").write_text(
        "def generate_input(size, seed):\n    return size\n\n"
        "def ref_kernel(data):\n    import helpers\n    import later\n    return helpers.VALUE\n"
    )
    (folder / "task.yml").write_text("tests:\n  - {size: 1, seed: 1}\n")
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from kerneldisc.task import load_task, import_reference\n"
        f"folder = Path({str(folder)!r})\n"
        "module = import_reference(load_task(folder))\n"
        "(folder / 'helpers.py').write_text(\"VALUE = 'rewritten'\\n\")\n"
        "(folder / 'later.py').write_text('raise SystemExit(3)\\n')\n"
        "try:\n"
        "    print(json.dumps(module.ref_kernel(None)))\n"
        "except ImportError as exc:\n"
        "    import helpers\n"
        "    print(json.dumps([helpers.VALUE, str(exc)]))\n"
    )
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    assert done.returncode == 0, done.stderr
    value, error = json.loads(done.stdout)
    assert value == "pinned"  # the file was rewritten after loading; the loaded bytes are what ran
    assert "later" in error  # a module planted after loading is not found in the task's folder


# --- users and what they leave ------------------------------------------------------------


def test_installations_readable_by_anyone_are_told_from_private_ones():
    import shutil

    from kerneldisc.evaluate.sandbox import readable_by_anyone

    base = Path(tempfile.mkdtemp(dir="/tmp"))  # /tmp itself: any user may enter it
    shared, private = base / "shared", base / "private"
    for folder in (shared, private):
        (folder / "lib").mkdir(parents=True)
    base.chmod(0o755)
    shared.chmod(0o755)
    (shared / "lib").chmod(0o755)
    private.chmod(0o700)
    assert readable_by_anyone([str(shared / "lib")])
    assert not readable_by_anyone([str(private / "lib")])
    (shared / "lib").chmod(0o711)  # enterable but not listable: a package folder must be listable
    assert not readable_by_anyone([str(shared / "lib")])
    shutil.rmtree(base)


@pytest.mark.skipif(os.geteuid() != 0, reason="users are leased and purged as root only")
def test_leased_users_are_never_shared_and_are_purged_of_what_they_left():
    from kerneldisc.evaluate import uids

    def lease_in_child():
        return uids.lease(2)

    mine = uids.lease(2)
    theirs = _in_child(lease_in_child)  # another judge while this one holds its leases
    assert len(set(mine)) == 2 and not set(mine) & set(theirs)
    victim = mine[0]
    left = os.path.join("/var/tmp", f"kerneldisc-test-{os.getpid()}")
    with open(left, "w") as f:
        f.write("x")
    os.chown(left, victim, victim)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a process of that user, still running when the evaluation ends
        os.setgid(victim)
        os.setuid(victim)
        os.write(ready_w, b"1")
        time.sleep(60)
        os._exit(0)
    assert os.read(ready_r, 1) == b"1"  # it runs as that user now
    uids.purge(victim)
    assert not os.path.exists(left)
    assert os.waitpid(pid, 0)[1] == signal.SIGKILL
