"""Report results as text: rich tables (folded to the terminal's width), CSV, JSON, Markdown."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

from rich.console import Group
from rich.table import Table
from rich.text import Text

from fer_mine.reports.result import Result

FORMATS = ("table", "csv", "json", "markdown")


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value == value else "NaN"
    return str(value)


def _jsonable(value):
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value


def title_line(result: Result, width: int | None) -> Text:
    """The title above the table, at the terminal's width rather than the table's (a query's SQL
    over a one-column table would fold into a tall column), on at most two lines."""
    words = " ".join(result.title.split())
    limit = 2 * width - len(result.name) - 3 if width else None
    if limit and len(words) > limit:
        words = words[: limit - 1] + "…"
    return Text.assemble((result.name, "bold"), f": {words}")


def to_rich(result: Result, width: int | None = None) -> Group:
    """The title, then the result as one table, or, when its columns would not fit `width`
    characters (the terminal's), as several tables of the columns that fit, each led by the
    first column (the row's key), so that no value is cut into an ellipsis."""
    cells = [[cell(v) for v in row] for row in result.rows]
    groups = _column_groups(result.columns, cells, width) if width else [list(range(len(result.columns)))]
    tables: list = [title_line(result, width)]
    for number, group in enumerate(groups):
        table = Table(
            title=f"[bold]{result.name}[/bold] (continued)" if number else None, title_justify="left"
        )
        for i in group:  # a value longer than the terminal (a long path) folds onto more lines
            table.add_column(result.columns[i], overflow="fold")
        for row in cells:
            table.add_row(*(row[i] for i in group))
        tables.append(table)
    if result.notes:  # how many faces the figures rest on, under the last table
        tables[-1].caption = "; ".join(result.notes)
        tables[-1].caption_justify = "left"
    return Group(*tables)


def _column_groups(columns: list[str], cells: list[list[str]], width: int) -> list[list[int]]:
    """Column indices in groups whose table fits `width`; the first column leads each group."""
    # a rich table cell is its text plus one space each side plus one border character
    natural = [max([len(c)] + [len(row[i]) for row in cells]) + 3 for i, c in enumerate(columns)]
    if sum(natural) + 1 <= width or len(columns) < 3:
        return [list(range(len(columns)))]
    key = min(natural[0], max(12, width // 3))  # a longer key (a long path) folds onto more lines
    groups: list[list[int]] = [[0]]
    used = key + 1
    for i in range(1, len(columns)):
        if len(groups[-1]) > 1 and used + natural[i] > width:
            groups.append([0])
            used = key + 1
        groups[-1].append(i)
        used += natural[i]
    return groups


def to_csv(result: Result) -> str:
    """The rows, then what they rest on as a trailer of `#` lines (pandas: comment="#")."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([[_jsonable(v) for v in row] for row in result.rows])
    for note in result.notes:
        buffer.write(f"# {note}\n")
    return buffer.getvalue()


def to_json(results: list[Result]) -> str:
    """{report: {"rows": [...], "faces": {"rests_on", "recorded", "left_out": {why: n}} or null}}."""
    return json.dumps(
        {r.name: {"rows": [dict(zip(r.columns, map(_jsonable, row), strict=True)) for row in r.rows],
                  "faces": r.faces} for r in results},
        indent=2,
    )  # fmt: skip


def to_markdown(result: Result) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"### {result.name}", "", result.title, "", "| " + " | ".join(map(esc, result.columns)) + " |",
             "|" + "---|" * len(result.columns)]  # fmt: skip
    lines += ["| " + " | ".join(esc(cell(v)) for v in row) + " |" for row in result.rows]
    lines += ["", *(f"_{note}_" for note in result.notes)] if result.notes else []
    return "\n".join(lines) + "\n"
