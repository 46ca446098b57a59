"""Tables printed as kubectl prints them: plain columns three spaces apart, each
as wide as its widest cell. No cell is ever cut to fit the terminal (a line that
wraps still shows a whole address; `10.244.…` shows none), and a watch's later
rows keep the widths of the first."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

PADDING = 3  # between columns, as kubectl's tabwriter pads


def widths_of(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max([len(column), *(len(row[i]) for row in rows)]) + PADDING for i, column in enumerate(columns)]


def line(row: Sequence[str], widths: Sequence[int]) -> str:
    return "".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()


def echo_row(row: Sequence[str], widths: Sequence[int]) -> None:
    """One row, at once (a watch prints rows as they come)."""
    click.echo(line(row, widths))
    sys.stdout.flush()


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None) -> list[int]:
    """The header and the rows, after a title line if given; returns the widths,
    for rows printed later."""
    widths = widths_of(columns, rows)
    click.echo("\n".join(([title] if title else []) + [line(row, widths) for row in [columns, *rows]]))
    sys.stdout.flush()
    return widths
