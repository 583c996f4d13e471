"""Rendering results for people (Rich tables) and for scripts (JSON)."""

from __future__ import annotations

import enum
import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table


class OutputFormat(str, enum.Enum):
    table = "table"
    json = "json"


def console() -> Console:
    # Off a terminal Rich would wrap at 80 columns; logs and pipes want whole lines (unless COLUMNS says).
    fixed = sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()
    return Console(width=None if fixed else 200, highlight=False)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))


def show(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def counts(values: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in values.items()) or "-"


def new_table(title: str | None, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table
