"""What the package tells users to type exists: every `--flag` in its text is a flag of some
`kerneldisc` command (or of the other tool the message names), every config key it names is a
discover setting."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import kerneldisc
from kerneldisc.cli import build_parser
from kerneldisc.config import FIELDS

PACKAGE = Path(kerneldisc.__file__).parent
# Flags of other programs that messages quote whole commands of (pip, nvcc, huggingface-cli, tensorboard).
OTHER_TOOLS = {"--no-deps", "--force-reinstall", "--ptx", "--local-dir", "--logdir"}
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
CONFIG_KEY = re.compile(r"config key '([a-z_]+)'|\b([a-z_]+) in a discover config")


def cli_flags() -> set[str]:
    flags: set[str] = set()
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            flags.update(o for o in action.option_strings if o.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return flags


def package_strings() -> list[tuple[str, str]]:
    """Every string constant of the package (f-string pieces included), with where it stands."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append((f"{path.relative_to(PACKAGE)}:{node.lineno}", node.value))
    return found


def test_the_scan_sees_flags_in_messages():
    texts = [text for _, text in package_strings()]
    assert any("--resume" in text for text in texts)
    assert "--resume" in cli_flags() and "--stepz" not in cli_flags()


def test_every_flag_a_message_names_exists():
    known = cli_flags() | OTHER_TOOLS
    unknown = [
        f"{where}: {flag}"
        for where, text in package_strings()
        for flag in FLAG.findall(text)
        if flag not in known
    ]
    assert unknown == []


def test_every_config_key_a_message_names_is_a_discover_setting():
    named = [
        (where, key)
        for where, text in package_strings()
        for match in CONFIG_KEY.finditer(text)
        for key in match.groups()
        if key
    ]
    assert named, "the scan found no message naming a config key"
    assert [f"{where}: {key}" for where, key in named if key not in FIELDS] == []
