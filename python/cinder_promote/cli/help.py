"""Help and usage errors that read naturally, as cinder-manage's do.

Typer's rich help shows `<bool>` beside flags, `<str>` for values and
`{journal_id}` in usage lines. Our commands show flags bare, a value as its
NAME (or its choices, `table|json`), and a required argument as `JOURNAL_ID`.
Typer validates values with pydantic and says so ("Input should be a valid
integer", "Value error, ..."): those messages are put in plain words.
"""

from __future__ import annotations

import enum
import re

import typer


def _tidy(params: list) -> None:
    for p in params:
        if p.metavar is not None:
            continue
        if isinstance(p, typer.core.TyperArgument):
            p.metavar = p.name.upper()
        elif p.is_flag:
            p.metavar = ""
        else:
            annotation = p.type_descriptor.annotation
            if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
                p.metavar = "|".join(str(c.value) for c in annotation)
            else:
                p.metavar = p.name.upper()


_PLAIN = (
    (re.compile(r"^Value error, "), ""),
    (re.compile(r"Input should be a valid integer.*"), "expected a whole number"),
    (re.compile(r"Input should be a valid number.*"), "expected a number"),
    (re.compile(r"Input should be a valid boolean.*"), "expected true or false"),
    (re.compile(r"Input should be greater than or equal to"), "must be at least"),
    (re.compile(r"Input should be less than or equal to"), "must be at most"),
    (re.compile(r"Input should be "), "must be "),
)


def plain(message: str) -> str:
    """A validation message without pydantic's phrasing."""
    for pattern, replacement in _PLAIN:
        message = pattern.sub(replacement, message)
    return message


class Command(typer.core.TyperCommand):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        _tidy(self.params)

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        try:
            return super().parse_args(ctx, args)
        except typer.BadParameter as exc:
            exc.message = plain(exc.message)
            raise

    def get_help_option(self, ctx):  # type: ignore[no-untyped-def]
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def collect_usage_pieces(self, ctx):  # type: ignore[no-untyped-def]
        return [piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece
                for piece in super().collect_usage_pieces(ctx)]


class Group(typer.core.TyperGroup):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        _tidy(self.params)

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        try:
            return super().parse_args(ctx, args)
        except typer.BadParameter as exc:
            exc.message = plain(exc.message)
            raise

    def get_help_option(self, ctx):  # type: ignore[no-untyped-def]
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option
