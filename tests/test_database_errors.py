"""A database we cannot use gives exit 3, one line, and never the password."""

from __future__ import annotations

import socket

import asyncpg
import pytest
from support.cinder_schema import url_with_credentials

from cinder_promote.db.connect import is_database_error, lost_race


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line_error(result) -> str:
    """The one error line; the line before it names the database that was tried."""
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("database: ")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://cinder:Pa55-unreachable@127.0.0.1:{port}/cinder",
        "mysql+pymysql://cinder:Pa55-unreachable@127.0.0.1:{port}/cinder",
        "postgresql://cinder:Pa55-unreachable@127.0.0.1:{port}/cinder",
    ],
)
def test_unreachable_database(cli, url):
    result = cli("--db-url", url.format(port=_closed_port()), "status")
    assert result.exit_code == 3
    line = _one_line_error(result)
    assert line.startswith("cinder-promote: error: cannot reach database")
    assert "Pa55-unreachable" not in result.stderr + result.stdout and "***" in line


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_wrong_password(cli, cinder_url, dialect):
    bad = url_with_credentials(cinder_url, "cinder_pw", "not-the-s3cret")
    result = cli("--db-url", bad, "reset-active-backend", "--backend-host", "node@be")
    assert result.exit_code == 3
    line = _one_line_error(result)
    assert "cannot reach database" in line
    assert ("password authentication failed" in line) or ("Access denied" in line)
    assert "not-the-s3cret" not in result.stderr


def test_not_a_cinder_database(cli, empty_url):
    result = cli("--db-url", empty_url, "status")
    assert result.exit_code == 3
    line = _one_line_error(result)
    assert "is not a Cinder database: missing table(s) services, clusters, volumes, groups" in line


def test_missing_sqlite_file_is_not_created(cli, tmp_path):
    path = tmp_path / "nowhere.sqlite"
    result = cli("--db-url", f"sqlite:///{path}", "status")
    assert result.exit_code == 3
    assert "does not exist" in _one_line_error(result)
    assert not path.exists()


def test_invalid_url(cli):
    result = cli("--db-url", "not a url", "status")
    assert result.exit_code == 3
    assert "invalid database URL" in _one_line_error(result)


def test_password_stays_hidden_with_debug(cli):
    url = f"postgresql+psycopg2://cinder:Hidden-Pa55@127.0.0.1:{_closed_port()}/cinder"
    result = cli("--db-url", url, "--debug", "status")
    assert result.exit_code == 3
    assert "Hidden-Pa55" not in result.stderr + result.stdout


def test_lost_race_only_for_lock_errors():
    assert not lost_race(ValueError("x"))
    assert not lost_race(asyncpg.exceptions.UniqueViolationError("duplicate key"))
    # asyncpg's own errors reach us from the COPY path, outside SQLAlchemy.
    assert lost_race(asyncpg.exceptions.DeadlockDetectedError("deadlock detected"))
    assert lost_race(asyncpg.exceptions.SerializationError("could not serialize access"))
    assert is_database_error(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"))
    assert not is_database_error(TypeError("a bug of ours"))
