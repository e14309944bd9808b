"""Markdown output: a ``.md`` file with its figures as PNG files beside it (``<stem>-figures/``)."""

from __future__ import annotations

import re
from pathlib import Path

from vqbench.reports.document import Callout, Document, KeyValues, Paragraph, Plot, Table

_SPECIAL = re.compile(r"([\\`*_\[\]<>|#!])")
_ICONS = {"ok": "✅", "info": "ℹ️", "warning": "⚠️", "error": "❌"}


def md_escape(text: object) -> str:
    """Text safe inside Markdown (and inside a table cell): specials escaped, no newlines, control
    characters shown as escapes."""
    from vqbench._text import printable

    flat = printable(" ".join(str(text).split()), newlines=False)
    flat = flat.replace("&", "&amp;")
    return _SPECIAL.sub(lambda m: {"<": "&lt;", ">": "&gt;"}.get(m.group(1), "\\" + m.group(1)), flat)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "figure"


def _table(table: Table) -> list[str]:
    lines = [f"### {md_escape(table.title)}", ""] if table.title else []
    lines.append("| " + " | ".join(md_escape(c) for c in table.columns) + " |")
    aligns = [
        "---" if (table.rows and table.rows[0][i].kind in ("label", "error", "skipped")) else "---:"
        for i in range(len(table.columns))
    ]
    lines.append("| " + " | ".join(aligns) + " |")
    for row in table.rows:
        cells = []
        for cell in row:
            text = md_escape(cell.text)
            if cell.kind == "error":
                text = f"**{text.upper() if cell.text == 'error' else text}**"
            elif cell.best:
                text = f"**{text}** ★"
            elif cell.verdict == "worse":
                text = f"**{text}**"
            if cell.link:
                text = f"[{text}](<{cell.link.replace('<', '%3C').replace('>', '%3E')}>)"
            if cell.note:
                text += f" ({md_escape(cell.note)})"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if table.caption:
        lines += [f"*{md_escape(table.caption)}*", ""]
    for note in table.notes:
        lines.append(f"- {md_escape(note)}")
    if table.notes:
        lines.append("")
    return lines


def render_markdown(doc: Document, figure_dir: str = "figures") -> tuple[str, dict[str, bytes]]:
    """The Markdown text and the figure files it references (relative path -> PNG bytes)."""
    lines = [f"# {md_escape(doc.title)}", ""]
    if doc.subtitle:
        lines += [md_escape(doc.subtitle), ""]
    files: dict[str, bytes] = {}
    for section in doc.sections:
        lines += [f"## {md_escape(section.title)}", ""]
        for block in section.blocks:
            if isinstance(block, Paragraph):
                lines += [md_escape(block.text), ""]
            elif isinstance(block, Callout):
                lines += [f"> {_ICONS.get(block.level, '')} **{md_escape(block.text)}**", ""]
            elif isinstance(block, KeyValues):
                if block.title:
                    lines += [f"### {md_escape(block.title)}", ""]
                lines += [f"- {md_escape(k)}: {md_escape(v)}" for k, v in block.items]
                lines.append("")
            elif isinstance(block, Table):
                lines += _table(block)
            elif isinstance(block, Plot):
                stem = _safe_name(block.name)
                rel = f"{figure_dir}/{stem}.png"
                n = 2
                while rel in files:
                    rel = f"{figure_dir}/{stem}-{n}.png"
                    n += 1
                files[rel] = block.png
                lines += [
                    f"### {md_escape(block.title)}",
                    "",
                    f"![{md_escape(block.alt or block.title)}]({rel})",
                    "",
                    f"*{md_escape(block.caption)}*",
                    "",
                ]
            else:
                raise TypeError(f"unknown report block {type(block).__name__}")
    return "\n".join(lines).rstrip() + "\n", files


def write_markdown(doc: Document, path: str | Path) -> Path:
    """Write the Markdown file and its figures (in ``<stem>-figures/`` beside it); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text, files = render_markdown(doc, figure_dir=f"{_safe_name(path.stem)}-figures")
    for rel, data in files.items():
        target = path.parent / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    path.write_text(text, encoding="utf-8")
    return path


__all__ = ["md_escape", "render_markdown", "write_markdown"]
