"""Plots of one discovery run's progress, drawn with matplotlib's Agg backend into PNG files."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

_DPI = 110


def plot_progress(steps: pd.DataFrame, path: Path) -> Path:
    """Best runtime (lower is better) and best speedup over the reference against step."""
    fig, (ax_rt, ax_sp) = plt.subplots(1, 2, figsize=(10, 3.6))
    _line(ax_rt, steps, "best_runtime_us", "best runtime (µs)", "tab:blue")
    _line(ax_sp, steps, "best_speedup", "best speedup over reference", "tab:green")
    return _save(fig, path)


def plot_rewards(steps: pd.DataFrame, path: Path) -> Path:
    """The spread of rewards in each step (box per step) and the fraction of correct candidates."""
    fig, ax = plt.subplots(figsize=(10, 3.6))
    rewards = steps["rewards"] if "rewards" in steps.columns else pd.Series([[]] * len(steps))
    positions = list(steps["step"]) if "step" in steps.columns else list(range(len(steps)))
    data = [[float(r) for r in rs] if isinstance(rs, list) and rs else [math.nan] for rs in rewards]
    if data:
        ax.boxplot(data, positions=positions, widths=0.6, manage_ticks=False)
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.grid(alpha=0.3)
    if "correct_fraction" in steps.columns:
        twin = ax.twinx()
        twin.plot(positions, steps["correct_fraction"], "o-", color="tab:orange", label="correct fraction")
        twin.set_ylim(0, 1.05)
        twin.set_ylabel("correct fraction", color="tab:orange")
    ax.set_title("reward distribution and correct fraction per step")
    return _save(fig, path)


def plot_learning(steps: pd.DataFrame, path: Path) -> Path:
    """β of the entropic advantages and the policy loss per step (absent when training was off)."""
    fig, (ax_beta, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.6))
    _line(ax_beta, steps, "mean_beta", "mean β", "tab:purple")
    if "mean_beta" in steps.columns and (pd.to_numeric(steps["mean_beta"], errors="coerce") > 0).any():
        ax_beta.set_yscale("log")  # adaptive β spans orders of magnitude when rewards tie
    _line(ax_loss, steps, "loss", "loss", "tab:red")
    return _save(fig, path)


def plot_runs(curves: dict[str, list[pd.DataFrame]], path: Path) -> Path:
    """Several discovery runs on one chart, grouped (e.g. training on / off, seeds within each):
    per step, the correct fraction and the best runtime's speedup over the run's starting
    submission; the line is the group's mean, the band its min to max across runs."""
    fig, (ax_c, ax_s) = plt.subplots(1, 2, figsize=(10, 3.6))
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for (label, frames), color in zip(sorted(curves.items()), colors * 4, strict=False):
        for ax, column in ((ax_c, "correct_fraction"), (ax_s, "over_start")):
            table = pd.concat(
                [f.set_index("step")[column].rename(i) for i, f in enumerate(frames) if column in f.columns], axis=1
            ) if frames else pd.DataFrame()  # fmt: skip
            if table.empty:
                continue
            table = table.apply(pd.to_numeric, errors="coerce").sort_index()
            ax.plot(table.index, table.mean(axis=1), "o-", color=color, label=f"{label} ({len(frames)} runs)")
            if len(frames) > 1:
                ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=color, alpha=0.2)
    ax_c.set_title("correct fraction per step")
    ax_c.set_ylim(0, 1.05)
    ax_s.set_title("best speedup over the starting submission")
    ax_s.set_yscale("log")
    for ax in (ax_c, ax_s):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    ax_c.legend(fontsize=8)
    return _save(fig, path)


def plot_kernels(frame: pd.DataFrame, path: Path, title: str) -> Path:
    """One task on one device: each measured kernel's runtime as a bar (log scale, shorter is
    faster); published figures (human baselines, TTT-Discover) as reference lines, which
    comparison tables hold only for the same GPU model, never beside CPU timings."""
    runtimes = pd.to_numeric(frame["runtime_us"], errors="coerce")
    published = frame["status"] == "published"
    ours = frame[~published & runtimes.notna()]
    fig, ax = plt.subplots(figsize=(10, 0.5 * max(len(ours), 2) + 1.4))
    labels = [str(k) for k in ours["kernel"]]
    if len(set(labels)) < len(labels) and "source" in ours.columns:  # several runs: say whose
        labels = [f"{k} ({src})" for k, src in zip(labels, ours["source"], strict=True)]
    ax.barh(range(len(ours)), pd.to_numeric(ours["runtime_us"]), color="tab:blue")
    ax.set_yticks(range(len(ours)), labels, fontsize=8)
    ax.invert_yaxis()
    for (_, row), color in zip(
        frame[published & runtimes.notna()].iterrows(),
        ["tab:red", "tab:green", "tab:purple"] * 4,
        strict=False,
    ):
        ax.axvline(float(row["runtime_us"]), color=color, linestyle="--", label=str(row["kernel"]))
    ax.set_xscale("log")
    ax.set_xlabel("runtime (µs, log scale)")
    ax.grid(alpha=0.3, axis="x")
    if published.any():
        ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title)
    return _save(fig, path, steps=False)


def plot_roofline(frame: pd.DataFrame, path: Path) -> Path:
    """Each kernel's fraction of the roofline limit (1.0: at the speed of light), per task and
    device, as bars on a log scale."""
    fig, ax = plt.subplots(figsize=(10, 0.45 * max(len(frame), 2) + 1.4))
    labels = [
        f"{t} / {d}: {k}" for t, d, k in zip(frame["task"], frame["device"], frame["kernel"], strict=True)
    ]
    ax.barh(
        range(len(frame)), pd.to_numeric(frame["fraction_of_roofline"], errors="coerce"), color="tab:orange"
    )
    ax.set_yticks(range(len(frame)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linestyle=":", label="speed of light")
    ax.set_xscale("log")
    ax.set_xlabel("fraction of the roofline limit (log scale)")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path, steps=False)


def _line(ax, steps: pd.DataFrame, column: str, label: str, color: str) -> None:
    ax.set_xlabel("step")
    ax.set_title(label)
    ax.grid(alpha=0.3)
    values = (
        pd.to_numeric(steps[column], errors="coerce") if column in steps.columns else pd.Series(dtype=float)
    )
    if values.notna().any():
        ax.plot(steps["step"], values, "o-", color=color)
    else:
        ax.text(0.5, 0.5, "not recorded in this run", ha="center", va="center", transform=ax.transAxes)


def _save(fig, path: Path, steps: bool = True) -> Path:
    if steps:  # an x axis of steps: whole numbers only
        for ax in fig.axes:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI, format="png")
    plt.close(fig)
    return path
