"""The report model that every renderer (Markdown, HTML, terminal) reads.

A ``Document`` is a title, a subtitle and sections of blocks: paragraphs, callouts, key/value
lists, tables and plots. Builders (run report, comparison, nightly) make documents; renderers
only draw them, so every output shows the same content.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TableCell:
    """One table cell. ``kind``: "label", "value", "error", "skipped", "missing", "verdict"."""

    text: str
    kind: str = "value"
    best: bool = False
    note: str = ""  # secondary text shown beside the value (a ratio to the baseline)
    title: str = ""  # tooltip / footnote (spread, full error message)
    verdict: str = ""  # "better" | "worse" | "within noise" | "" (colours the cell)
    link: str = ""  # a URL the text links to (HTML and Markdown)


@dataclass
class Table:
    """A titled table; ``caption`` names the run, suite and environment it shows."""

    title: str
    columns: list[str]
    rows: list[list[TableCell]]
    caption: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class Plot:
    """A PNG image with its title and caption (the caption names run, suite and environment)."""

    name: str  # file stem, safe characters only
    title: str
    png: bytes
    caption: str = ""
    alt: str = ""


@dataclass
class Paragraph:
    text: str


@dataclass
class Callout:
    """A highlighted message; ``level``: "ok", "info", "warning", "error"."""

    text: str
    level: str = "info"


@dataclass
class KeyValues:
    title: str
    items: list[tuple[str, str]]


Block = Paragraph | Callout | KeyValues | Table | Plot


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def plots(self) -> list[Plot]:
        """Every figure, in document order."""
        return [b for s in self.sections for b in s.blocks if isinstance(b, Plot)]

    def tables(self) -> list[Table]:
        """Every table, in document order."""
        return [b for s in self.sections for b in s.blocks if isinstance(b, Table)]


__all__ = [
    "Block",
    "Callout",
    "Document",
    "Plot",
    "KeyValues",
    "Paragraph",
    "Section",
    "Table",
    "TableCell",
]
