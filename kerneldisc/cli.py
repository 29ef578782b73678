"""Command-line entry point: parses flags and hands over to the library.

Each sub-command lives in `kerneldisc/commands/<name>.py` with `register(subparsers)` and a
`run(args) -> int` set as the parser's default `func`. Errors derived from `KerneldiscError`
become a one-line message and exit status 2; nothing else is caught here.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from kerneldisc import __version__
from kerneldisc.errors import KerneldiscError

COMMANDS = ("eval", "discover", "bench", "report")


class _Parser(argparse.ArgumentParser):
    """argparse exits with status 2 on bad usage already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kerneldisc",
        description=(
            "Turn a slow GPU kernel into a fast one by test-time reinforcement learning: "
            "sample candidate Triton/CUDA kernels from an LLM, judge them with a sandboxed "
            "evaluator, train the LLM on the rewards and search from the best attempts."
        ),
    )
    parser.add_argument("--version", action="version", version=f"kerneldisc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"kerneldisc.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Candidates run as this user: keep them out of this process's memory and pipes (the key
    # that authenticates the evaluator's answers lives here). See docs/evaluator.md.
    from kerneldisc.evaluate.sandbox import not_dumpable

    not_dumpable()
    try:
        return int(args.func(args) or 0)
    except KerneldiscError as exc:
        print(f"kerneldisc {args.command}: error: {exc}", file=sys.stderr)
        if getattr(args, "json", False):  # a script reading stdout gets an answer too
            print(json.dumps({"error": str(exc), "kind": type(exc).__name__}))
        return 2
    except KeyboardInterrupt:
        print(f"kerneldisc {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
