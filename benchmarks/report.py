"""Plain-text tables for the benchmark's output."""

from __future__ import annotations

from collections.abc import Sequence

Cell = str | int | float


def _text(cell: Cell) -> str:
    if isinstance(cell, float):
        return f"{cell:,.1f}"
    if isinstance(cell, int):
        return f"{cell:,}"
    return cell


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """Rows under headers: the first column left-aligned, numbers and the rest right-aligned."""
    texts = [[_text(cell) for cell in row] for row in rows]
    widths = [max(len(line[column]) for line in [list(headers), *texts]) for column in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join([first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))])

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in texts)])


def heading(title: str) -> str:
    """A section title, underlined."""
    return f"\n{title}\n{'=' * len(title)}"
