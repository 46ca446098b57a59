"""A Table laid out as `kubectl get` prints it, for podnet's own CLI: upper-case
headers, columns as wide as their widest cell plus three spaces (six at the
least, kubectl's tabwriter minimum), the last column unpadded; `-o wide` adds
the priority-1 columns, `-A` a NAMESPACE column first, `--show-labels` a
LABELS column last. A cell is cut at its first line break ("..." follows) and
never to fit a terminal. A watch's rows keep the widths the first table set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from podnet.apiserver.tables.cells import format_labels

MIN_WIDTH = 6  # kubectl's tabwriter: a column's least width, padding included
PADDING = 3
_BREAKS = ("\f", "\n", "\r")


def cell_text(cell: Any) -> str:
    """A cell as kubectl writes it: strings cut at a line break, escape characters
    shown as `^[`, numbers and booleans as Go prints them, nothing for null."""
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float) and cell.is_integer() and abs(cell) < 1e21:
        return str(int(cell))
    if not isinstance(cell, str):
        return str(cell)
    cut = min((cell.index(c) for c in _BREAKS if c in cell), default=-1)
    text = cell if cut < 0 else cell[:cut]
    return text.replace("\x1b", "^[") + ("..." if cut >= 0 else "")


def _metadata(row: Mapping[str, Any]) -> Mapping[str, Any]:
    return (row.get("object") or {}).get("metadata") or {}


def render_table(table: Mapping[str, Any], wide: bool = False, with_namespace: bool = False,
                 show_labels: bool = False, label_columns: Sequence[str] = (), kind: str = "") -> str:
    """The lines kubectl prints for a Table, joined, without a final newline; ""
    when it has no rows (see no_resources_found). `label_columns` are `-L` keys;
    `kind` ("pod", "deployment.apps") prefixes names as `get pods,svc` does."""
    return "\n".join(Layout().lines(table_cells(table, wide, with_namespace, show_labels, label_columns, kind)))


def table_cells(table: Mapping[str, Any], wide: bool = False, with_namespace: bool = False,
                show_labels: bool = False, label_columns: Sequence[str] = (), kind: str = "",
                header: bool = True) -> list[list[str]]:
    """The header (unless not wanted: a watch prints it once) and each row's
    cells, as text; nothing when the Table has no rows."""
    rows = table.get("rows") or []
    if not rows:
        return []
    columns = table.get("columnDefinitions") or []
    shown = [i for i, column in enumerate(columns) if wide or not column.get("priority")]
    names = [str(columns[i].get("name", "")).upper() for i in shown]
    names = (["NAMESPACE"] if with_namespace else []) + names + [key.split("/")[-1].upper() for key in label_columns]
    names += ["LABELS"] if show_labels else []
    lines = [names] if header else []
    for row in rows:
        cells, metadata = row.get("cells") or [], _metadata(row)
        line = [metadata.get("namespace", "")] if with_namespace else []
        for i in shown:
            text = cell_text(cells[i]) if i < len(cells) else ""
            named = kind and columns[i].get("format") == "name" and columns[i].get("type") == "string"
            line.append(f"{kind}/{text}" if named else text)
        labels = metadata.get("labels") or {}
        line += [labels.get(key, "") for key in label_columns]
        line += [format_labels(labels)] if show_labels else []
        lines.append(line)
    return lines


class Layout:
    """Columns as kubectl's tabwriter sets them: each as wide as its widest cell
    plus the padding, and never narrower than it has been (kubectl's
    RememberWidths), so a watch's later rows line up under the first table."""

    def __init__(self) -> None:
        self.widths: list[int] = []

    def lines(self, cells: Sequence[Sequence[str]]) -> list[str]:
        if not cells:
            return []
        padded = len(cells[0]) - 1  # the last column is not padded
        widths = [max(MIN_WIDTH, max(len(line[i]) for line in cells) + PADDING) for i in range(padded)]
        self.widths = [max(width, self.widths[i] if i < len(self.widths) else 0) for i, width in enumerate(widths)]
        return [("".join(text.ljust(width) for text, width in zip(line, self.widths)) + line[-1]).rstrip()
                for line in cells]


def no_resources_found(namespace: str | None) -> str:
    """What kubectl says, on stderr, when nothing matched: naming the namespace
    unless the listing spanned them all (-A)."""
    return f"No resources found in {namespace} namespace." if namespace else "No resources found"
