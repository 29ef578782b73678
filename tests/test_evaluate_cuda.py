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
