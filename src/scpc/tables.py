"""Aligned plain-text tables, the one format every score table of the toolkit prints."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def aligned(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    left: int | Collection[int] = 1,
    rule: bool = False,
) -> str:
    """Columns two spaces apart: the first ``left`` columns (or the columns of those indices)
    left-aligned (names), the others right-aligned (numbers); ``rule`` puts a line of dashes under the header. No trailing
    spaces; ends with a newline."""
    table = [list(header), *(list(r) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lefts = set(range(left)) if isinstance(left, int) else set(left)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in lefts else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    lines = [line(r) for r in table]
    if rule:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
