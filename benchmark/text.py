"""Tables of cells for the terminal and for Markdown pages; the first row is the header."""
from __future__ import annotations

from collections.abc import Sequence


def aligned(rows: Sequence[Sequence[object]], *, rule: bool = True) -> str:
    """Columns padded to their widest cell, two spaces apart; ``rule`` draws dashes under the header."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    if rule:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; ``|`` inside a cell is escaped.

    Example:
        >>> print(markdown([("model", "AUC"), ("svm", 0.69)]))
        | model | AUC |
        |---|---|
        | svm | 0.69 |
    """
    def line(row):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"

    return "\n".join([line(rows[0]), "|" + "---|" * len(rows[0]), *(line(row) for row in rows[1:])])
