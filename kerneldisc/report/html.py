"""Render a report `Document` as one self-contained HTML file (styles inline, plots as data URIs)."""

from __future__ import annotations

import base64
import html
import math
import numbers

import numpy as np
import pandas as pd

from kerneldisc.report.document import Block, Code, Document, Figure, Items, Notice, Paragraph, Section, Table

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3em; }
.notice { background: #fff3cd; border: 1px solid #e0c36c; padding: 0.6em 1em; margin: 1em 0; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
.scroll { overflow-x: auto; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: 0.85em; }
"""


def render_html(doc: Document) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(doc.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(doc.title)}</h1>",
    ]
    parts += [_block(b) for b in doc.header]
    for section in doc.sections:
        parts.append(_section(section, level=2))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def format_cell(value: object) -> str:
    """Numbers to 4 significant digits (runtimes span µs to seconds); missing values as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _section(section: Section, level: int) -> str:
    parts = [f"<section><h{level}>{html.escape(section.title)}</h{level}>"]
    parts += [_block(b) for b in section.blocks]
    parts += [_section(s, min(level + 1, 6)) for s in section.subsections]
    parts.append("</section>")
    return "\n".join(parts)


def _block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Notice):
        return f'<div class="notice"><strong>{html.escape(block.text)}</strong></div>'
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        data = base64.b64encode(block.path.read_bytes()).decode("ascii")
        alt = html.escape(block.caption, quote=True)
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
            f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
        )
    if isinstance(block, Items):
        return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Code):
        return f'<pre><code class="language-{block.language}">{html.escape(block.text)}</code></pre>'
    raise TypeError(f"unknown report block {block!r}")


def _cell(value: object) -> str:
    numeric = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    opening = '<td class="num">' if numeric else "<td>"
    return f"{opening}{html.escape(format_cell(value))}</td>"


def _table(table: Table) -> str:
    frame: pd.DataFrame = table.frame
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in frame.itertuples(index=False))
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    return (
        f'<div class="scroll"><table id="{html.escape(table.name)}">{caption}'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
    )
