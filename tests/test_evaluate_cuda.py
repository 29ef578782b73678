"""CUDA: C++ extension candidates checked with nvcc when no GPU is here; on a GPU, a correct
candidate is timed with CUDA events and the verdict carries NVML's device facts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from kerneldisc.errors import ConfigError
from kerneldisc.evaluate import EvalConfig, evaluate
from kerneldisc.task import load_task

CANDIDATES = Path(__file__).parent / "candidates"
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the GPU-less path")


@pytest.fixture(scope="module")
def task():
    return load_task(CANDIDATES / "add_task")


@needs_nvcc
@no_gpu
def test_cuda_candidate_with_a_syntax_error_is_a_compile_error_with_nvcc_message(task):
    v = evaluate(task, CANDIDATES / "cuda_syntax_error.py", EvalConfig(device="auto"))
    assert v.status == "compile_error"
    assert v.message.startswith("nvcc: ")
    assert 'cuda_sources(5): error: expected a ";"' in v.message  # line 5 of the candidate's string


@no_gpu
def test_valid_cuda_candidate_without_a_gpu_earns_nothing(task):
    v = evaluate(task, CANDIDATES / "cuda_valid.py", EvalConfig(device="cpu"))
    assert v.status == "rejected" and not v.correct and v.speedup is None
    assert "needs a CUDA GPU to run" in v.message
    if shutil.which("nvcc"):
        assert "compiled with nvcc" in v.message
        # ptxas's figures for each __global__ function, as for Triton kernels
        (kernel,) = v.gpu_compile
        assert kernel["kernel"].startswith("add_kernel") and kernel["target"] == "sm_90"
        assert kernel["registers"] > 0 and kernel["spill_stores"] == 0 and kernel["ok"] is True


@no_gpu
def test_asking_for_cuda_without_a_gpu_is_a_caller_error(task):
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        evaluate(task, CANDIDATES / "add_torch.py", EvalConfig(device="cuda", timeout_s=60))


@pytest.mark.gpu
def test_correct_candidate_on_gpu_is_timed_with_device_facts(task):
    v = evaluate(task, CANDIDATES / "add_triton.py", EvalConfig(device="cuda", timeout_s=120))
    assert v.status == "ok", v.message
    assert v.device.startswith("cuda") and v.speedup > 0
    facts = v.device_facts
    assert facts["name"] and facts["device"].startswith("cuda")
    assert "driver" in facts or facts.get("nvml") == "unavailable"
    # what Triton really compiled for this card: registers, spills, shared memory per kernel
    assert v.gpu_compile and all(e["ok"] and e["registers"] > 0 for e in v.gpu_compile), v.gpu_compile


@pytest.mark.gpu
def test_valid_cuda_extension_runs_on_gpu(task):
    v = evaluate(task, CANDIDATES / "cuda_valid.py", EvalConfig(device="cuda", timeout_s=300))
    assert v.status == "ok", v.message


@pytest.mark.gpu
def test_side_stream_work_is_inside_the_timing_and_still_checked(task):
    code = (
        "import torch\n"
        "_side = torch.cuda.Stream()\n"
        "def custom_kernel(data):\n"
        "    a, b = data\n"
        "    out = torch.empty_like(a)\n"
        "    _side.wait_stream(torch.cuda.current_stream())\n"
        "    with torch.cuda.stream(_side):\n"
        "        torch.add(a, b, out=out)\n"
        "    return out\n"
    )
    v = evaluate(task, code, EvalConfig(device="cuda", timeout_s=120))
    assert v.status == "ok", v.message


@pytest.mark.gpu
@pytest.mark.parametrize("isolate", [True, False])
def test_inputs_and_outputs_cross_by_cuda_ipc_as_either_user(task, isolate):
    v = evaluate(
        task, CANDIDATES / "add_torch.py", EvalConfig(device="cuda", timeout_s=120, isolate_user=isolate)
    )
    assert v.status == "ok", v.message
    assert not v.interpreted and v.benchmarks[0].runtime.repeats >= 10


@pytest.mark.gpu
def test_a_gpu_reference_records_its_method_and_handshake(task):
    from kerneldisc.evaluate import measure_reference

    ref = measure_reference(task, EvalConfig(device="cuda", timeout_s=120))
    assert ref.method == "cuda-events-2"
    assert all(b.handshake_us is not None and b.handshake_us > 0 for b in ref.benchmarks)


UNDER_REPORTING = """
import torch

_elapsed = torch.cuda.Event.elapsed_time
torch.cuda.Event.elapsed_time = lambda self, end: _elapsed(self, end) / 1000.0


def custom_kernel(data):
    a, b = data
    out = a + b
    for _ in range(200):  # real work the events would hide
        out = out * 1.0
    return out
"""


@pytest.mark.gpu
def test_cuda_events_that_under_report_are_bounded_by_the_judges_clock(task):
    from kerneldisc.evaluate import measure_reference

    cfg = EvalConfig(device="cuda", timeout_s=120)
    ref = measure_reference(task, cfg)
    v = evaluate(task, UNDER_REPORTING, cfg, reference=ref)
    # 200 extra elementwise passes cannot be faster than one add, whatever the events say.
    assert v.status != "ok" or v.speedup < 1.0, v.message


NO_SYNC = """
import torch

torch.cuda.synchronize = lambda *args, **kwargs: None  # the harness's completion barrier, disabled
_side = torch.cuda.Stream()


def custom_kernel(data):
    a, b = data
    out = torch.zeros_like(a)
    _side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(_side):
        torch.cuda._sleep(50_000_000)  # tens of ms of GPU time before the answer lands
        torch.add(a, b, out=out)
    return out
"""


@pytest.mark.gpu
def test_gpu_work_left_running_after_the_reply_is_caught_or_charged(task):
    v = evaluate(task, NO_SYNC, EvalConfig(device="cuda", timeout_s=120))
    assert v.status in ("incorrect", "rejected") or v.speedup < 1.0, v.message
