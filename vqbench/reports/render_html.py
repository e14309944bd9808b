"""One self-contained HTML file: inline CSS, images as data URIs, every text HTML-escaped.

Tables wrap to the page width (label cells break anywhere, numbers stay whole) and their header
row sticks while the page scrolls; a table with more than ``WIDE_COLUMNS`` columns scrolls in its
own box instead. Names, parameters and messages come from plugins and users, so all text passes
``html.escape``;
a Content-Security-Policy forbids scripts and any network load, so the file opens from disk as is.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from vqbench.reports.document import Callout, Document, KeyValues, Paragraph, Plot, Table

#: Tables with more columns than this scroll sideways in their own box (the rest wrap to the page).
WIDE_COLUMNS = 16
_BREAK_AFTER = re.compile(r"(?<=[,._/@=:])(?=.)")
_WORD = re.compile(r"\S+|\s+")
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;
  margin:0;background:#f6f7f9}
main{max-width:1440px;margin:0 auto;padding:24px 28px 60px;background:#fff;min-height:100vh}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:20px;margin:34px 0 10px;border-bottom:2px solid #e3e6eb;padding-bottom:4px}
h3{font-size:16px;margin:22px 0 6px}
.subtitle{color:#5b6575;margin:0 0 18px}
.caption{color:#5b6575;font-size:12.5px;margin:4px 0 12px}
table{border-collapse:separate;border-spacing:0;margin:6px 0 4px;font-size:13.5px;max-width:100%;
  table-layout:auto}
th,td{padding:5px 8px;border-bottom:1px solid #e6e8ec;text-align:right;vertical-align:top;
  white-space:normal;overflow-wrap:break-word}
td.value{white-space:nowrap}
th{background:#f0f2f5;position:sticky;top:0;z-index:1;font-weight:600;box-shadow:0 1px 0 #d5d9e0}
td.label,th.label{text-align:left}
div.wide{overflow:auto;max-width:100%;max-height:85vh;margin:6px 0 4px}
div.wide table{margin:0}
td.best{font-weight:700;background:#e7f6ea}
td.error{color:#a4161a;background:#fde8e8;font-weight:600;text-align:left;min-width:8em}
td.skipped,td.missing{color:#7a8190;font-style:italic}
td.better{background:#e7f6ea;color:#17602a} td.worse{background:#fde8e8;color:#a4161a}
td.noise{color:#5b6575}
.note{display:block;color:#6b7280;font-size:11.5px;font-weight:400}
.callout{padding:10px 14px;border-radius:6px;margin:10px 0;border-left:5px solid}
.callout.ok{background:#e7f6ea;border-color:#2f9e44} .callout.info{background:#eef4fb;border-color:#4a7cc2}
.callout.warning{background:#fff6e0;border-color:#e0a400}
.callout.error{background:#fde8e8;border-color:#c92a2a}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:13px;margin:6px 0}
dt{color:#5b6575} dd{margin:0;font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
figure{margin:14px 0 22px} figure img{max-width:100%;height:auto;border:1px solid #e6e8ec}
figcaption{color:#5b6575;font-size:12.5px}
ul.notes{color:#5b6575;font-size:12.5px;margin:2px 0 10px}
nav ul{columns:2;font-size:13.5px}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _breakable(text: object) -> str:
    """Escaped text with break opportunities (``<wbr>``) after the punctuation inside identifiers,
    JSON and paths (``,._/@=:``), so that a long one wraps in a cell instead of widening the table."""

    def token(match: re.Match) -> str:
        word = match.group(0)
        if len(word) <= 12:
            return _e(word)
        return "<wbr>".join(_e(part) for part in _BREAK_AFTER.split(word))

    return _WORD.sub(token, str(text)) if text else ""


def _anchor(index: int) -> str:
    return f"s{index}"


def _table(table: Table) -> str:
    out = [f"<h3>{_e(table.title)}</h3>"] if table.title else []
    # a table too wide to wrap into the page scrolls in its own box, its header kept in view
    wide = len(table.columns) > WIDE_COLUMNS
    out.append('<div class="wide">' if wide else "")
    out.append("<table><thead><tr>")
    left = ("label", "error", "skipped")
    label_cols = {i for i, _ in enumerate(table.columns) if table.rows and table.rows[0][i].kind in left}
    for i, col in enumerate(table.columns):
        out.append(f'<th class="{"label" if i in label_cols else ""}">{_breakable(col)}</th>')
    out.append("</tr></thead><tbody>")
    for row in table.rows:
        out.append("<tr>")
        for cell in row:
            classes = [cell.kind]
            if cell.best:
                classes.append("best")
            if cell.verdict:
                classes.append({"better": "better", "worse": "worse"}.get(cell.verdict, "noise"))
            title = f' title="{_e(cell.title)}"' if cell.title else ""
            text = (_e(cell.text) if cell.kind == "value" else _breakable(cell.text)) + (
                " ★" if cell.best else ""
            )
            if cell.link:
                text = f'<a href="{_e(cell.link)}">{text}</a>'
            note = f'<span class="note">{_e(cell.note)}</span>' if cell.note else ""
            out.append(f'<td class="{" ".join(classes)}"{title}>{text}{note}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    if wide:
        out.append("</div>")
    if table.caption:
        out.append(f'<p class="caption">{_e(table.caption)}</p>')
    if table.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in table.notes) + "</ul>")
    return "\n".join(out)


def _plot(fig: Plot) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    alt = fig.alt or fig.title
    return (
        f'<figure><h3>{_e(fig.title)}</h3><img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
        f"<figcaption>{_e(fig.caption)}</figcaption></figure>"
    )


def _block(block: object) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_e(block.text)}</p>"
    if isinstance(block, Callout):
        return f'<div class="callout {_e(block.level)}">{_e(block.text)}</div>'
    if isinstance(block, KeyValues):
        items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in block.items)
        head = f"<h3>{_e(block.title)}</h3>" if block.title else ""
        return f"{head}<dl>{items}</dl>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Plot):
        return _plot(block)
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_html(doc: Document) -> str:
    """The document as one HTML page with no external references."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_e(doc.title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(doc.title)}</h1>",
    ]
    if doc.subtitle:
        parts.append(f'<p class="subtitle">{_e(doc.subtitle)}</p>')
    if len(doc.sections) > 2:
        links = "".join(
            f'<li><a href="#{_anchor(i)}">{_e(s.title)}</a></li>' for i, s in enumerate(doc.sections)
        )
        parts.append(f"<nav><ul>{links}</ul></nav>")
    for i, section in enumerate(doc.sections):
        parts.append(f'<section id="{_anchor(i)}"><h2>{_e(section.title)}</h2>')
        parts.extend(_block(b) for b in section.blocks)
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def write_html(doc: Document, path: str | Path) -> Path:
    """Write ``render_html(doc)`` to ``path`` (UTF-8); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(doc), encoding="utf-8")
    return path


__all__ = ["render_html", "write_html"]
