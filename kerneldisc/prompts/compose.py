"""Improvement prompts built from a task and an archive state.

The wording lives in the template files beside this module (`string.Template`, `$name`
placeholders, so braces in code need no escaping). The prompt holds the task description, the
PyTorch reference, the benchmark configurations, the state's code with its runtime and speedup
(or the evaluator's message when it failed; for the empty root a skeleton to design a kernel
from scratch, since the starting submission is the other root's code), the target and the output format. Long parts are cut at line boundaries with a
note saying what was left out, so a small model's context (SmolLM2: 8k tokens) still holds the
prompt and a reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

from kerneldisc.search import State
from kerneldisc.task import Task, spec_label

TEMPLATE_DIR = Path(__file__).resolve().parent
RANKING_WORDS = {"geom": "geometric mean", "mean": "arithmetic mean"}
STYLES = ("full", "compact")
# The compact style opens the model's reply with the code fence (the model continues from it),
# and the reply is complete at the first closing fence (`STOP`).
REPLY_OPENING = "```python\n"
STOP = ["```"]
COMPACT_SYSTEM = "You write fast, correct GPU kernels in Python (PyTorch, Triton)."


@dataclass(frozen=True)
class PromptLimits:
    """Character budgets per part (about 3–4 characters per token for code and English)."""

    description_chars: int = 2500
    reference_chars: int = 4000
    code_chars: int = 6000
    message_chars: int = 1200
    benchmark_lines: int = 12


def build_messages(
    task: Task,
    state: State,
    target_us: float | None,
    device: str,
    reference_us: float | None = None,
    limits: PromptLimits = PromptLimits(),
    style: str = "full",
) -> list[dict[str, str]]:
    """Chat messages (system: the expert role; user: the task and the kernel to improve).

    `reference_us` (the reference's measured runtime) gives the speedup when the state does not
    carry one in `extra["speedup"]`. `style="compact"` is the variant for small models (the
    embedded 135M one): the task, the reference function and the current kernel in a few lines,
    and an assistant turn already opened with a code fence (see docs/models.md).
    """
    if style == "compact":
        return _compact(task, state, reference_us, limits)
    system = _template("system.md").substitute(device=_device_words(device))
    user = _user(task, state, target_us, device, reference_us, limits)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _compact(
    task: Task, state: State, reference_us: float | None, limits: PromptLimits
) -> list[dict[str, str]]:
    entry = "class ModelNew(torch.nn.Module)" if task.kind == "kernelbench" else "`custom_kernel(data)`"
    if state.is_empty_root:
        current = "No kernel yet."
    elif state.correct:
        runtime = f"{format_us(state.runtime_us)} µs" if state.runtime_us else "not timed"
        speedup = state.extra.get("speedup") or (
            reference_us / state.runtime_us if reference_us and state.runtime_us else None
        )
        ratio = f", {speedup:.3g}x the reference" if speedup else ""
        code = clip(state.code.rstrip(), limits.code_chars // 2, "current kernel")
        current = f"Current kernel ({runtime}{ratio}):\n```python\n{code}\n```"
    else:
        message = clip(
            state.message.strip().splitlines()[-1] if state.message.strip() else "", 300, "message"
        )
        code = clip(state.code.rstrip(), limits.code_chars // 2, "last attempt")
        current = f"Last attempt ({state.status}: {message}):\n```python\n{code}\n```"
    user = _template("compact.md").substitute(
        description=clip((task.description or task.name).strip(), 400, "description"),
        reference=clip(_entry_source(task).rstrip(), limits.reference_chars, "reference"),
        current=current,
        entry=entry,
    )
    return [
        {"role": "system", "content": COMPACT_SYSTEM},
        {"role": "user", "content": user.strip()},
        {"role": "assistant", "content": REPLY_OPENING},
    ]


def _entry_source(task: Task) -> str:
    """The reference's entry point alone (`ref_kernel`, or KernelBench's `Model`), not its input
    generators: what a small model needs to copy the semantics from."""
    import ast

    wanted = "Model" if task.kind == "kernelbench" else "ref_kernel"
    try:
        tree = ast.parse(task.reference_source)
    except SyntaxError:
        return task.reference_source
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == wanted:
            found = ast.get_source_segment(task.reference_source, node)
            if found:
                return found
    return task.reference_source


def build_prompt(*args: Any, **kwargs: Any) -> str:
    """The same prompt as one string, for models without a chat template (build_messages' arguments)."""
    return "\n\n".join(m["content"] for m in build_messages(*args, **kwargs))


def _user(
    task: Task,
    state: State,
    target_us: float | None,
    device: str,
    reference_us: float | None,
    limits: PromptLimits,
) -> str:
    _, benchmarks = task.specs_for(device)
    return (
        _template("improve.md")
        .substitute(
            task_name=task.name,
            description=clip(task.description or "(no description)", limits.description_chars, "description"),
            reference_entry="Model" if task.kind == "kernelbench" else "ref_kernel",
            rtol=f"{task.rtol:g}",
            atol=f"{task.atol:g}",
            reference=clip(task.reference_source.rstrip(), limits.reference_chars, "reference"),
            ranking=RANKING_WORDS.get(task.ranking_by, task.ranking_by),
            device=_device_words(device),
            benchmarks=_benchmark_lines(benchmarks, limits.benchmark_lines),
            current=_current(task, state, reference_us, limits).strip(),
            target=_target(state, target_us),
            output_format=_output_format(task),
        )
        .strip()
    )


def _current(task: Task, state: State, reference_us: float | None, limits: PromptLimits) -> str:
    if state.is_empty_root:
        # A fresh design, not the starting submission again: that one is the other root.
        return _template("current_empty.md").substitute(code=_skeleton(task).rstrip())
    code = clip(state.code.rstrip(), limits.code_chars, "current kernel")
    if state.correct:
        return _template("current_kernel.md").substitute(
            code=code, measurement=_measurement(state, reference_us)
        )
    message = clip(state.message.strip() or "(no message)", limits.message_chars, "message", keep="tail")
    return _template("current_failed.md").substitute(code=code, status=state.status, message=message)


def _measurement(state: State, reference_us: float | None) -> str:
    runtime = state.runtime_us
    if runtime is None or not runtime > 0:
        return "Its runtime was not measured."
    speedup = state.extra.get("speedup")
    if speedup is None and reference_us is not None and reference_us > 0:
        speedup = reference_us / runtime
    text = f"Current runtime: {format_us(runtime)} µs"
    if speedup is not None:
        text += f", a {speedup:.2f}x speedup over the reference"
    return text + "." + _compiled(state)


def _compiled(state: State) -> str:
    """What a GPU's compiler made of the kernel's Triton kernels (registers, spills, shared
    memory per target), as the evaluator recorded it."""
    entries = [e for e in state.extra.get("gpu_compile") or [] if isinstance(e, dict) and e.get("ok")]
    if not entries:
        return ""
    parts = [
        f"{e.get('kernel')} for {e.get('target')}: {e.get('registers')} registers per thread, "
        f"{e.get('spill_stores') or 0} bytes spilled, {e.get('shared_bytes') or 0} bytes of shared memory"
        for e in entries[:8]
    ]
    return "\nCompiled: " + "; ".join(parts) + "."


def _target(state: State, target_us: float | None) -> str:
    runtime = state.runtime_us if state.correct and state.runtime_us and state.runtime_us > 0 else None
    if target_us is None or not target_us > 0:
        return "Make the kernel as fast as you can while keeping it correct."
    text = f"Target runtime: {format_us(target_us)} µs"
    if runtime is not None:
        gap = runtime - target_us
        if gap > 0:
            text += f" (current {format_us(runtime)} µs, {format_us(gap)} µs to go)"
        else:
            text += f" (already met at {format_us(runtime)} µs; go further)"
    return text + ". Keep the kernel correct."


def _output_format(task: Task) -> str:
    if task.kind == "kernelbench":
        entry = (
            "`class ModelNew(torch.nn.Module)` taking the same constructor arguments as `Model` "
            "and returning the same output from `forward` for the same inputs"
        )
    else:
        entry = "`custom_kernel(data)`, which takes the input described above and returns the output"
    name = {"triton": "format_triton.md", "cuda": "format_cuda.md"}.get(task.language, "format_any.md")
    return _template(name).substitute(entry=entry)


def _skeleton(task: Task) -> str:
    name = "skeleton_kernelbench.txt" if task.kind == "kernelbench" else "skeleton_folder.txt"
    return (TEMPLATE_DIR / name).read_text()


def _benchmark_lines(specs: list[dict], limit: int) -> str:
    lines = [f"- {spec_label(spec)}" for spec in specs[:limit]]
    if len(specs) > limit:
        lines.append(f"- [… {len(specs) - limit} more configurations omitted]")
    return "\n".join(lines) if lines else "- (the task lists none)"


def _device_words(device: str) -> str:
    return "the CPU (Triton's interpreter)" if device == "cpu" else device


def format_us(value: float) -> str:
    """Microseconds at a precision that suits the size (never '-0.0')."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def clip(text: str, max_chars: int, what: str, keep: str = "head") -> str:
    """`text` cut to whole lines within `max_chars`, with a note saying how much was left out.

    keep="head" keeps the first lines (source code), keep="tail" the last (tracebacks). A
    single line longer than the budget is cut inside, and the note says so.
    """
    if len(text) <= max_chars:
        return text
    lines = text.splitlines()
    ordered = lines if keep == "head" else lines[::-1]
    kept: list[str] = []
    used = 0
    for line in ordered:
        if used + len(line) + 1 > max_chars:
            break
        kept.append(line)
        used += len(line) + 1
    if not kept:
        cut = ordered[0][:max_chars] if keep == "head" else ordered[0][-max_chars:]
        note = f"[… {what} truncated: {len(text) - len(cut)} characters omitted to fit the context]"
        return f"{cut}\n{note}" if keep == "head" else f"{note}\n{cut}"
    omitted = len(lines) - len(kept)
    note = f"[… {omitted} more lines of the {what} omitted to fit the context]"
    if keep == "head":
        return "\n".join(kept + [note])
    return "\n".join([note] + kept[::-1])


@cache
def _template(name: str) -> Template:
    return Template((TEMPLATE_DIR / name).read_text())
