"""Reading a user's YAML file (a config, a suite) with errors that name the file and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kerneldisc.errors import ConfigError


def read_yaml_mapping(path: str | Path, what: str, expected: str) -> dict[str, Any]:
    """The mapping at the top of `path`; `what` names the file's role ("config file"),
    `expected` says what the top level should hold."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {p} not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {str(exc).splitlines()[0]}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a UTF-8 text file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected {expected} at the top level")
    return data
