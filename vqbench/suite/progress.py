"""The run's progress bar: cells done of all, errors and skips so far, ETA, the running cell."""

from __future__ import annotations

from .cells import Cell


class ProgressBar:
    """A rich progress bar with ETA on stderr (or nothing, when disabled)."""

    def __init__(self, total: int, enabled: bool, title: str) -> None:
        self.bar = None
        self.counts = {"err": 0, "skip": 0}
        if enabled and total:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.table import Column

            from vqbench._console import safe_console_class

            self.bar = Progress(
                TextColumn("[bold]{task.fields[title]}"),
                BarColumn(bar_width=16),
                MofNCompleteColumn(),
                TextColumn("{task.fields[problems]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn(
                    "{task.description}",
                    table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis", min_width=10),
                ),
                console=safe_console_class()(stderr=True),
                expand=True,
            )
            self.task = self.bar.add_task("", total=total, title=title, problems="")

    def __enter__(self) -> ProgressBar:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def note(self, text: str) -> None:
        """A line above the bar (plain text, never markup)."""
        if self.bar is not None:
            from rich.text import Text

            self.bar.console.print(Text(text))

    def start(self, cell: Cell) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=cell.label)

    def advance(self, cell: Cell, status: str | None) -> None:
        if status != "ok":
            self.counts["skip" if status == "skipped" else "err"] += 1
        if self.bar is not None:
            problems = []
            if self.counts["err"]:
                problems.append(f"[red]{self.counts['err']} err[/]")
            if self.counts["skip"]:
                problems.append(f"[yellow]{self.counts['skip']} skip[/]")
            self.bar.update(self.task, advance=1, problems=" ".join(problems))


__all__ = ["ProgressBar"]
