"""Prompts from archive states, code extraction from replies, and the per-task format gate."""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from judged import judged

from kerneldisc.prompts import build_messages, build_prompt, clip, extract_code, format_gate, language_problem
from kerneldisc.search import Archive
from kerneldisc.task import Task, load_task

REFERENCE = """\
import torch


def generate_input(n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=gen)


def ref_kernel(data):
    return torch.relu(data)
"""

SUBMISSION = """\
import torch
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offsets, mask=offsets < n)
    tl.store(out_ptr + offsets, tl.maximum(x, 0.0), mask=offsets < n)


def custom_kernel(data):
    out = torch.empty_like(data)
    relu_kernel[(triton.cdiv(data.numel(), 256),)](data, out, data.numel(), BLOCK=256)
    return out
"""

TASK_YML = """\
name: relu
language: triton
description: |
  Elementwise ReLU of a float32 vector: out = max(x, 0).
tests:
  - {n: 1000000, seed: 1}
benchmarks:
  - {n: 16777216, seed: 11}
  - {n: 67108864, seed: 12}
cpu_tests:
  - {n: 1000, seed: 1}
cpu_benchmarks:
  - {n: 4096, seed: 21}
tolerances: {rtol: 1.0e-4, atol: 1.0e-5}
"""


@pytest.fixture
def task(tmp_path: Path) -> Task:
    folder = tmp_path / "relu"
    folder.mkdir()
    (folder / "reference.py").write_text(REFERENCE)
    (folder / "submission.py").write_text(SUBMISSION)
    (folder / "task.yml").write_text(TASK_YML)
    return load_task(folder)


@pytest.fixture
def archive(task: Task) -> Archive:
    archive = Archive()
    archive.add_root(judged(task.submission_source, 1.25, 812.5, "ok", "all tests passed", speedup=None))
    archive.add_empty_root()
    return archive


def user_text(messages: list[dict[str, str]]) -> str:
    assert [m["role"] for m in messages] == ["system", "user"]
    return messages[1]["content"]


def test_prompt_holds_task_reference_code_runtime_speedup_target_and_format(task, archive):
    root = archive.states["s000000"]
    messages = build_messages(task, root, 500.0, "NVIDIA H100 80GB HBM3", reference_us=1625.0)
    assert "expert" in messages[0]["content"] and "NVIDIA H100" in messages[0]["content"]
    text = user_text(messages)
    assert "Elementwise ReLU of a float32 vector" in text
    assert "def ref_kernel(data):\n    return torch.relu(data)" in text
    assert "rtol = 0.0001 and atol = 1e-05" in text
    assert "def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):" in text
    assert "Current runtime: 812 µs, a 2.00x speedup over the reference." in text
    assert "Target runtime: 500 µs (current 812 µs, 312 µs to go)" in text
    assert "- n: 16777216; seed: 11\n- n: 67108864; seed: 12" in text
    assert "geometric mean" in text
    assert "`custom_kernel(data)`" in text and "@triton.jit" in text and "```python" in text


def test_speedup_recorded_with_the_state_wins_over_the_reference_runtime(task, archive):
    root = archive.states["s000000"]
    root.extra["speedup"] = 3.0
    text = user_text(build_messages(task, root, None, "H100", reference_us=1625.0))
    assert "a 3.00x speedup over the reference" in text
    assert "as fast as you can" in text


def test_failed_state_shows_the_evaluator_message_instead_of_a_runtime(task):
    archive = Archive()
    message = "test n: 1000; seed: 1: mismatch at index 3 (got -0.5, expected 0.0)"
    broken = archive.add_root(
        judged("def custom_kernel(data):\n    return data\n", 0.0, None, "incorrect", message)
    )
    text = user_text(build_messages(task, broken, 500.0, "H100"))
    assert "status `incorrect`" in text
    assert "mismatch at index 3" in text
    assert "Current runtime" not in text
    assert "Target runtime: 500 µs." in text


def test_empty_root_prompt_starts_from_a_skeleton_without_a_runtime(task, archive):
    empty = archive.states["s000001"]
    text = user_text(build_messages(task, empty, 500.0, "H100"))
    assert "No kernel has been written yet" in text
    assert "def custom_kernel(data):" in text
    assert "µs (" not in text and "-0.0" not in text and "Current runtime" not in text


def test_kernelbench_tasks_ask_for_model_new(task, archive):
    kb = replace(task, kind="kernelbench")
    text = user_text(build_messages(kb, archive.states["s000001"], None, "H100"))
    assert "class ModelNew(torch.nn.Module)" in text
    assert "same output as `Model`" in text
    assert "class ModelNew(nn.Module):" in text  # the KernelBench skeleton


def test_cpu_prompts_list_the_cpu_benchmarks(task, archive):
    text = user_text(build_messages(task, archive.states["s000000"], None, "cpu"))
    assert "- n: 4096; seed: 21" in text and "16777216" not in text
    assert "Triton's interpreter" in text


def test_build_prompt_joins_system_and_user_messages(task, archive):
    state = archive.states["s000000"]
    messages = build_messages(task, state, 400.0, "H100")
    assert (
        build_prompt(task, state, 400.0, "H100") == messages[0]["content"] + "\n\n" + messages[1]["content"]
    )


def test_huge_reference_and_code_are_cut_with_notes_to_fit_a_small_context(task):
    lines = [f"    x{i} = data * {i}  # step {i}" for i in range(3000)]
    big = "def ref_kernel(data):\n" + "\n".join(lines) + "\n    return data\n"
    huge = replace(task, reference_source=big, description="Word " * 5000)
    archive = Archive()
    state = archive.add_root(judged(big.replace("ref_kernel", "custom_kernel"), 1.0, 10.0, "ok"))
    prompt = build_prompt(huge, state, None, "H100")
    assert len(prompt) < 16_000  # about 5k tokens: room for a reply in SmolLM2's 8k context
    assert "more lines of the reference omitted to fit the context]" in prompt
    assert "more lines of the current kernel omitted to fit the context]" in prompt
    assert "description truncated:" in prompt  # a single 25k-character line
    # Cuts fall between lines: every kept body line is whole.
    body = [line for line in prompt.splitlines() if line.startswith("    x")]
    assert body and all(re.fullmatch(r"    x(\d+) = data \* \1  # step \1", line) for line in body)


def test_clip_keeps_the_tail_of_messages_with_a_note():
    message = "\n".join(f"frame {i}" for i in range(100)) + "\nValueError: bad shape"
    clipped = clip(message, 60, "message", keep="tail")
    assert clipped.endswith("frame 99\nValueError: bad shape")
    assert clipped.startswith("[… ") and "more lines of the message omitted" in clipped
    assert clip("short", 60, "message") == "short"


# --- extraction -------------------------------------------------------------------------------


def test_extract_takes_the_last_python_block():
    reply = "First try:\n```python\nx = 1\n```\nBetter:\n```python\nx = 2\n```\nDone."
    assert extract_code(reply) == "x = 2\n"


def test_extract_accepts_py_tag_and_ignores_later_non_python_blocks():
    reply = "```py\ndef custom_kernel(data):\n    return data\n```\nRun it with:\n```bash\npython x.py\n```"
    assert extract_code(reply) == "def custom_kernel(data):\n    return data\n"


def test_unterminated_final_block_counts():
    reply = "<think>plan</think>\n```python\nx = 1\n```\n```python\nimport torch\n\ndef custom_kernel(d):\n    return d"
    assert extract_code(reply) == "import torch\n\ndef custom_kernel(d):\n    return d\n"


def test_fence_closing_on_the_last_code_line_is_handled():
    assert extract_code("```python\nx = 1\ny = 2```\ntrailing words") == "x = 1\ny = 2\n"


def test_bare_block_is_taken_only_when_it_looks_like_python():
    assert extract_code("```\nimport torch\nx = torch.ones(2)\n```") == "import torch\nx = torch.ones(2)\n"
    assert extract_code("```\nmake && ./run --fast\n```") is None
    assert extract_code("no code at all") is None
    assert extract_code("```python\n\n```") is None


# --- format gate ------------------------------------------------------------------------------


def test_starting_submission_passes_the_gate(task):
    assert format_gate(task, task.submission_source) is None


def test_gate_rejects_missing_code_and_syntax_errors(task):
    assert format_gate(task, None) == "no ```python code block in the reply"
    assert format_gate(task, "def custom_kernel(data):\n    return (data\n") == (
        "syntax error at line 2: '(' was never closed"
    )


def test_gate_requires_custom_kernel(task):
    code = SUBMISSION.replace("def custom_kernel(data):", "def run(data):")
    assert format_gate(task, code) == "no top-level function custom_kernel(data)"


def test_the_kernel_language_is_a_metric_unless_required(task):
    """As published: a correct reply earns its reward whatever it is written in; the language is
    recorded (language_problem), and gated only where a task or run asks for it."""
    plain = "import torch\n\ndef custom_kernel(data):\n    return torch.relu(data)\n"
    assert format_gate(task, plain) is None
    assert "no @triton.jit kernel" in language_problem(task, plain)
    assert "no @triton.jit kernel" in format_gate(task, plain, require_language=True)
    assert format_gate(replace(task, language="any"), plain, require_language=True) is None
    assert language_problem(task, task.submission_source) is None
    cuda = replace(task, language="cuda")
    assert "no CUDA C++ source" in language_problem(cuda, plain)
    assert language_problem(cuda, plain + "src = '__global__ void k() {}'\n") is None


def test_gate_accepts_autotune_over_jit_and_rejects_autotune_alone(task):
    header = "import triton\nimport triton.language as tl\n\ndef custom_kernel(data):\n    return data\n\n"
    autotune = "@triton.autotune(configs=[triton.Config({'BLOCK': 128})], key=['n'])\n"
    kernel = "def k(x_ptr, n, BLOCK: tl.constexpr):\n    pass\n"
    assert language_problem(task, header + autotune + "@triton.jit\n" + kernel) is None
    assert language_problem(task, header + "from triton import jit\n\n@jit\n" + kernel) is None
    assert (
        language_problem(task, header + autotune + kernel)
        == "@triton.autotune needs @triton.jit beneath it on the kernel"
    )


def test_gate_requires_model_new_for_kernelbench_tasks(task):
    kb = replace(task, kind="kernelbench")
    assert (
        format_gate(kb, SUBMISSION)
        == "no top-level class ModelNew (KernelBench candidates define ModelNew(nn.Module))"
    )
    model_new = SUBMISSION + textwrap.dedent(
        """
        class ModelNew(torch.nn.Module):
            def forward(self, x):
                return custom_kernel(x)
        """
    )
    assert format_gate(kb, model_new) is None


def test_the_compact_prompt_holds_the_reference_function_the_kernel_and_opens_the_reply(task, archive):
    root = archive.states["s000000"]
    messages = build_messages(task, root, None, "cpu", reference_us=1625.0, style="compact")
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[2]["content"] == "```python\n"  # the model continues inside a code block
    user = messages[1]["content"]
    assert "def ref_kernel(data):\n    return torch.relu(data)" in user
    assert "generate_input" not in user  # the reference function alone, not its input generators
    assert "Current kernel (812 µs, 2x the reference):" in user and "def relu_kernel" in user
    assert "`custom_kernel(data)`" in user
    assert len("".join(m["content"] for m in messages)) < len("".join(m["content"] for m in build_messages(
        task, root, None, "cpu", reference_us=1625.0)))  # fmt: skip
    empty = build_messages(task, archive.states["s000001"], None, "cpu", style="compact")
    assert "No kernel yet." in empty[1]["content"]


def test_the_improvement_prompt_shows_what_a_gpu_compiler_made_of_the_kernel(task):
    """Registers, spills and shared memory of the state's Triton kernels, as the evaluator compiled
    them for sm_90, reach the model with the kernel (and through the archive, which keeps them)."""
    rollout = judged(task.submission_source, 1.25, 812.5, "ok", "all tests passed")
    rollout.verdict.gpu_compile = [
        {"kernel": "relu_kernel", "target": "sm_90", "ok": True, "registers": 40, "spill_stores": 16,
         "spill_loads": 16, "stack_bytes": 16, "shared_bytes": 0, "error": None},
    ]  # fmt: skip
    archive = Archive()
    archive.add_root(rollout)
    text = user_text(build_messages(task, archive.states["s000000"], None, "cpu", reference_us=1625.0))
    assert (
        "Compiled: relu_kernel for sm_90: 40 registers per thread, 16 bytes spilled, 0 bytes of shared memory."
        in text
    )
    again = Archive.from_dict(json.loads(json.dumps(archive.to_dict())))
    assert again.states["s000000"].extra["gpu_compile"][0]["registers"] == 40
