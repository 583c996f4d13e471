"""The global options, stored on the Typer context by the root callback."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import typer
from sqlalchemy.engine import Engine

from ..config import DB_URL_ENV, Backend, Settings, configured_backends, load
from ..db.connect import masked, open_engine, parse_url


@dataclass
class CliState:
    config_files: list[str]
    config_dir: str | None
    db_url: str | None
    debug: bool
    _settings: Settings | None = field(default=None, repr=False)
    database: str | None = None  # the database opened, password masked: named on stderr and in JSON

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load(self.config_files, self.config_dir, self.db_url)
        return self._settings

    def backends(self) -> list[Backend]:
        """The volume backends the configuration lists (enabled_backends), none without it."""
        self.settings()  # a configuration that cannot be read fails here, as for every command
        return configured_backends(self.config_files, self.config_dir)

    def engine(self) -> Engine:
        settings = self.settings()
        raw = settings.require_db_url()
        self.database = masked(parse_url(raw))
        # Say which database before touching it: the operator must never act on the wrong one unawares.
        print(f"database: {self.database} (from {settings.db_source})", file=sys.stderr, flush=True)
        return open_engine(raw)

    def json(self, data: dict[str, Any]) -> dict[str, Any]:
        """A command's JSON output, with the database it worked on first."""
        return {"database": self.database, **data}

    def known_urls(self) -> list[str]:
        """URLs whose passwords must be scrubbed from any message."""
        urls = [u for u in (self.db_url, os.environ.get(DB_URL_ENV)) if u]
        if self._settings is not None and self._settings.db_url:
            urls.append(self._settings.db_url)
        return urls


def state(ctx: typer.Context) -> CliState:
    return ctx.find_root().obj
