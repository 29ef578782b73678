"""Real candidates (tests/candidates/) through the whole evaluator on the CPU: every status
class is reached, wrong candidates fail for the right reason, and the evaluator survives
candidates that exit, segfault, hang, flood their output or try to game the measurement.

All verdicts are computed once, two at a time from a thread pool (which also exercises
`evaluate` being called from several threads at once), and shared by the tests below.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from kerneldisc.evaluate import EvalConfig, Verdict, evaluate
from kerneldisc.task import load_task

pytestmark = pytest.mark.slow

CANDIDATES = Path(__file__).parent / "candidates"
CFG = EvalConfig(device="cpu", timeout_s=25)
HANG_TIMEOUT_S = 5.0
COMPILE_TIMEOUT_S = 240.0  # inductor compiles C++ on a cold cache: tens of seconds on a loaded 2-core machine
BOMB_MEMORY_MB = 1024  # a small limit: touching memory is slow, the bomb should hit it fast
NAMES = [
    "add_triton", "syntax_error", "import_error", "wrong_values", "wrong_shape", "wrong_dtype", "nan_output",
    "mutates_input", "returns_input", "returns_view", "partial_write", "caches_result", "exit_at_import",
    "exit_in_call", "os_exit", "segfault", "hang", "flood", "patch_perf_counter", "patch_perf_counter_ns",
    "patch_monotonic", "background_thread", "no_custom_kernel", "fake_verdict", "memory_bomb",
    "subclass_output", "raises", "kills_judge", "idle_pool", "spinning_thread", "late_write_timer",
    "late_write_slow_timer", "patch_harness_timer", "patch_captured_clock", "rewrite_timer_code",
    "shrinks_inputs", "torch_compiled", "rewrites_saved_output", "stops_judge", "stops_itself",
    "deletes_generator", "stale_late_calls", "forges_judge_answer", "computes_while_saved",
    "forges_bench_reply", "lazy_dispatch_mode", "lazy_profile_hook", "patch_builtin",
    "sets_default_device",
]  # fmt: skip


@pytest.fixture(scope="module")
def verdicts() -> dict[str, Verdict]:
    task = load_task(CANDIDATES / "add_task")

    def one(name: str) -> tuple[str, Verdict]:
        cfg = CFG
        if name == "hang":
            cfg = replace(CFG, timeout_s=HANG_TIMEOUT_S)
        elif name == "memory_bomb":
            cfg = replace(CFG, memory_limit_mb=BOMB_MEMORY_MB)
        elif name == "stale_late_calls":  # 59 gamed calls: each escapes its check with p = 0.8
            cfg = replace(CFG, min_repeats=60, max_repeats=60)
        elif name == "torch_compiled":
            cfg = replace(CFG, timeout_s=COMPILE_TIMEOUT_S)
        return name, evaluate(task, CANDIDATES / f"{name}.py", cfg)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, NAMES))


def test_correct_triton_candidate_is_ok_with_measured_speedup(verdicts):
    v = verdicts["add_triton"]
    assert v.status == "ok" and v.correct, v.message
    assert v.device == "cpu" and v.device_facts["device"] == "cpu"
    assert all(t.passed for t in v.tests) and len(v.tests) == 2
    assert v.runtime_us > 0 and v.reference_runtime_us > 0
    assert v.speedup == pytest.approx(v.reference_runtime_us / v.runtime_us)
    bench = v.benchmarks[0]
    assert bench.runtime.repeats >= 3 and bench.reference.repeats >= 3
    assert bench.runtime.mean_us == pytest.approx(v.runtime_us)  # one benchmark: the aggregate is its mean


def test_idle_worker_pool_left_by_a_correct_candidate_is_tolerated(verdicts):
    v = verdicts["idle_pool"]
    assert v.status == "ok" and v.correct, v.message
    assert v.benchmarks[0].runtime.repeats >= 3


def test_torch_set_default_device_is_not_mistaken_for_an_interception_hook(verdicts):
    assert verdicts["sets_default_device"].status == "ok", verdicts["sets_default_device"].message


def test_torch_compile_in_a_candidate_is_not_mistaken_for_tampering(verdicts):
    v = verdicts["torch_compiled"]
    assert v.status == "ok" and v.correct, v.message


def test_thread_still_in_the_candidates_code_is_named_with_its_line(verdicts):
    assert "in finish at candidate.py:14" in verdicts["background_thread"].message


def test_verdict_is_json_ready_with_the_contract_fields(verdicts):
    d = json.loads(json.dumps(verdicts["add_triton"].to_dict()))
    for key in ("task", "candidate", "device", "status", "correct", "message", "tests", "benchmarks",
                "runtime_us", "reference_runtime_us", "speedup"):  # fmt: skip
        assert key in d
    assert d["tests"][0].keys() >= {"spec", "passed", "message"}
    assert d["benchmarks"][0]["runtime"]["mean_us"] > 0


@pytest.mark.parametrize("name", ["syntax_error", "import_error"])
def test_candidate_that_does_not_import_is_a_compile_error(verdicts, name):
    v = verdicts[name]
    assert v.status == "compile_error" and not v.correct
    assert v.speedup is None and v.runtime_us is None
    assert ("SyntaxError" if name == "syntax_error" else "kerneldisc_no_such_module") in v.message


@pytest.mark.parametrize(
    "name, reason",
    [
        ("wrong_values", "mismatch beyond tolerance"),
        ("wrong_shape", "shape mismatch: got (999,), expected (1000,)"),
        ("wrong_dtype", "dtype mismatch: got torch.float64, expected torch.float32"),
        ("nan_output", "NaN/Inf in 1 of 1000 elements"),
        ("mutates_input", "modified its input"),
        ("partial_write", "mismatch beyond tolerance"),
        ("caches_result", "mismatch beyond tolerance"),
        ("fake_verdict", "mismatch beyond tolerance"),
        ("late_write_slow_timer", "mismatch beyond tolerance"),
        ("computes_while_saved", "shape mismatch: got (0,), expected (1000,)"),
    ],
)
def test_wrong_candidate_is_incorrect_for_the_right_reason(verdicts, name, reason):
    v = verdicts[name]
    assert v.status == "incorrect" and not v.correct, v.message
    assert reason in v.message
    assert not v.tests[0].passed and reason in v.tests[0].message
    assert v.speedup is None


def test_stale_output_on_late_timed_calls_is_caught_by_a_check_drawn_after_the_call(verdicts):
    v = verdicts["stale_late_calls"]
    assert v.status == "incorrect" and v.speedup is None, v.message
    assert all(t.passed for t in v.tests)  # the tests alone cannot see it
    assert "timed call" in v.message and "of benchmark {size: 4096" in v.message
    assert "timed call 0 " not in v.message  # the first timed call was honest


def test_a_forged_answer_on_the_judges_pipe_earns_nothing(verdicts):
    v = verdicts["forges_judge_answer"]
    # The judge is not dumpable and, as root, the candidate has no capabilities: the pipe cannot
    # be opened; were it opened, the unsigned line would be refused by the caller.
    assert v.status in ("compile_error", "rejected") and v.speedup is None, v.message
    assert "Permission denied" in v.message or "not signed by the judge" in v.message


def test_a_helper_daemonised_out_of_the_group_is_killed_with_the_evaluation(tmp_path, monkeypatch):
    pidfile = tmp_path / "helper.pid"
    monkeypatch.setenv("KERNELDISC_TEST_PIDFILE", str(pidfile))
    v = evaluate(load_task(CANDIDATES / "add_task"), CANDIDATES / "daemon_helper.py", CFG)
    assert v.status == "ok", v.message
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), f"the candidate's helper {pid} outlived its evaluation"


def test_a_helper_that_keeps_forking_is_killed_before_the_reference_is_timed(monkeypatch):
    token = f"kerneldisc-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("KERNELDISC_TEST_TOKEN", token)
    v = evaluate(load_task(CANDIDATES / "add_task"), CANDIDATES / "fork_hopper.py", CFG)
    # Caught: the verdict stands (the kernel is correct); outran: rejected. Never left running.
    assert v.status in ("ok", "rejected"), v.message
    time.sleep(0.5)
    assert not _with_token(token), "a forking helper of the candidate outlived its evaluation"


def _with_token(token: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if token.encode() in f.read() and _alive(int(entry)):
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("name", ["returns_input", "returns_view"])
def test_output_aliasing_an_input_is_rejected(verdicts, name):
    v = verdicts[name]
    assert v.status == "rejected"
    assert "aliases the input" in v.message


@pytest.mark.parametrize(
    "name, reason",
    [
        ("patch_perf_counter", "time.perf_counter"),
        ("patch_perf_counter_ns", "time.perf_counter_ns"),
        ("patch_monotonic", "time.monotonic"),
        ("background_thread", "thread(s) running after returning"),
        ("spinning_thread", "thread(s) running after returning"),
        ("late_write_timer", "kept changing after custom_kernel returned"),
        ("no_custom_kernel", "no custom_kernel"),
        ("subclass_output", "Tensor subclass"),
        # The harness's own code in the candidate's process: found by name, through gc, or by
        # rewriting a function's code, and torch's input generator replaced.
        (
            "patch_harness_timer",
            "changed code the evaluator runs in its process: kerneldisc.evaluate.timing.CpuTimer.time_call",
        ),
        (
            "patch_captured_clock",
            "changed code the evaluator runs in its process: kerneldisc.evaluate.timing._perf_counter_ns",
        ),
        ("rewrite_timer_code", "CpuTimer.time_call.__code__"),
        ("shrinks_inputs", "changed code the evaluator runs in its process: torch.randn"),
        ("rewrites_saved_output", "the saved output changed on disk after the harness wrote it"),
        ("deletes_generator", "changed code the evaluator runs in its process: torch.randn"),
        ("forges_bench_reply", "the harness was bypassed"),
        ("lazy_dispatch_mode", "a TorchDispatchMode left active"),
        ("lazy_profile_hook", "sys.setprofile"),
        ("patch_builtin", "builtins.isinstance"),
    ],
)
def test_gaming_or_malformed_candidate_is_rejected(verdicts, name, reason):
    v = verdicts[name]
    assert v.status == "rejected", v.message
    assert reason in v.message
    assert v.speedup is None


@pytest.mark.parametrize(
    "name, reason",
    [
        ("exit_at_import", "exited with code 0 before delivering its result"),
        ("exit_in_call", "exited with code 0 before delivering its result"),
        ("os_exit", "exited with code 0 before delivering its result"),
        ("segfault", "killed by SIGSEGV"),
        ("memory_bomb", "out of memory"),
        ("raises", "RuntimeError: kernel launch failed"),
        ("kills_judge", "judge process for task add killed by SIGKILL before answering"),
        ("stops_judge", "judge process for task add was stopped (SIGSTOP) and killed before answering"),
        ("stops_itself", "candidate process was stopped (SIGSTOP) and killed"),
    ],
)
def test_candidate_that_dies_or_raises_is_a_crash(verdicts, name, reason):
    v = verdicts[name]
    assert v.status == "crash", v.message
    assert reason in v.message


def test_out_of_memory_says_how_to_raise_the_limit(verdicts):
    message = verdicts["memory_bomb"].message
    assert "memory limit may be too small" in message and "--memory-limit MB" in message
    assert "evaluator's own copies" not in message  # the candidate's own allocation failed


@pytest.mark.parametrize("name", ["stops_judge", "stops_itself"])
def test_a_stopped_process_is_noticed_long_before_the_deadline(verdicts, name):
    assert verdicts[name].elapsed_s < CFG.timeout_s


def test_segfault_message_points_at_the_candidates_line(verdicts):
    assert 'candidate.py", line 7 in custom_kernel' in verdicts["segfault"].message


def test_hang_is_a_timeout_that_returns_on_time(verdicts):
    v = verdicts["hang"]
    assert v.status == "timeout"
    assert f"{HANG_TIMEOUT_S:.0f} s time limit" in v.message
    # generous slack: the judge's own start-up and the machine's load, not the candidate's loop
    assert v.elapsed_s < HANG_TIMEOUT_S + 30


def test_output_flood_is_survived_with_bounded_tails(verdicts):
    v = verdicts["flood"]
    assert v.status == "ok", v.message
    assert 0 < len(v.stdout_tail) <= CFG.output_tail_bytes
    assert 0 < len(v.stderr_tail) <= CFG.output_tail_bytes
    assert "end of flood" in v.stdout_tail


def test_prints_posing_as_results_do_not_count(verdicts):
    v = verdicts["fake_verdict"]
    assert v.status == "incorrect"
    assert '"speedup": 1000.0' in v.stdout_tail  # it printed its fake verdict; nobody listened
