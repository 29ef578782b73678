"""The run folder: what a discovery run leaves behind, and how a killed run picks up again.

Layout (the contract in docs/architecture.md):
  config.yml  summary.json  history.jsonl  steps.jsonl  candidates/<hash>.py  replies/<hash>.txt
  archive.json  best_kernel.py  reference.json  adapter -> checkpoints/step-N/adapter
  tracking.json, and tensorboard/ and wandb/ (with --log, tracking.py: written by those libraries)
  checkpoints/step-N/ (archive.json, this step's history and step lines, summary.json,
  best_kernel.py, meta.json, policy_state.pt, adapter/)  checkpoints/LATEST  checkpoints/PUBLISHED

Crash safety: a step becomes real only when `checkpoints/step-N/` is complete and the pointer
file `checkpoints/LATEST` names it (both made with atomic renames). Everything at the top level
is a published view of the latest checkpoint, and `checkpoints/PUBLISHED` names the checkpoint
the views were last made from (written after them). Any command that opens a run folder
(`RunFolder.open`: resume, report) republishes when the two differ, so a `kill -9` or a Ctrl-C at
any instant loses at most the unfinished step, duplicates nothing, and never leaves the top level
behind for the next reader. This module is the only writer of a run's files (through
`kerneldisc.atomic`).
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

from kerneldisc.atomic import fsync_dir, read_lines, write_json, write_lines, write_text
from kerneldisc.errors import ConfigError

KEEP_CHECKPOINTS = 2


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:16]


read_jsonl = read_lines  # the one JSON-lines reader (kerneldisc.atomic)


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
        """An existing run folder, its top-level views brought up to its latest checkpoint."""
        root = Path(root)
        if not (root / "config.yml").is_file():
            raise ConfigError(f"{root} is not a kerneldisc run folder (no config.yml)")
        run = cls(root)
        run.recover()
        return run

    def recover(self) -> None:
        """Republish from the latest checkpoint when the top level lags behind it (a run stopped
        between writing `LATEST` and finishing the views)."""
        latest = self.latest()
        marker = self.checkpoints / "PUBLISHED"
        if latest is None:
            return
        if (
            not marker.is_file()
            or marker.read_text().strip() != latest.path.name
            or not (self.root / "summary.json").is_file()
        ):
            self.publish(latest)

    def write_config(self, config: dict[str, Any]) -> None:
        write_text(self.root / "config.yml", yaml.safe_dump(config, sort_keys=False))

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
            write_text(path, code)
        return digest, rel

    def write_reply(self, text: str) -> str:
        """The model's whole reply, kept so gated replies can be read too."""
        rel = f"replies/{code_hash(text)}.txt"
        path = self.root / rel
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            write_text(path, text)
        return rel

    def save_reference(self, reference: dict[str, Any]) -> None:
        write_json(self.root / "reference.json", reference)

    def summary(self) -> dict[str, Any] | None:
        """summary.json as last published; None where there is none yet (or it is unreadable)."""
        try:
            found = json.loads((self.root / "summary.json").read_text())
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def tracking(self) -> dict[str, Any]:
        """tracking.json: the W&B run id and, per tracker, the last step it holds for sure (empty
        where the run has never been tracked). Not part of a checkpoint: trackers only watch."""
        try:
            found = json.loads((self.root / "tracking.json").read_text())
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}

    def write_tracking(self, state: dict[str, Any]) -> None:
        write_json(self.root / "tracking.json", state)

    def load_reference(self) -> dict[str, Any] | None:
        p = self.root / "reference.json"
        return json.loads(p.read_text()) if p.is_file() else None

    def save_references(self, by_group: dict[str, dict[str, Any]]) -> None:
        """A Ray run's reference per device group (GPU model or CPU machine) that judged a
        candidate; reference.json stays the first of them, the one prompts and summaries quote."""
        write_json(self.root / "references.json", by_group)

    def load_references(self) -> dict[str, dict[str, Any]]:
        p = self.root / "references.json"
        return json.loads(p.read_text()) if p.is_file() else {}

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

    def load_archive(self):
        """The archive as the latest checkpoint holds it."""
        from kerneldisc.search import Archive

        latest = self.latest()
        if latest is None:
            raise ConfigError(f"{self.root} has no finished step to resume from")
        return Archive.load(latest.archive)

    def commit_step(
        self,
        step: int,
        archive: dict[str, Any],
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
        write_json(tmp / "archive.json", archive, indent=1)
        if save_adapter is not None:
            save_adapter(tmp / "adapter")
        elif prev is not None and prev.adapter is not None:
            shutil.copytree(prev.adapter, tmp / "adapter")
        if save_policy_state is not None:
            save_policy_state(tmp / "policy_state.pt")
        write_lines(tmp / "history.jsonl", history)
        write_lines(tmp / "steps.jsonl", [step_record] if step_record else [])
        write_json(tmp / "summary.json", summary)
        if best_code is not None:
            write_text(tmp / "best_kernel.py", best_code)
        meta = {"step": step, "history_before": before[0], "steps_before": before[1], "time": time.time()}
        write_json(tmp / "meta.json", meta)
        final = self.checkpoints / f"step-{step:06d}"
        if final.exists():  # a previous attempt died after the rename but before LATEST
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(self.checkpoints)
        write_text(self.checkpoints / "LATEST", final.name + "\n")
        ckpt = Checkpoint(step=step, path=final)
        self.publish(ckpt)
        self._prune(keep=final.name)
        return ckpt

    def publish(self, ckpt: Checkpoint) -> None:
        """Rebuild the top-level files so they say exactly what the checkpoint says."""
        meta = json.loads((ckpt.path / "meta.json").read_text())
        for name, before_key in (("history.jsonl", "history_before"), ("steps.jsonl", "steps_before")):
            kept = read_lines(self.root / name)[: meta[before_key]]
            write_lines(self.root / name, kept + read_lines(ckpt.path / name))
        for name in ("archive.json", "summary.json", "best_kernel.py"):
            if (ckpt.path / name).is_file():
                write_text(self.root / name, (ckpt.path / name).read_text())
        link = self.root / "adapter"
        if ckpt.adapter is not None:
            tmp_link = self.root / ".adapter.tmp"
            if tmp_link.is_symlink() or tmp_link.exists():
                tmp_link.unlink()
            tmp_link.symlink_to(os.path.relpath(ckpt.adapter, self.root))
            os.replace(tmp_link, link)
        write_text(self.checkpoints / "PUBLISHED", ckpt.path.name + "\n")  # last: the views are whole

    def _counts(self, ckpt: Checkpoint | None) -> tuple[int, int]:
        if ckpt is None:
            return 0, 0
        meta = json.loads((ckpt.path / "meta.json").read_text())
        return (
            meta["history_before"] + len(read_lines(ckpt.path / "history.jsonl")),
            meta["steps_before"] + len(read_lines(ckpt.path / "steps.jsonl")),
        )

    def _prune(self, keep: str) -> None:
        steps = sorted(p for p in self.checkpoints.glob("step-*") if p.is_dir())
        for old in steps[:-KEEP_CHECKPOINTS]:
            if old.name != keep:
                shutil.rmtree(old, ignore_errors=True)
        for tmp in self.checkpoints.glob(".tmp-step-*"):
            shutil.rmtree(tmp, ignore_errors=True)
