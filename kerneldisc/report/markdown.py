"""Render a report `Document` as Markdown; plots are linked as the PNG files beside it."""

from __future__ import annotations

from pathlib import Path

from kerneldisc.report.document import Block, Code, Document, Figure, Items, Notice, Paragraph, Section, Table
from kerneldisc.report.html import format_cell


def render_markdown(doc: Document, out_dir: Path) -> str:
    parts = [f"# {doc.title}", ""]
    parts += [_block(b, out_dir) for b in doc.header]
    for section in doc.sections:
        parts.append(_section(section, 2, out_dir))
    return "\n".join(parts).rstrip() + "\n"


def _section(section: Section, level: int, out_dir: Path) -> str:
    parts = [f"{'#' * level} {section.title}", ""]
    parts += [_block(b, out_dir) for b in section.blocks]
    parts += [_section(s, min(level + 1, 6), out_dir) for s in section.subsections]
    return "\n".join(parts)


def _block(block: Block, out_dir: Path) -> str:
    if isinstance(block, Paragraph):
        return block.text + "\n"
    if isinstance(block, Notice):
        return f"> **{block.text}**\n"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        return f"![{block.caption}]({block.path.relative_to(out_dir).as_posix()})\n"
    if isinstance(block, Items):
        return "\n".join(f"- {_escape(i)}" for i in block.items) + "\n"
    if isinstance(block, Code):
        fence = "````" if "```" in block.text else "```"
        return f"{fence}{block.language}\n{block.text.rstrip()}\n{fence}\n"
    raise TypeError(f"unknown report block {block!r}")


def _table(table: Table) -> str:
    columns = [str(c) for c in table.frame.columns]
    lines = [f"**{table.caption}**", ""] if table.caption else []
    lines.append("| " + " | ".join(_escape(c) for c in columns) + " |")
    lines.append("|" + "|".join(" --- " for _ in columns) + "|")
    for row in table.frame.itertuples(index=False):
        lines.append("| " + " | ".join(_escape(format_cell(v)) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
