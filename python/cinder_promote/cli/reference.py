"""The command reference (docs/commands.md), generated from the command line itself.

    python -m cinder_promote.cli.reference > docs/commands.md

A test regenerates it and compares, so the page never drifts from the code.
"""

from __future__ import annotations

import enum
import inspect

import typer

from . import app

HEADER = """# Command reference

Generated from the command line by `python -m cinder_promote.cli.reference > docs/commands.md`;
`tests/test_docs.py` fails when it is out of date. Global options go before the command, as with
cinder-manage. Exit codes, for every command: 0 done (or nothing to do); 1 refused; 2 usage error or
invalid value; 3 the configuration or the database could not be read or reached; 70 a bug of
cinder-promote (`--debug` shows the traceback); 128 + N stopped by signal N after rolling back (130
Ctrl-C, 143 SIGTERM); 141 the reader of the output went away.
"""


def _default(param) -> str:
    value = param.default
    if callable(value) or value is None or param.is_flag or getattr(param, "show_default", True) is False:
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, (list, tuple)) and not value:
        return ""
    return f" (default: `{value}`)"


def _params(command) -> list[str]:
    lines = []
    for p in command.params:
        if p.name in ("help",) or getattr(p, "hidden", False):
            continue
        if isinstance(p, typer.core.TyperArgument):
            lines.append(f"- `{p.name.upper()}` (argument){'' if p.required else ', optional'}: {p.help or ''}")
            continue
        metavar = "" if p.is_flag else f" {p.name.upper()}"
        annotation = p.type_descriptor.annotation
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            metavar = " " + "|".join(str(c.value) for c in annotation)
        repeat = " (repeatable)" if p.multiple else ""
        required = " **required**" if p.required else ""
        text = (p.help or "").replace("\\[", "[")
        aliases = "".join(f" (or `{o}`)" for o in p.opts[1:])
        lines.append(f"- `{p.opts[0]}{metavar}`{aliases}{repeat}{required}: {text}{_default(p)}")
    return lines


def _walk(group, prefix: str) -> list[str]:
    out: list[str] = []
    for name in group.commands:
        command = group.commands[name]
        if getattr(command, "commands", None):
            out += _walk(command, f"{prefix} {name}")
            continue
        out += [f"## `{prefix} {name}`".replace("`  ", "`"), "", inspect.cleandoc(command.help or ""), ""]
        out += _params(command) + [""]
    return out


def markdown() -> str:
    root = typer.main.get_command(app)
    lines = [HEADER, "## Global options", "", "`cinder-promote [GLOBAL OPTIONS] COMMAND ...`", ""]
    lines += _params(root) + [""]
    lines += _walk(root, "cinder-promote")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
