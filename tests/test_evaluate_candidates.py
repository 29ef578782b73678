"""Real candidates (tests/candidates/) through the whole evaluator on the CPU: every status
class is reached, wrong candidates fail for the right reason, and the evaluator survives
candidates that exit, segfault, hang, flood their output or try to game the measurement.

The candidates are grouped by the classes of attack in docs/evaluator.md. An attack either gets
a verdict that names it, or gains nothing: a candidate whose trick cannot reach what the verdict
depends on is judged on what it really did (its speedup stays that of an honest `a + b`, which
is about 1x; no bound here is tight enough for the machine's load to matter).

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
from kerneldisc.task import load_task, task_files_digest

pytestmark = pytest.mark.slow

CANDIDATES = Path(__file__).parent / "candidates"
CFG = EvalConfig(device="cpu", timeout_s=25)
HANG_TIMEOUT_S = 5.0
COMPILE_TIMEOUT_S = 240.0  # inductor compiles C++ on a cold cache: tens of seconds on a loaded 2-core machine
BOMB_MEMORY_MB = 1024  # a small limit: touching memory is slow, the bomb should hit it fast
NO_GAIN = 5.0  # far above an honest a + b (about 1x), far below what the games claimed (50x and more)
NAMES = [
    "add_torch", "add_triton", "syntax_error", "import_error", "wrong_values", "wrong_shape", "wrong_dtype",
    "nan_output", "mutates_input", "returns_input", "returns_view", "partial_write", "caches_result",
    "exit_at_import", "exit_in_call", "os_exit", "segfault", "hang", "flood", "patch_perf_counter",
    "patch_perf_counter_ns", "patch_monotonic", "background_thread", "no_custom_kernel", "fake_verdict",
    "memory_bomb", "subclass_output", "raises", "kills_judge", "idle_pool", "spinning_thread",
    "late_write_timer", "late_write_slow_timer", "patch_harness_timer", "patch_captured_clock",
    "rewrite_timer_code", "shrinks_inputs", "torch_compiled", "rewrites_saved_output", "stops_judge",
    "stops_itself", "deletes_generator", "stale_late_calls", "forges_judge_answer", "computes_while_saved",
    "forges_bench_reply", "lazy_dispatch_mode", "lazy_profile_hook", "patch_builtin", "sets_default_device",
    # the second design's classes (docs/evaluator.md, "Threat model")
    "defer_itimer", "defer_finalizer", "defer_gc_callback", "defer_audit_hook", "defer_main_thread",
    "patch_library_functions", "lies_about_output", "points_to_nowhere", "edits_harness_memory",
    "ctypes_pokes_inputs", "plants_modules", "peeks_future_inputs", "one_thread", "threads_split",
    "numpy_float64", "idle_pool_in_file", "sets_default_dtype", "triton_autotune", "jit_scripted",
    "escapes_sandbox", "forks_per_call",
    # red-team round 4 (docs/evaluator.md)
    "trims_harness", "sleep_gamble", "quantized_output", "deep_reply", "grows_arena", "expands_output",
    "many_outputs", "nvcc_dev_zero", "leaves_shm_file",
    # red-team round 5
    "extra_huge_tensor", "kills_reference_by_pidfd", "commits_arena_pages", "leaves_sysv_memory",
]  # fmt: skip
# Candidates for the other test tasks (a matrix product, complex vectors, an empty first test).
OTHER_TASKS = {
    "mm_honest": "mm_task", "zombie_main_thread": "mm_task", "zombie_orphan_helper": "mm_task",
    "ignores_sigchld": "mm_task", "conj_view": "cplx_task", "add_torch@edge": "edge_task",
    "aliases_by_position": "tr_task", "broadcast_output": "rep_task", "many_honest": "many_task",
    "describes_a_broadcast": "rep_task",
}  # fmt: skip


@pytest.fixture(scope="module")
def task():
    return load_task(CANDIDATES / "add_task")


@pytest.fixture(scope="module")
def verdicts(task, tmp_path_factory) -> dict[str, Verdict]:
    marker = tmp_path_factory.mktemp("planted") / "ran"
    os.environ["KERNELDISC_TEST_MARKER"] = str(marker)

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
        other = OTHER_TASKS.get(name)
        where = load_task(CANDIDATES / other) if other else task
        return name, evaluate(where, CANDIDATES / f"{name.split('@')[0]}.py", cfg)

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            found = dict(pool.map(one, NAMES + list(OTHER_TASKS)))
    finally:
        del os.environ["KERNELDISC_TEST_MARKER"]
    found["_marker"] = marker  # type: ignore[assignment]
    return found


def _gains_nothing(v: Verdict) -> None:
    assert v.status == "ok", v.message
    assert v.speedup is not None and v.speedup < NO_GAIN, v.message


# --- honest candidates ------------------------------------------------------------------------


def test_correct_triton_candidate_is_ok_with_measured_speedup_and_says_it_was_interpreted(verdicts):
    v = verdicts["add_triton"]
    assert v.status == "ok" and v.correct, v.message
    assert v.device == "cpu" and v.device_facts["device"] == "cpu"
    assert v.interpreted and json.loads(json.dumps(v.to_dict()))["interpreted"] is True
    assert "Triton interpreter" in v.summary()
    assert all(t.passed for t in v.tests) and len(v.tests) == 2
    assert v.runtime_us > 0 and v.reference_runtime_us > 0
    assert v.speedup == pytest.approx(v.reference_runtime_us / v.runtime_us)
    bench = v.benchmarks[0]
    assert bench.runtime.repeats >= 3 and bench.reference.repeats >= 3
    assert bench.runtime.mean_us == pytest.approx(v.runtime_us)  # one benchmark: the aggregate is its mean


@pytest.mark.parametrize("name", ["add_torch", "trims_harness", "one_thread"])
def test_no_call_is_charged_less_than_the_references_harness_costs_with_no_kernel(verdicts, name):
    """The floor: a harness rewritten to be leaner than the reference's saves nothing below it."""
    for bench in verdicts[name].benchmarks:
        if bench.runtime is not None:
            assert bench.handshake_us is not None and bench.handshake_us > 0
            assert bench.runtime.min_us >= bench.handshake_us


def test_a_plain_torch_candidate_is_not_marked_interpreted(verdicts):
    v = verdicts["add_torch"]
    assert v.status == "ok" and not v.interpreted, v.message


@pytest.mark.parametrize(
    "name",
    ["idle_pool", "idle_pool_in_file", "sets_default_device", "sets_default_dtype", "torch_compiled",
     "jit_scripted", "numpy_float64", "triton_autotune"],
)  # fmt: skip
def test_legitimate_kernels_are_ok(verdicts, name):
    v = verdicts[name]
    assert v.status == "ok" and v.correct, v.message
    assert v.benchmarks[0].runtime.repeats >= 3


def test_autotune_under_the_interpreter_runs_its_first_config(verdicts):
    v = verdicts["triton_autotune"]
    assert v.status == "ok" and v.interpreted, v.message
    assert "active drivers" not in v.message + v.stderr_tail


def test_verdict_is_json_ready_with_the_contract_fields(verdicts):
    d = json.loads(json.dumps(verdicts["add_triton"].to_dict()))
    for key in ("task", "candidate", "device", "status", "correct", "message", "tests", "benchmarks",
                "runtime_us", "reference_runtime_us", "speedup", "interpreted"):  # fmt: skip
        assert key in d
    assert d["tests"][0].keys() >= {"spec", "passed", "message"}
    assert d["benchmarks"][0]["runtime"]["mean_us"] > 0


# --- wrong, broken and dying candidates --------------------------------------------------------


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
        # The unwritten half holds whatever was in memory: values, or bits that read as NaN.
        ("partial_write", ("mismatch beyond tolerance", "NaN/Inf in")),
        ("caches_result", "mismatch beyond tolerance"),
        ("fake_verdict", "mismatch beyond tolerance"),
        ("computes_while_saved", "shape mismatch: got (0,), expected (1000,)"),
    ],
)
def test_wrong_candidate_is_incorrect_for_the_right_reason(verdicts, name, reason):
    v = verdicts[name]
    assert v.status == "incorrect" and not v.correct, v.message
    reasons = reason if isinstance(reason, tuple) else (reason,)
    assert any(r in v.message for r in reasons)
    assert not v.tests[0].passed and any(r in v.tests[0].message for r in reasons)
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


def test_a_stopped_candidate_is_noticed_long_before_the_deadline(verdicts):
    assert verdicts["stops_itself"].elapsed_s < CFG.timeout_s


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


@pytest.mark.parametrize(
    "name, reason",
    [("returns_view", "aliases the input"),
     ("no_custom_kernel", "no custom_kernel"), ("subclass_output", "Tensor subclass")],
)  # fmt: skip
def test_malformed_candidate_is_rejected(verdicts, name, reason):
    v = verdicts[name]
    assert v.status == "rejected", v.message
    assert reason in v.message and v.speedup is None


# --- 1. work deferred past the clock -----------------------------------------------------------
# The candidate's processes run only between the judge's SIGCONT and SIGSTOP, and all of that
# CPU time is the call's: work finished after the reply is charged, or too late to be read.


@pytest.mark.parametrize(
    "name",
    ["background_thread", "late_write_timer", "late_write_slow_timer", "defer_itimer", "defer_finalizer",
     "defer_audit_hook"],
)  # fmt: skip
def test_work_left_for_after_the_call_is_too_late_to_be_read(verdicts, name):
    v = verdicts[name]
    assert v.status == "incorrect", v.message
    assert "mismatch beyond tolerance" in v.message and "got 0" in v.message


@pytest.mark.parametrize("name", ["defer_gc_callback", "spinning_thread"])
def test_work_done_after_returning_but_before_the_stop_is_charged(verdicts, name):
    _gains_nothing(verdicts[name])


def test_work_hidden_in_the_harnesss_own_code_after_returning_is_not_done_in_timed_calls(verdicts):
    v = verdicts["defer_main_thread"]
    assert v.status == "incorrect" and all(t.passed for t in v.tests), v.message
    assert "timed call 0 of benchmark" in v.message


def test_a_thread_left_spinning_is_charged_to_every_call(verdicts):
    spinning, honest = verdicts["spinning_thread"], verdicts["add_torch"]
    assert spinning.status == "ok" and honest.status == "ok"
    # The spinning thread runs in every call's window: its CPU time is the candidate's.
    assert spinning.runtime_us > 3 * honest.runtime_us


# --- 2. replaced library functions, 3. the harness edited in memory ----------------------------


@pytest.mark.parametrize(
    "name",
    ["patch_library_functions", "patch_harness_timer", "rewrite_timer_code", "shrinks_inputs",
     "deletes_generator", "rewrites_saved_output"],
)  # fmt: skip
def test_patching_what_runs_in_the_candidates_process_reaches_nothing_that_decides(verdicts, name):
    _gains_nothing(verdicts[name])


@pytest.mark.parametrize(
    "name, reason",
    [
        ("patch_perf_counter", "replaced time.perf_counter"),
        ("patch_perf_counter_ns", "replaced time.perf_counter_ns"),
        ("patch_monotonic", "replaced time.monotonic"),
        ("patch_captured_clock", "replaced time.perf_counter_ns"),
        ("patch_builtin", "replaced builtins.isinstance"),
        ("lazy_dispatch_mode", "TorchDispatchMode"),
        ("lazy_profile_hook", "sys.setprofile"),
    ],
)
def test_patched_clocks_builtins_and_hooks_are_named_by_the_tripwire(verdicts, name, reason):
    v = verdicts[name]
    assert v.status == "rejected", v.message
    assert reason in v.message and v.speedup is None


@pytest.mark.parametrize(
    "name, status, reason",
    [
        ("lies_about_output", "rejected", "aliases the input's memory"),
        ("points_to_nowhere", "rejected", "could not be read"),
        ("edits_harness_memory", "rejected", "malformed reply"),
        ("forges_bench_reply", "rejected", "malformed reply"),
    ],
)
def test_a_harness_that_lies_about_its_output_is_caught_by_what_the_judge_reads(
    verdicts, name, status, reason
):
    v = verdicts[name]
    assert v.status == status, v.message
    assert reason in v.message and v.speedup is None


def test_stale_output_on_late_timed_calls_is_caught_by_a_check_drawn_after_the_call(verdicts):
    v = verdicts["stale_late_calls"]
    assert v.status == "incorrect" and v.speedup is None, v.message
    assert all(t.passed for t in v.tests)  # the tests alone cannot see it
    assert "timed call" in v.message and "of benchmark {size: 4096" in v.message
    assert "timed call 0 " not in v.message  # the first timed call was honest


# --- 4. code planted where a trusted process imports -------------------------------------------


def test_planted_modules_never_run_and_the_task_is_untouched(verdicts, task):
    v = verdicts["plants_modules"]
    assert not verdicts["_marker"].exists(), "a module planted by a candidate was imported"
    if v.status == "rejected":  # same user as the caller: it could write the task folder, and was caught
        assert "changed on disk" in v.message
    else:  # as root, the candidate ran as a user that owns nothing: it could write nowhere trusted
        _gains_nothing(v)
        assert task_files_digest(task) == task.files_digest
        assert "refused:" in v.stdout_tail


# --- 5. knowing future inputs, 6. CPU time bought with threads ---------------------------------


def test_inputs_cannot_be_known_in_advance(verdicts):
    v = verdicts["peeks_future_inputs"]
    assert v.status == "incorrect" and "mismatch beyond tolerance" in v.message, v.message


@pytest.mark.parametrize("name", ["one_thread", "threads_split", "numpy_float64", "forks_per_call"])
def test_threads_and_processes_do_not_buy_cpu_time(verdicts, name):
    _gains_nothing(verdicts[name])


# --- red-team round 4: what got through, and the unusual honest kernels it found refused ------


def test_a_process_whose_main_thread_ended_while_others_run_is_rejected(verdicts):
    v = verdicts["zombie_main_thread"]
    assert v.status == "rejected" and "main thread exited" in v.message, v.message


def test_a_helper_whose_main_thread_ended_is_still_charged(verdicts):
    _gains_nothing(verdicts["zombie_orphan_helper"])
    assert verdicts["mm_honest"].status == "ok", verdicts["mm_honest"].message


def test_children_cannot_be_left_for_the_kernel_to_reap_unseen(verdicts):
    v = verdicts["ignores_sigchld"]
    if os.geteuid() == 0:  # a cgroup counts what the kernel reaped too: ignoring SIGCHLD is allowed
        _gains_nothing(v)
    else:
        assert v.status == "compile_error" and "PermissionError" in v.message, v.message


def test_replacing_the_harnesss_per_call_code_is_named(verdicts):
    v = verdicts["trims_harness"]
    assert v.status == "rejected" and "replaced the evaluator's Session.call" in v.message, v.message


def test_sleeping_does_not_end_a_benchmark_before_stale_calls_are_checked(verdicts):
    v = verdicts["sleep_gamble"]
    assert v.status in ("incorrect", "timeout") and v.speedup is None, v.message


@pytest.mark.parametrize(
    "name, status, reason",
    [
        ("quantized_output", "rejected", "malformed reply"),
        ("deep_reply", "rejected", "not a line of the harness's protocol"),
        ("many_outputs", "incorrect", "expected a tensor, got list"),
        ("nvcc_dev_zero", "compile_error", "only <system> and local headers may be included"),
        ("aliases_by_position", "rejected", "malformed reply"),
        ("extra_huge_tensor", "rejected", "malformed reply"),
        ("describes_a_broadcast", "incorrect", "elements share memory (stride [0, 1])"),
    ],
)
def test_outputs_and_replies_built_to_break_the_judge_get_a_verdict(verdicts, name, status, reason):
    v = verdicts[name]
    assert v.status == status and reason in v.message, v.message


def test_an_output_that_only_looks_huge_costs_the_candidate_not_the_judge(verdicts):
    v = verdicts["expands_output"]
    # Made contiguous in its own process first (charged, under its memory limit): out of memory
    # there, or, where 4 GiB fit, refused by the judge for its shape without a byte read.
    assert (v.status, "out of memory" in v.message) == ("crash", True) or (
        v.status == "incorrect" and "shape mismatch: got (536870912,)" in v.message
    ), v.message


def test_the_arena_cannot_be_resized_by_the_candidate(verdicts):
    v = verdicts["grows_arena"]
    assert v.status == "ok" and "could not grow the arena" in v.stdout_tail, v.stdout_tail


@pytest.mark.skipif(
    os.geteuid() != 0, reason="files are told apart by the candidate's own user, as root only"
)
def test_files_the_candidate_leaves_in_shared_memory_are_removed(verdicts):
    assert verdicts["leaves_shm_file"].status == "ok"
    assert not [p for p in os.listdir("/dev/shm") if p.startswith("kerneldisc-test-")]


@pytest.mark.parametrize("name", ["mutates_input", "ctypes_pokes_inputs", "returns_input"])
def test_inputs_are_read_only_to_the_candidate(verdicts, name):
    v = verdicts[name]
    assert v.status == "crash" and "inputs are mapped read-only" in v.message, v.message


def test_the_input_region_cannot_be_made_to_hold_memory_nobody_is_charged_for(verdicts):
    v = verdicts["commits_arena_pages"]
    assert v.status == "compile_error" and "Bad file descriptor" in v.message, v.message


def test_the_candidate_cannot_kill_the_reference_and_blame_the_task(verdicts):
    v = verdicts["kills_reference_by_pidfd"]  # evaluate() returned: no TaskError reached the caller
    assert v.status == "crash" and "Operation not permitted" in v.message, v.message


@pytest.mark.skipif(os.geteuid() != 0, reason="the candidate's own user owns them, as root only")
def test_shared_memory_and_files_left_anywhere_writable_are_removed(verdicts):
    assert verdicts["leaves_sysv_memory"].status == "ok", verdicts["leaves_sysv_memory"].message
    for folder in ("/run/lock", "/var/tmp"):
        assert not os.path.exists(os.path.join(folder, "kerneldisc-test-left"))
    with open("/proc/sysvipc/shm") as f:
        rows = [line.split() for line in f.read().splitlines()[1:]]
    assert [r for r in rows if 61000 <= int(r[7]) <= 65533] == []  # column 8: the owner's uid


@pytest.mark.parametrize("name", ["conj_view", "add_torch@edge", "many_honest", "broadcast_output"])
def test_unusual_honest_kernels_are_ok(verdicts, name):
    v = verdicts[name]
    assert v.status == "ok" and v.correct, v.message


# --- the sandbox itself ------------------------------------------------------------------------


def test_every_way_out_of_the_sandbox_is_closed(verdicts):
    _gains_nothing(verdicts["escapes_sandbox"])


@pytest.mark.parametrize("name", ["kills_judge", "stops_judge"])
def test_the_candidate_cannot_signal_its_judge(verdicts, name):
    v = verdicts[name]
    assert v.status == "crash" and "PermissionError" in v.message, v.message


def test_a_forged_answer_on_the_judges_pipe_earns_nothing(verdicts):
    v = verdicts["forges_judge_answer"]
    # The judge is not dumpable and runs as another user: its pipes cannot be opened; were they,
    # the unsigned line would be refused by the caller.
    assert v.status in ("compile_error", "rejected") and v.speedup is None, v.message
    assert "Permission denied" in v.message or "not signed by the judge" in v.message


def test_a_helper_daemonised_out_of_the_group_is_charged_and_killed_with_the_evaluation(
    task, tmp_path, monkeypatch
):
    pidfile = tmp_path / "helper.pid"
    tmp_path.chmod(0o777)  # the candidate may run as another user
    monkeypatch.setenv("KERNELDISC_TEST_PIDFILE", str(pidfile))
    v = evaluate(task, CANDIDATES / "daemon_helper.py", CFG)
    assert v.status == "ok", v.message
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), f"the candidate's helper {pid} outlived its evaluation"


def test_a_helper_that_keeps_forking_is_killed_before_the_reference_is_timed(task, monkeypatch):
    token = f"kerneldisc-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("KERNELDISC_TEST_TOKEN", token)
    v = evaluate(task, CANDIDATES / "fork_hopper.py", CFG)
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
