"""The evaluator's pieces on their own: comparisons, aliasing and mutation checks, guards,
statistics, CUDA source extraction, settings and the verdict's round trip."""

from __future__ import annotations

import _thread
import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from kerneldisc.errors import ConfigError
from kerneldisc.evaluate import EvalConfig, Verdict, check
from kerneldisc.evaluate.config import parse_device
from kerneldisc.evaluate.cuda_compile import extract_cuda_sources, uses_cuda_extension
from kerneldisc.evaluate.guards import Guards, thread_cpu_ns, thread_state
from kerneldisc.evaluate.problem import salted_seed
from kerneldisc.evaluate.protocol import RepeatPolicy, measure
from kerneldisc.evaluate.timing import CpuTimer
from kerneldisc.evaluate.verdict import RuntimeStats, TestResult, aggregate


def test_compare_accepts_values_within_tolerance():
    ref = torch.tensor([1.0, 2.0, 3.0])
    assert check.compare(ref + 1e-7, ref, rtol=1e-5, atol=1e-6) is None


def test_compare_names_the_first_mismatch_and_the_worst_error():
    ref = torch.tensor([1.0, 2.0, 3.0])
    out = torch.tensor([1.0, 2.5, 3.0])
    message = check.compare(out, ref, rtol=1e-5, atol=1e-6)
    assert "1 of 3 elements" in message and "first at [1]" in message and "max abs error 0.5" in message


def test_compare_reports_shape_dtype_and_nan_problems():
    ref = torch.zeros(4)
    assert "shape mismatch" in check.compare(torch.zeros(5), ref, 1e-5, 1e-6)
    assert "dtype mismatch" in check.compare(torch.zeros(4, dtype=torch.float16), ref, 1e-5, 1e-6)
    assert "NaN/Inf in 1 of 4" in check.compare(torch.tensor([0.0, float("inf"), 0.0, 0.0]), ref, 1e-5, 1e-6)


def test_compare_walks_tuples_and_names_the_item():
    ref = (torch.zeros(2), torch.ones(3))
    assert check.compare((torch.zeros(2), torch.ones(3)), ref, 1e-5, 1e-6) is None
    assert check.compare((torch.zeros(2), torch.zeros(3)), ref, 1e-5, 1e-6).startswith("output[1]")
    assert "expected 2 items" in check.compare((torch.zeros(2),), ref, 1e-5, 1e-6)


def test_aliasing_finds_the_input_a_view_and_a_slice_but_not_a_copy():
    a, b = torch.randn(8), torch.randn(8)
    data = (a, b)
    assert check.aliased_inputs(a, data) == ["output"]
    assert check.aliased_inputs(b.view(2, 4), data) == ["output"]
    assert check.aliased_inputs((a.clone(), b[2:5]), data) == ["[1]"]
    assert check.aliased_inputs(a + b, data) == []


def test_changed_inputs_sees_a_single_flipped_element_and_tolerates_nan():
    data = (torch.tensor([1.0, float("nan")]), torch.ones(3))
    before = check.snapshot(data)
    assert check.changed_inputs(before, data) == []
    data[1][2] = 5.0
    assert check.changed_inputs(before, data) == ["input[1]"]


def test_output_format_rejects_subclasses_and_foreign_objects():
    class Sub(torch.Tensor):
        pass

    assert check.output_format_problem(torch.zeros(2), "cpu") is None
    assert check.output_format_problem((torch.zeros(2), 3), "cpu") is None
    assert check.output_format_problem(torch.zeros(2).as_subclass(Sub), "cpu")[0] == "rejected"
    assert check.output_format_problem(object(), "cpu")[0] == "rejected"


def test_guards_notice_a_patched_clock():
    guards = Guards.capture(cuda=False)
    assert guards.violation() is None
    original = time.perf_counter
    time.perf_counter = lambda: 0.0
    try:
        assert "time.perf_counter" in guards.violation()
    finally:
        time.perf_counter = original
    assert guards.violation() is None


def _wait_in_test_code(stop: threading.Event) -> None:
    stop.wait()


def test_guards_reject_a_thread_waiting_inside_the_candidates_code():
    guards = Guards.capture(cuda=False, candidate_dir=str(Path(__file__).parent))
    stop = threading.Event()
    thread = threading.Thread(target=_wait_in_test_code, args=(stop,), name="lingering")
    thread.start()
    try:
        assert guards.violation() is None  # between timed calls only CPU use is looked at
        message = guards.violation(0.01)
        assert "lingering in _wait_in_test_code at test_evaluate_units.py" in message
    finally:
        stop.set()
        thread.join()
    assert guards.violation() is None


def test_guards_see_a_thread_started_without_the_threading_module_in_the_candidates_code():
    guards = Guards.capture(cuda=False, candidate_dir=str(Path(__file__).parent))
    started, stop = threading.Event(), threading.Event()
    _thread.start_new_thread(lambda: (started.set(), _wait_in_test_code(stop)), ())
    started.wait()
    try:
        message = guards.violation(0.01)
        assert "started without the threading module in _wait_in_test_code" in message
    finally:
        stop.set()


def test_guards_reject_a_thread_using_cpu_after_the_call_wherever_its_code_lives():
    guards = Guards.capture(cuda=False)  # no candidate folder: only the CPU use can tell
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    thread = threading.Thread(target=spin, name="spinner")
    thread.start()
    try:
        message = guards.violation(0.02)
        # "ms of CPU", or "still runnable" when a loaded machine starved it: the kernel's view either way
        assert "spinner" in message and "running after returning" in message
    finally:
        stop.set()
        thread.join()


def test_guards_count_cpu_used_since_the_mark_even_by_a_thread_idle_again():
    guards = Guards.capture(cuda=False)
    go, done, stop = threading.Event(), threading.Event(), threading.Event()

    def deferred_work() -> None:  # the game: finish the work after the call returned, then block
        go.wait()
        busy_until = time.thread_time() + 0.02
        while time.thread_time() < busy_until:
            pass
        done.set()
        stop.wait()

    thread = threading.Thread(target=deferred_work, name="deferred")
    thread.start()
    try:
        guards.mark()  # the call has just returned
        go.set()
        done.wait()
        message = guards.violation()  # no window: only what happened since the mark counts
        assert "deferred" in message and "ms of CPU" in message
        assert guards.violation() is None  # the mark is used once; the thread is idle now
    finally:
        stop.set()
        thread.join()


def test_guards_tolerate_an_idle_pool_and_a_waiting_library_thread():
    guards = Guards.capture(cuda=False, candidate_dir=str(Path(__file__).parent))
    stop = threading.Event()
    waiter = threading.Thread(target=stop.wait, name="library-waiter")  # blocked in threading.py
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert pool.submit(sum, range(10)).result() == 45
        waiter.start()
        try:
            assert guards.foreign_threads()  # they are there, and judged idle
            assert guards.violation(0.02) is None
        finally:
            stop.set()
            waiter.join()


def test_thread_cpu_time_and_state_come_from_the_kernel_and_a_missing_thread_has_none():
    me = threading.get_native_id()
    assert thread_state(me) == "R"  # this thread is running while it reads
    before = thread_cpu_ns(me)
    busy_until = time.thread_time() + 0.01
    while time.thread_time() < busy_until:
        pass
    assert thread_cpu_ns(me) - before >= 5_000_000
    assert thread_cpu_ns(2**31 - 1) is None and thread_state(2**31 - 1) is None


def test_measure_gives_every_timed_call_fresh_inputs_and_respects_bounds():
    seen = []

    def make_input(rep):
        seen.append(rep)
        return torch.full((4,), float(rep))

    policy = RepeatPolicy(warmup=2, min_repeats=3, max_repeats=6, budget_s=0.0, target_rel_stderr=0.0)
    times = measure(lambda x: x * 2, make_input, CpuTimer(), policy)
    assert len(times) == 3  # the budget is spent at once: stop at the minimum
    assert seen == [-1, -2, 0, 1, 2]
    assert all(t > 0 for t in times)


def test_runtime_stats_and_rankings():
    stats = RuntimeStats.from_times([1.0, 2.0, 3.0, 4.0])
    assert stats.mean_us == 2.5 and stats.median_us == 2.5 and stats.min_us == 1.0 and stats.repeats == 4
    assert stats.stderr_us == pytest.approx(stats.std_us / 2)
    assert aggregate([1.0, 100.0], "geom") == pytest.approx(10.0)
    assert aggregate([1.0, 100.0], "mean") == pytest.approx(50.5)


def test_salted_seeds_differ_per_salt_and_repeat_and_stay_deterministic():
    spec = {"size": 8, "seed": 1}
    seeds = {salted_seed(salt, spec, "test", 0, rep) for salt in ("a", "b") for rep in (0, 1)}
    assert len(seeds) == 4
    assert salted_seed("a", spec, "test", 0, 0) == salted_seed("a", spec, "test", 0, 0)


def test_cuda_sources_are_found_through_names_lists_and_concatenation():
    source = (
        "from torch.utils.cpp_extension import load_inline\n"
        "head = '__global__ void k() {}'\n"
        "tail = '\\nvoid launch() { k<<<1, 1>>>(); }'\n"
        "src = head + tail\n"
        "m = load_inline('m', cpp_sources='', cuda_sources=[src], functions=['launch'])\n"
    )
    assert uses_cuda_extension(source)
    assert extract_cuda_sources(source) == ["__global__ void k() {}\nvoid launch() { k<<<1, 1>>>(); }"]
    assert (
        extract_cuda_sources(
            "from torch.utils.cpp_extension import load_inline\nload_inline('m', '', make())\n"
        )
        is None
    )
    assert not uses_cuda_extension("import triton\n")


def test_device_strings_are_validated():
    assert parse_device("CUDA:1") == "cuda:1"
    for bad in ("gpu", "cuda:x", "cpu0", ""):
        with pytest.raises(ConfigError, match="device must be"):
            parse_device(bad)
    with pytest.raises(ConfigError, match="timeout"):
        EvalConfig(timeout_s=0)


def test_settings_fill_device_dependent_defaults_but_keep_explicit_ones():
    cpu = EvalConfig().resolved("cpu")
    gpu = EvalConfig(time_budget_s=5.0).resolved("cuda:0")
    assert cpu["memory_limit_mb"] and gpu["memory_limit_mb"] is None
    assert gpu["time_budget_s"] == 5.0 and gpu["min_repeats"] > cpu["min_repeats"]


def test_verdict_round_trips_and_only_ok_is_correct():
    v = Verdict(
        task="add", candidate="c.py", device="cpu", status="incorrect", message="bad",
        tests=[TestResult({"size": 4}, False, "bad")],
    )  # fmt: skip
    again = Verdict.from_dict(v.to_dict())
    assert again == v and not again.correct and again.to_dict()["correct"] is False
    assert "INCORRECT" in v.summary() and "FAIL" in v.summary()
    with pytest.raises(ValueError):
        Verdict(task="t", candidate="c", device="cpu", status="great", message="")


class _FailingProblem:
    def __init__(self, exc: Exception):
        self.exc = exc

    def make_input(self, spec, seed, device):
        raise self.exc


def test_inputs_that_cannot_be_made_are_not_blamed_on_custom_kernel():
    from kerneldisc.evaluate.worker import Refused, Session

    guards = Guards.capture(cuda=False)
    session = Session(_FailingProblem(MemoryError()), lambda data: data, guards, "cpu", channel=None)
    with pytest.raises(Refused) as caught:
        session.test({"spec": {"size": 10}, "seed": 1, "out": "unused.pt"})
    assert caught.value.status == "crash"
    assert "generating the task's inputs failed before custom_kernel was called" in caught.value.message
    assert "memory limit" in caught.value.message


def test_only_an_answer_signed_with_the_callers_key_is_opened():
    from kerneldisc.evaluate.signing import new_key, open_signed, sign

    key = new_key()
    answer = {"verdict": {"status": "ok", "speedup": 1.25, "message": "fine"}}
    assert open_signed(sign(answer, key), key) == answer
    assert open_signed(sign(answer, new_key()), key) is None  # another key
    assert open_signed(answer, key) is None  # a bare, unsigned answer
    tampered = sign(answer, key)
    tampered["signed"] = tampered["signed"].replace("1.25", "125.0")
    assert open_signed(tampered, key) is None


def test_outputs_cross_to_the_judge_as_raw_bytes_and_come_back_equal():
    import torch

    from kerneldisc.evaluate.transfer import TransferError, decode, encode

    out = (
        torch.arange(6, dtype=torch.float32).reshape(2, 3).t(),  # not contiguous
        {"scale": 0.5, 3: torch.tensor(7, dtype=torch.int64)},  # 0-dim, a non-str key
        [torch.ones(2, dtype=torch.bfloat16), torch.zeros(0, 4), None, True],
    )
    back = decode(encode(out), "cpu")
    assert torch.equal(back[0], out[0]) and back[0].dtype == torch.float32
    assert back[1]["scale"] == 0.5 and torch.equal(back[1][3], out[1][3]) and back[1][3].shape == ()
    assert back[2][0].dtype == torch.bfloat16 and torch.equal(back[2][0], out[2][0])
    assert back[2][1].shape == (0, 4) and back[2][2:] == [None, True]
    payload = encode(torch.ones(4))
    for broken in (payload[:-1], payload + b"\0", b"\xff" * 3):
        with pytest.raises(TransferError):
            decode(broken, "cpu")
    with pytest.raises(TypeError, match="not object"):
        encode({"x": object()})


def test_the_judge_undoes_a_pinned_cpu_and_a_raised_nice_value_before_timing_the_reference():
    """In a child process (its scheduling is changed for real): pinned to one CPU and reniced, as
    a same-user candidate could do to its judge, then restored, or refused when it cannot be."""
    code = textwrap.dedent(
        """
        import os
        from kerneldisc.evaluate import judge
        judge._SCHEDULING = (os.getpriority(os.PRIO_PROCESS, 0), frozenset(os.sched_getaffinity(0)))
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        os.setpriority(os.PRIO_PROCESS, 0, 19)
        try:
            judge._restore_scheduling()
        except judge.Stop as stop:
            print("refused:", stop.message)
        else:
            restored = (os.getpriority(os.PRIO_PROCESS, 0), frozenset(os.sched_getaffinity(0)))
            print("restored" if restored == judge._SCHEDULING else f"not restored: {restored}")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout.strip()
    if os.geteuid() == 0:  # root may lower nice again
        assert out == "restored"
    else:
        assert (
            out == "refused: the candidate lowered the judge's scheduling priority, which cannot be restored"
        )


def test_bytecode_written_during_an_evaluation_is_purged_and_older_caches_are_kept(tmp_path):
    from kerneldisc.evaluate.integrity import purge_bytecode_since

    package, task = tmp_path / "pkg", tmp_path / "task"
    for cache in (package / "sub" / "__pycache__", task / "__pycache__", task / "deeper" / "__pycache__"):
        cache.mkdir(parents=True)
    old = package / "sub" / "__pycache__" / "old.cpython-311.pyc"
    old.write_bytes(b"old")
    time.sleep(0.3)
    since = time.time()
    planted = [
        package / "sub" / "__pycache__" / "mod.cpython-311.pyc",
        task / "__pycache__" / "t.cpython-311.pyc",
    ]
    deeper = task / "deeper" / "__pycache__" / "x.cpython-311.pyc"  # task folders are not searched deeper
    for path in (*planted, deeper):
        path.write_bytes(b"planted")
    assert sorted(purge_bytecode_since(since, package, [task])) == sorted(planted)
    assert not any(p.exists() for p in planted) and deeper.exists() and old.exists()
