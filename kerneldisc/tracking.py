"""Experiment tracking: a run's steps shown in TensorBoard and Weights & Biases as it goes
(`--log tensorboard`, `--log wandb`; docs/tracking.md).

Trackers only watch. A step reaches them after it is durable in the run folder, so they never
show a step the run lost; a tracker that fails says so once and is dropped, and the run goes on.

`tracking.json` (written through the RunFolder) holds the W&B run id and, per tracker, the last
step it holds for sure (logged and flushed) with the hash of the best kernel it last showed. When
a run resumes, or a tracker is first asked for on a run that already has steps, each tracker
catches up from `steps.jsonl`: TensorBoard drops whatever its folder holds after that step (its
readers honour `purge_step`) and the steps are logged again, so every step is there exactly once
even after a kill between the commit and the log. W&B continues the same run id.

The packages are optional extras, imported only when asked for; `require` checks them before a
run folder is written.
"""

from __future__ import annotations

import html
import netrc
import os
import secrets
import string
from collections.abc import Callable
from typing import Any

import yaml

from kerneldisc.config import LOGGERS, DiscoverConfig
from kerneldisc.errors import ConfigError
from kerneldisc.run_folder import RunFolder, code_hash, read_jsonl

TENSORBOARD_DIR = "tensorboard"
WANDB_PROJECT = "kerneldisc"  # unless WANDB_PROJECT says otherwise


def require(backends: list[str]) -> None:
    """Every asked-for tracker can be imported; otherwise one line naming the extra to install."""
    for name in backends:
        _import(name)


def _import(name: str) -> Any:
    if name not in LOGGERS:
        raise ConfigError(f"log: unknown tracker {name!r} (allowed: {', '.join(LOGGERS)})")
    try:
        if name == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            return SummaryWriter
        import wandb

        return wandb
    except ImportError:
        raise ConfigError(
            f"--log {name} needs the {name} package: pip install 'kerneldisc[{name}]'"
        ) from None
    except Exception as exc:  # installed but broken (a protobuf it cannot load, ...)
        first = (str(exc).splitlines() or [""])[0]
        raise ConfigError(
            f"--log {name}: the {name} package fails to import ({type(exc).__name__}: {first}); "
            f"reinstall it with pip install 'kerneldisc[{name}]'"
        ) from None


# --- what a step shows ------------------------------------------------------------------------


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """A step record's numbers under the names both trackers use; what a step lacks (no loss
    without training, no token counts from an endpoint) is left out rather than shown as 0."""
    n = record.get("n_candidates") or 0
    rewards = record.get("rewards") or []
    values = {
        "best/runtime_us": record.get("best_runtime_us"),
        "best/speedup": record.get("best_speedup"),
        # Records written before mean/max were kept carry the rewards themselves.
        "reward/mean": record.get("mean_reward", sum(rewards) / len(rewards) if rewards else None),
        "reward/max": record.get("max_reward", max(rewards) if rewards else None),
        "fraction/correct": record.get("correct_fraction"),
        "fraction/gated": _share(record.get("n_gated"), n),
        "fraction/truncated": _share(record.get("n_truncated"), n),
        "learn/beta": record.get("mean_beta"),
        "learn/loss": record.get("loss"),
        "learn/kl": record.get("kl"),
        "learn/ratio": record.get("ratio"),
        "learn/groups_trained": record.get("groups_trained"),
        "tokens/sampled": record.get("tokens_sampled"),
        "tokens/trained": record.get("tokens_trained"),
        "seconds/sampling": record.get("seconds_sampling"),
        "seconds/evaluating": record.get("seconds_evaluating"),
        "seconds/training": record.get("seconds_training"),
        "seconds/eval_queue_wait": record.get("seconds_eval_queue_wait"),
        "seconds/eval_busy": record.get("seconds_eval_busy"),
        "evaluators/alive": record.get("evaluators_alive"),
    }
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _share(count: int | None, n: int) -> float | None:
    return count / n if count is not None and n else None


# --- the trackers -------------------------------------------------------------------------------


class TensorBoardTracker:
    name = "tensorboard"

    def __init__(self, run: RunFolder, last_step: int | None):
        summary_writer = _import("tensorboard")
        # Readers drop every event at or after purge_step from the folder's earlier files: what a
        # killed run logged after the last step recorded in tracking.json is then logged again,
        # once. A tracker never confirmed purges everything (0).
        purge = 0 if last_step is None else last_step + 1
        self.writer = summary_writer(str(run.root / TENSORBOARD_DIR), purge_step=purge)

    def start(self, name: str, config: dict[str, Any]) -> None:
        self.writer.add_text("run", name, 0)
        self.writer.add_text("config", _indented(yaml.safe_dump(config, sort_keys=False)), 0)

    def log(self, step: int, values: dict[str, float], rewards: list[float], code: str | None) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        if rewards:
            import numpy as np

            self.writer.add_histogram("reward/distribution", np.asarray(rewards, dtype=float), step)
        if code is not None:
            self.writer.add_text("best_kernel", _indented(code), step)
        self.writer.flush()  # the step is on disk before tracking.json says so

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    name = "wandb"

    def __init__(self, run: RunFolder, run_id: str, config: DiscoverConfig, mode: str | None):
        wandb = _import("wandb")
        self.wandb = wandb
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or WANDB_PROJECT,
            name=run.root.name,
            id=run_id,
            resume="allow",  # the same run id continues the same W&B run
            dir=str(run.root),
            config=config.to_dict(),
            allow_val_change=True,  # a resume may grow `steps` or change `log`
            job_type="discover",
            mode=mode,
            # The run's own output stays on the terminal and in its logs, untouched.
            settings=wandb.Settings(console="off"),
        )

    def start(self, name: str, config: dict[str, Any]) -> None:
        """Name and config went to wandb.init."""

    def log(self, step: int, values: dict[str, float], rewards: list[float], code: str | None) -> None:
        data: dict[str, Any] = dict(values)
        if rewards:
            data["reward/distribution"] = self.wandb.Histogram(rewards)
        if code is not None:
            data["best_kernel"] = self.wandb.Html(f"<pre>{html.escape(code)}</pre>", inject=False)
        if data:
            self.run.log(data, step=step)

    def close(self) -> None:
        self.run.finish()


def _indented(text: str) -> str:
    """Markdown code block by indentation (TensorBoard renders text as Markdown); unlike a fence,
    nothing inside a kernel can close it."""
    return "\n".join("    " + line for line in text.splitlines())


def wandb_mode(echo: Callable[[str], None], run: RunFolder) -> str | None:
    """None (W&B decides: WANDB_MODE, its settings) where a user has set a mode or has a key;
    otherwise offline, said once, so a node with no network and no account still tracks."""
    if os.environ.get("WANDB_MODE") or _wandb_key_configured():
        return None
    echo(
        f"wandb: no API key and WANDB_MODE unset: logging offline to {run.root / 'wandb'} "
        f"(upload later with: wandb sync {run.root / 'wandb'}/offline-run-*)"
    )
    return "offline"


def _wandb_key_configured() -> bool:
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = (os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").split("://")[-1].split("/")[0]
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        return netrc.netrc(path).authenticators(host.split(":")[0]) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def new_run_id() -> str:
    """Eight lower-case letters and digits, the shape W&B gives its own run ids."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


# --- the trackers of one run ----------------------------------------------------------------------


class Trackers:
    """The trackers a run asked for. `log_step` after each durable step; `close` at the end."""

    def __init__(self, run: RunFolder, echo: Callable[[str], None], state: dict[str, Any]):
        self.run = run
        self.echo = echo
        self.state = state  # tracking.json
        self.active: list[Any] = []
        self._warned = False

    def log_step(self, record: dict[str, Any], best_code: str | None) -> None:
        """Show one committed step (its record from steps.jsonl) and, where it changed, the best
        kernel; then record in tracking.json how far each tracker got."""
        if not self.active:
            return
        for tracker in list(self.active):
            self._log(tracker, record, best_code)
        self._save()

    def _log(self, tracker: Any, record: dict[str, Any], best_code: str | None) -> None:
        if tracker not in self.active:  # dropped after a failure
            return
        mine = self.state.setdefault(tracker.name, {})
        digest = code_hash(best_code) if best_code is not None else None
        changed = best_code if digest is not None and digest != mine.get("best_kernel") else None
        try:
            tracker.log(int(record["step"]), scalars(record), list(record.get("rewards") or []), changed)
        except Exception as exc:
            self._fail(tracker, exc)
            return
        mine["step"] = int(record["step"])
        if changed is not None:
            mine["best_kernel"] = digest

    def _fail(self, tracker: Any, exc: BaseException) -> None:
        """One line, once; the tracker is dropped and a resume catches it up from steps.jsonl."""
        self.active.remove(tracker)
        self.echo(
            f"warning: {tracker.name} logging failed ({type(exc).__name__}: {_first_line(exc)}); the run goes "
            f"on without it (--resume catches it up from steps.jsonl)"
        )
        try:
            tracker.close()
        except Exception:
            pass

    def _save(self) -> None:
        try:
            self.run.write_tracking(self.state)
        except OSError as exc:
            # Worst case a resume logs a step again (TensorBoard purges it; W&B keeps its first).
            if not self._warned:
                self.echo(f"warning: cannot write tracking.json ({exc}); tracking goes on")
                self._warned = True

    def close(self) -> None:
        for tracker in list(self.active):
            try:
                tracker.close()
            except Exception as exc:
                self.echo(
                    f"warning: {tracker.name} did not close cleanly ({type(exc).__name__}: {_first_line(exc)})"
                )
        self.active = []


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:300]


def open_trackers(cfg: DiscoverConfig, run: RunFolder, echo: Callable[[str], None] = print) -> Trackers:
    """The trackers `cfg.log` asks for, each caught up with the run's committed steps. A tracker
    that cannot start says why in one line and the run goes on without it."""
    state = run.tracking()
    trackers = Trackers(run, echo, state)
    if not cfg.log:
        return trackers
    records = [r for r in read_jsonl(run.root / "steps.jsonl") if int(r.get("step", 0)) > 0]
    committed = int(records[-1]["step"]) if records else 0
    best_file = run.root / "best_kernel.py"
    best_code = best_file.read_text() if best_file.is_file() else None
    for name in cfg.log:
        mine = state.get(name) or {}
        last = mine.get("step") if isinstance(mine.get("step"), int) else None
        if last is not None:
            last = min(last, committed)  # never beyond the run folder (a copied or restored folder)
        tracker: Any = None
        try:
            if name == "tensorboard":
                tracker = TensorBoardTracker(run, last)
            else:
                if not state.get("wandb_id"):
                    state["wandb_id"] = new_run_id()
                    run.write_tracking(state)  # before init: a crash right after still resumes this id
                tracker = WandbTracker(run, state["wandb_id"], cfg, wandb_mode(echo, run))
            if last is None:
                tracker.start(run.root.name, cfg.to_dict())
        except ConfigError:
            raise
        except Exception as exc:
            echo(
                f"warning: {name} could not start ({type(exc).__name__}: {_first_line(exc)}); the run goes on "
                f"without it"
            )
            if tracker is not None:
                try:
                    tracker.close()
                except Exception:
                    pass
            continue
        trackers.active.append(tracker)
        state[name] = {"step": 0 if last is None else last, "best_kernel": mine.get("best_kernel")}
        missing = [r for r in records if int(r["step"]) > (last or 0)]
        # Catch up: the committed steps this tracker does not hold, the best kernel as of the last.
        for i, record in enumerate(missing):
            trackers._log(tracker, record, best_code if i == len(missing) - 1 else None)
        if not missing:  # a fresh run: the starting kernel at step 0
            trackers._log(tracker, {"step": last or 0}, best_code)
    trackers._save()
    return trackers
