"""Reports of discovery runs and bench suites: tables (pandas), plots (matplotlib), HTML and Markdown."""

from kerneldisc.report.compose import build_report

__all__ = ["build_report"]
