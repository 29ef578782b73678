"""Problems written elsewhere (GPU MODE folders, KernelBench files) that cannot run as they are
on this machine get a message that says why and what to do, never a misleading one."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kerneldisc.errors import TaskError
from kerneldisc.evaluate import EvalConfig, evaluate
from kerneldisc.task import load_task

pytestmark = pytest.mark.slow

CANDIDATES = Path(__file__).parent / "candidates"


def _folder(tmp_path: Path, generate: str) -> Path:
    folder = tmp_path / "cuda_inputs"
    folder.mkdir()
    (folder / "task.yml").write_text(
        "tests:\n  - {size: 64, seed: 1}\nbenchmarks:\n  - {size: 64, seed: 2}\n"
    )
    (folder / "reference.py").write_text(
        "import torch\n\n\n"
        + textwrap.dedent(generate)
        + "\n\ndef ref_kernel(data):\n    a, b = data\n    return a + b\n"
    )
    return folder


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the GPU-less path")
@pytest.mark.parametrize(
    "generate",
    [
        # GPU MODE's style: a generator on the CUDA device
        """
        def generate_input(size, seed):
            gen = torch.Generator(device="cuda").manual_seed(seed)
            return (torch.randn(size, device="cuda", generator=gen), torch.randn(size, device="cuda", generator=gen))
        """,
        """
        def generate_input(size, seed):
            return (torch.ones(size).cuda(), torch.ones(size).cuda())
        """,
    ],
)
def test_inputs_made_on_cuda_without_a_gpu_say_so_and_how_to_give_a_cpu_path(tmp_path, generate):
    task = load_task(_folder(tmp_path, generate))
    with pytest.raises(TaskError) as caught:
        evaluate(task, CANDIDATES / "add_torch.py", EvalConfig(device="cpu", timeout_s=60))
    message = str(caught.value)
    assert "generate_input" in message and "makes its inputs on a CUDA device" in message
    assert "cpu_tests" in message and "-Wl,--no-as-needed" not in message


def _sized(tmp_path: Path, size: int) -> Path:
    folder = _folder(
        tmp_path, "def generate_input(size, seed):\n    return (torch.ones(size), torch.ones(size))\n"
    )
    (folder / "task.yml").write_text(
        f"tests:\n  - {{size: {size}, seed: 1}}\nbenchmarks:\n  - {{size: 64, seed: 2}}\nbytes: '12 * size'\n"
    )
    return folder


def test_published_sizes_beyond_this_machine_are_refused_before_anything_runs(tmp_path):
    task = load_task(_sized(tmp_path, 10**12))  # 12 TB of inputs and output
    with pytest.raises(TaskError) as caught:
        evaluate(task, CANDIDATES / "add_torch.py", EvalConfig(device="cpu", timeout_s=60))
    message = str(caught.value)
    assert "12,000,000 MB" in message and "{size: 1000000000000; seed: 1}" in message
    assert "MB available" in message and "cpu_tests" in message and "GPU" in message


def test_sizes_beyond_the_candidates_memory_limit_name_the_flag(tmp_path):
    from kerneldisc.errors import ConfigError

    task = load_task(_sized(tmp_path, 200_000_000))  # 2.4 GB of inputs and output
    with pytest.raises(
        ConfigError, match=r"memory limit of 1024 MB: raise it \(`kerneldisc eval --memory-limit"
    ):
        evaluate(task, CANDIDATES / "add_torch.py", EvalConfig(device="cpu", memory_limit_mb=1024))


def test_the_reference_is_not_held_to_the_candidates_memory_limit(tmp_path):
    """A reference that reserves more than the candidate may (here 1.6 GB of address space beside a
    1 GB candidate limit) is timed under its own cap: the candidate's verdict is its own."""
    folder = _folder(
        tmp_path, "def generate_input(size, seed):\n    return (torch.ones(size), torch.ones(size))\n"
    )
    (folder / "reference.py").write_text(
        "import torch\n\n\ndef generate_input(size, seed):\n    return (torch.ones(size), torch.ones(size))\n\n\n"
        "def ref_kernel(data):\n    a, b = data\n    scratch = torch.empty(400_000_000)  # reserved, never touched\n"
        "    return a + b + scratch[:1].zero_()\n"
    )
    v = evaluate(
        load_task(folder), CANDIDATES / "add_torch.py", EvalConfig(device="cpu", memory_limit_mb=1024)
    )
    assert v.status == "ok", v.message


def test_the_default_memory_limit_grows_with_the_tasks_sizes(tmp_path):
    from kerneldisc.evaluate.sizes import default_limit_mb

    task = load_task(_sized(tmp_path, 500_000_000))  # 6 GB of inputs and output
    assert default_limit_mb(task, "cpu", 8192) == 2048 + 4 * 6000
    assert default_limit_mb(load_task("vectoradd"), "cpu", 8192) == 8192  # small tasks keep the default


def test_a_folder_without_a_bytes_expression_is_sized_by_its_inputs(tmp_path):
    """No `bytes` expression (GPU MODE folders have none): the judge makes each size's inputs once
    and measures them before any candidate process exists."""
    from kerneldisc.errors import ConfigError

    folder = _folder(
        tmp_path, "def generate_input(size, seed):\n    return (torch.ones(size), torch.ones(size))\n"
    )
    (folder / "task.yml").write_text(
        "tests:\n  - {size: 64, seed: 1}\nbenchmarks:\n  - {size: 75000000, seed: 2}\n"
    )
    task = load_task(folder)  # the benchmark's inputs: 600 MB, taken as 1200 MB with the output
    with pytest.raises(ConfigError, match=r"size: 75000000.*1,200 MB.*memory limit of 1024 MB: raise it"):
        evaluate(task, CANDIDATES / "add_torch.py", EvalConfig(device="cpu", memory_limit_mb=1024))
