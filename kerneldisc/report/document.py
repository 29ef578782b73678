"""The report as a tree of plain blocks, so the HTML and Markdown writers render the same content."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Paragraph:
    text: str


@dataclass
class Notice:
    """A statement the reader must not miss (shown highlighted in HTML, bold in Markdown)."""

    text: str


@dataclass
class Table:
    name: str  # also the CSV file's stem under tables/
    frame: pd.DataFrame
    caption: str = ""


@dataclass
class Figure:
    path: Path  # the PNG under plots/
    caption: str


@dataclass
class Items:
    items: list[str]


@dataclass
class Code:
    text: str
    language: str = "python"


Block = Paragraph | Notice | Table | Figure | Items | Code


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)


@dataclass
class Document:
    title: str
    header: list[Block]
    sections: list[Section]

    def tables(self) -> list[Table]:
        found = [b for b in self.header if isinstance(b, Table)]
        stack = list(self.sections)
        while stack:
            section = stack.pop(0)
            found += [b for b in section.blocks if isinstance(b, Table)]
            stack = section.subsections + stack
        return found
