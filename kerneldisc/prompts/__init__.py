"""Prompts for the policy and parsing of its replies.

`build_messages` / `build_prompt` turn a task and an archive state into an improvement prompt
(templates: the `*.md` and `*.txt` files in this package); `extract_code` takes the candidate
out of a reply and `format_gate` rejects, with a reason, replies that cannot be a candidate.
"""

from kerneldisc.prompts.compose import (
    STOP,
    STYLES,
    PromptLimits,
    build_messages,
    build_prompt,
    clip,
    format_us,
)
from kerneldisc.prompts.parse import NO_CODE, extract_code, format_gate, language_problem

__all__ = [
    "NO_CODE",
    "STOP",
    "STYLES",
    "PromptLimits",
    "build_messages",
    "build_prompt",
    "clip",
    "extract_code",
    "format_gate",
    "format_us",
    "language_problem",
]
