"""Report tables and callouts drawn in the terminal with rich (plain text when not a terminal)."""

from __future__ import annotations

from typing import Any

from vqbench.reports.document import Callout, Document, KeyValues, Paragraph, Table

_STYLES = {"ok": "green", "info": "cyan", "warning": "yellow", "error": "bold red"}
#: Columns whose values stay whole on one line at any terminal width (names and ids people copy);
#: every other column wraps.
WHOLE_COLUMNS = ("quantizer", "baseline", "run", "name", "candidate")


def whole_width(values: Any) -> int:
    """The width of the longest value: a column's ``min_width`` that keeps each value whole."""
    return max((len(str(v)) for v in values), default=1)


def rich_table(table: Table) -> Any:
    """A ``rich.table.Table`` of a report table (errors in red, best values bold green)."""
    from rich.table import Table as RichTable
    from rich.text import Text

    out = RichTable(title=table.title or None, caption=table.caption or None, show_lines=False, expand=False)
    for i, col in enumerate(table.columns):
        label = bool(table.rows) and table.rows[0][i].kind in ("label", "error", "skipped")
        justify = "left" if label else "right"
        if col in WHOLE_COLUMNS:
            width = whole_width([col, *(row[i].text for row in table.rows)])
            out.add_column(col, justify=justify, no_wrap=True, min_width=width)
        else:
            out.add_column(col, justify=justify, overflow="fold")
    for row in table.rows:
        cells = []
        for cell in row:
            style = ""
            if cell.kind == "error":
                style = "bold red"
            elif cell.kind in ("skipped", "missing"):
                style = "dim"
            elif cell.best:
                style = "bold green"
            if cell.verdict == "worse":
                style = "red"
            elif cell.verdict == "better":
                style = "green"
            text = Text(cell.text + (" ★" if cell.best else ""), style=style)
            if cell.note:
                text.append(f" ({cell.note})", style="dim")
            cells.append(text)
        out.add_row(*cells)
    return out


def figures_table(rows: Any, title: str) -> Any:
    """Prepared rows as a long table (one line per figure), which fits a terminal of any width."""
    from rich.table import Table as RichTable
    from rich.text import Text

    from vqbench.reports._format import fmt_value

    out = RichTable(title=title)
    for col, justify in (
        ("quantizer", "left"),
        ("config", "left"),
        ("setting", "left"),
        ("metric", "left"),
        ("value", "right"),
        ("IQR", "right"),
        ("n", "right"),
    ):
        if col == "quantizer":
            out.add_column(col, justify=justify, no_wrap=True, min_width=whole_width(rows["quantizer"]))
        else:
            out.add_column(col, justify=justify, overflow="fold")
    for rec in rows.to_dict("records"):
        setting = " ".join(x for x in (rec["backend"], rec["device"], rec["dataset"], rec["variant"]) if x)
        if rec["status"] == "ok":
            unit = rec["unit"] or ""
            shown = fmt_value(rec["value"], unit)
            value = Text(shown + ("" if unit in ("", "s", "B") or shown.endswith(unit) else f" {unit}"))
            spread = "" if rec["spread"] != rec["spread"] else fmt_value(rec["spread"], unit)
        else:
            value = Text(
                f"{rec['status']}: {rec['message']}", style="bold red" if rec["status"] == "error" else "dim"
            )
            spread = ""
        n = rec["n"]
        out.add_row(
            Text(rec["quantizer"]),
            Text(rec["config_label"]),
            Text(setting),
            Text(rec["metric"]),
            value,
            spread,
            "" if n is None or n != n else str(n),
        )
    return out


def print_document(doc: Document, console: Any = None, tables_only: bool = False) -> None:
    """Print the document's text blocks and tables (figures are named, not drawn)."""
    from rich.text import Text

    from vqbench._console import make_console, rule

    console = console or make_console()
    console.print(Text(doc.title, style="bold"))
    if doc.subtitle:
        console.print(Text(doc.subtitle, style="dim"))
    for section in doc.sections:
        blocks = [b for b in section.blocks if isinstance(b, Table) or not tables_only]
        if not blocks:
            continue
        rule(console, section.title)
        for block in blocks:
            if isinstance(block, Table):
                console.print(rich_table(block))
                for note in block.notes:
                    console.print(Text(note, style="dim"))
            elif isinstance(block, Callout):
                console.print(Text(block.text, style=_STYLES.get(block.level, "")))
            elif isinstance(block, Paragraph):
                console.print(Text(block.text))
            elif isinstance(block, KeyValues):
                for key, value in block.items:
                    console.print(Text(f"{key}: ", style="dim") + Text(str(value)))
            else:
                console.print(Text(f"[figure] {getattr(block, 'title', '')}", style="dim"))


__all__ = ["WHOLE_COLUMNS", "figures_table", "print_document", "rich_table", "whole_width"]
