"""`kerneldisc report`: tables, plots and an HTML/Markdown report of runs and bench folders."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
examples:
  kerneldisc report results/vectoradd/20261125-120000      # writes <run>/report/
  kerneldisc report bench_runs/reference/20261125-130000
  kerneldisc report RUN_A RUN_B --out reports/ab            # one report, a section per folder

Writes report.html (self-contained: plots inline), report.md, plots/*.png and tables/*.csv.
"""


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML/Markdown report with plots and CSV tables of runs or bench folders",
        description="Build one report from discovery run folders and bench output folders.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folders", nargs="+", metavar="RUN_OR_BENCH_DIR", help="run or bench output folders")
    p.add_argument("--out", help="report folder (default <folder>/report for a single folder)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kerneldisc.report import build_report

    out = build_report([Path(f) for f in args.folders], Path(args.out) if args.out else None)
    print(f"report: {out / 'report.html'}")
    beside = [f"{name}/" for name in ("plots", "tables", "failures") if (out / name).is_dir()]
    print(f"        {out / 'report.md'}" + (f" ({' and '.join(beside)} beside it)" if beside else ""))
    return 0
