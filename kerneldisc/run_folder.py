"""The run folder: what a discovery run leaves behind, and how a killed run picks up again.

Layout (the contract in docs/architecture.md):
  config.yml  summary.json  history.jsonl  steps.jsonl  candidates/<hash>.py  archive.json
  best_kernel.py  reference.json  adapter -> checkpoints/step-N/adapter  checkpoints/

Crash safety: a step becomes real only when `checkpoints/step-N/` is complete and the pointer
file `checkpoints/LATEST` names it (both made with atomic renames). Everything at the top level
is a published view of the latest checkpoint; `resume()` rebuilds those views from it, so a
`kill -9` at any instant loses at most the unfinished step and duplicates nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kerneldisc.errors import ConfigError

KEEP_CHECKPOINTS = 2


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:16]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Checkpoint:
    step: int
    path: Path

    @property
    def adapter(self) -> Path | None:
        p = self.path / "adapter"
        return p if p.is_dir() else None

    @property
    def archive(self) -> Path:
        return self.path / "archive.json"

    @property
    def policy_state(self) -> Path | None:
        p = self.path / "policy_state.pt"
        return p if p.is_file() else None


class RunFolder:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.candidates = self.root / "candidates"
        self.checkpoints = self.root / "checkpoints"

    # --- creation and opening -------------------------------------------------------------
    @classmethod
    def create(cls, root: Path, config: dict[str, Any]) -> RunFolder:
        root = Path(root)
        if (root / "config.yml").exists():
            raise ConfigError(f"{root} already holds a run; continue it with --resume {root}")
        if root.exists() and any(root.iterdir()):
            raise ConfigError(f"{root} exists and is not empty; choose another --out")
        root.mkdir(parents=True, exist_ok=True)
        run = cls(root)
        run.candidates.mkdir()
        run.checkpoints.mkdir()
        run.write_config(config)
        return run

    @classmethod
    def open(cls, root: Path) -> RunFolder:
        root = Path(root)
        if not (root / "config.yml").is_file():
            raise ConfigError(f"{root} is not a kerneldisc run folder (no config.yml)")
        return cls(root)

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_text(self.root / "config.yml", yaml.safe_dump(config, sort_keys=False))

    def config(self) -> dict[str, Any]:
        try:
            data = yaml.safe_load((self.root / "config.yml").read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self.root / 'config.yml'}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{self.root / 'config.yml'}: expected a mapping")
        return data

    # --- candidates and the reference timing ----------------------------------------------
    def write_candidate(self, code: str) -> tuple[str, str]:
        """Content-addressed, so re-running a step after a crash rewrites the same file."""
        digest = code_hash(code)
        rel = f"candidates/{digest}.py"
        path = self.root / rel
        if not path.exists():
            atomic_write_text(path, code)
        return digest, rel

    def write_reply(self, text: str) -> str:
        """The model's whole reply, kept so gated replies can be read too."""
        rel = f"replies/{code_hash(text)}.txt"
        path = self.root / rel
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            atomic_write_text(path, text)
        return rel

    def save_reference(self, reference: dict[str, Any]) -> None:
        atomic_write_json(self.root / "reference.json", reference)

    def load_reference(self) -> dict[str, Any] | None:
        p = self.root / "reference.json"
        return json.loads(p.read_text()) if p.is_file() else None

    # --- checkpoints ----------------------------------------------------------------------
    def latest(self) -> Checkpoint | None:
        pointer = self.checkpoints / "LATEST"
        if not pointer.is_file():
            return None
        name = pointer.read_text().strip()
        path = self.checkpoints / name
        if not (path / "meta.json").is_file():
            raise ConfigError(f"{pointer} names {name}, which is incomplete; the run folder is damaged")
        meta = json.loads((path / "meta.json").read_text())
        return Checkpoint(step=int(meta["step"]), path=path)

    def commit_step(
        self,
        step: int,
        archive_file: Path,
        history: list[dict[str, Any]],
        step_record: dict[str, Any] | None,
        summary: dict[str, Any],
        save_adapter=None,
        best_code: str | None = None,
        save_policy_state=None,
    ) -> Checkpoint:
        """Make step `step` durable, then publish the top-level views from it."""
        prev = self.latest()
        before = self._counts(prev)
        tmp = self.checkpoints / f".tmp-step-{step:06d}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        shutil.copy2(archive_file, tmp / "archive.json")
        if save_adapter is not None:
            save_adapter(tmp / "adapter")
        elif prev is not None and prev.adapter is not None:
            shutil.copytree(prev.adapter, tmp / "adapter")
        if save_policy_state is not None:
            save_policy_state(tmp / "policy_state.pt")
        _write_lines(tmp / "history.jsonl", history)
        _write_lines(tmp / "steps.jsonl", [step_record] if step_record else [])
        atomic_write_json(tmp / "summary.json", summary)
        if best_code is not None:
            atomic_write_text(tmp / "best_kernel.py", best_code)
        meta = {"step": step, "history_before": before[0], "steps_before": before[1], "time": time.time()}
        atomic_write_json(tmp / "meta.json", meta)
        final = self.checkpoints / f"step-{step:06d}"
        if final.exists():  # a previous attempt died after the rename but before LATEST
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(self.checkpoints)
        atomic_write_text(self.checkpoints / "LATEST", final.name + "\n")
        ckpt = Checkpoint(step=step, path=final)
        self.publish(ckpt)
        self._prune(keep=final.name)
        return ckpt

    def publish(self, ckpt: Checkpoint) -> None:
        """Rebuild the top-level files so they say exactly what the checkpoint says."""
        meta = json.loads((ckpt.path / "meta.json").read_text())
        for name, before_key in (("history.jsonl", "history_before"), ("steps.jsonl", "steps_before")):
            kept = read_jsonl(self.root / name)[: meta[before_key]]
            _write_lines(self.root / name, kept + read_jsonl(ckpt.path / name))
        shutil.copy2(ckpt.archive, self.root / ".archive.json.tmp")
        os.replace(self.root / ".archive.json.tmp", self.root / "archive.json")
        shutil.copy2(ckpt.path / "summary.json", self.root / ".summary.json.tmp")
        os.replace(self.root / ".summary.json.tmp", self.root / "summary.json")
        if (ckpt.path / "best_kernel.py").is_file():
            atomic_write_text(self.root / "best_kernel.py", (ckpt.path / "best_kernel.py").read_text())
        link = self.root / "adapter"
        if ckpt.adapter is not None:
            tmp_link = self.root / ".adapter.tmp"
            if tmp_link.is_symlink() or tmp_link.exists():
                tmp_link.unlink()
            tmp_link.symlink_to(os.path.relpath(ckpt.adapter, self.root))
            os.replace(tmp_link, link)

    def _counts(self, ckpt: Checkpoint | None) -> tuple[int, int]:
        if ckpt is None:
            return 0, 0
        meta = json.loads((ckpt.path / "meta.json").read_text())
        return (
            meta["history_before"] + len(read_jsonl(ckpt.path / "history.jsonl")),
            meta["steps_before"] + len(read_jsonl(ckpt.path / "steps.jsonl")),
        )

    def _prune(self, keep: str) -> None:
        steps = sorted(p for p in self.checkpoints.glob("step-*") if p.is_dir())
        for old in steps[:-KEEP_CHECKPOINTS]:
            if old.name != keep:
                shutil.rmtree(old, ignore_errors=True)
        for tmp in self.checkpoints.glob(".tmp-step-*"):
            shutil.rmtree(tmp, ignore_errors=True)


def _write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
