"""Configuration is read as Cinder reads it (oslo.config), and bad configuration exits 3."""

from __future__ import annotations

import pytest

from cinder_promote.config import load
from cinder_promote.errors import ConfigError


def write(path, text):
    path.write_text(text)
    return str(path)


def test_later_config_file_wins(tmp_path):
    a = write(tmp_path / "a.conf", "[database]\nconnection = sqlite:///a.db\n[DEFAULT]\nservice_down_time = 30\n")
    b = write(tmp_path / "b.conf", "[database]\nconnection = sqlite:///b.db\n")
    settings = load([a, b])
    assert settings.db_url == "sqlite:///b.db"
    assert settings.service_down_time == 30
    assert settings.config_files == (a, b)


def test_config_dir_is_read_after_files(tmp_path):
    a = write(tmp_path / "a.conf", "[database]\nconnection = sqlite:///a.db\n")
    d = tmp_path / "cinder.conf.d"
    d.mkdir()
    write(d / "10-db.conf", "[database]\nconnection = sqlite:///dir.db\n")
    write(d / "ignored.txt", "[database]\nconnection = sqlite:///txt.db\n")
    assert load([a], str(d)).db_url == "sqlite:///dir.db"


def test_which_database_first_match_wins(tmp_path, monkeypatch):
    """--db-url > the config named on the command line > CINDER_PROMOTE_DB_URL > oslo.config's search."""
    a = write(tmp_path / "a.conf", "[database]\nconnection = sqlite:///a.db\n")
    d = tmp_path / "conf.d"
    d.mkdir()
    write(d / "db.conf", "[database]\nconnection = sqlite:///dir.db\n")
    monkeypatch.setenv("CINDER_PROMOTE_DB_URL", "sqlite:///env.db")
    monkeypatch.chdir(tmp_path)  # no cinder.conf for oslo.config's search to find here
    assert (load([a], db_url="sqlite:///flag.db").db_url, load([a], db_url="sqlite:///flag.db").db_source) == (
        "sqlite:///flag.db", "--db-url")
    # An exported variable must not beat the configuration the operator names now.
    assert load([a]).db_url == "sqlite:///a.db" and load([a]).db_source == f"[database] connection of {a}"
    assert load([], str(d)).db_url == "sqlite:///dir.db"
    assert (load().db_url, load().db_source) == ("sqlite:///env.db", "CINDER_PROMOTE_DB_URL")


def test_named_config_without_connection_is_not_replaced_by_the_variable(tmp_path, monkeypatch):
    a = write(tmp_path / "a.conf", "[DEFAULT]\nservice_down_time = 30\n")
    monkeypatch.setenv("CINDER_PROMOTE_DB_URL", "sqlite:///env.db")
    with pytest.raises(ConfigError, match="no database configured"):
        load([a]).require_db_url()


def test_defaults(tmp_path):
    a = write(tmp_path / "a.conf", "[DEFAULT]\n")
    settings = load([a])
    assert settings.db_url is None and settings.service_down_time == 60
    with pytest.raises(ConfigError, match=r"no database configured: \[database\] connection is not set"):
        settings.require_db_url()


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found or unreadable"),
        ("[DEFAULT\nfoo = bar\n", "cannot parse configuration file"),
        ("[DEFAULT]\nservice_down_time = soon\n", "invalid configuration value"),
        ("[DEFAULT]\nservice_down_time = 0\n", "invalid configuration value"),
    ],
)
def test_bad_config_exits_3(cli, tmp_path, content, message):
    path = tmp_path / "cinder.conf"
    if content is not None:
        path.write_text(content + "[database]\nconnection = sqlite:////nonexistent/x.db\n")
    result = cli("--config-file", str(path), "status")
    assert result.exit_code == 3, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_unreadable_config(cli, tmp_path):
    # Root reads any file whatever its mode; a directory is unreadable as a file for everyone.
    result = cli("--config-file", str(tmp_path), "status")
    assert result.exit_code == 3
    assert "cannot read configuration file" in result.stderr and "Is a directory" in result.stderr


def test_missing_config_dir(cli, tmp_path):
    result = cli("--config-dir", str(tmp_path / "nope"), "status")
    assert result.exit_code == 3 and "not found" in result.stderr


def test_no_database_configured(cli, tmp_path):
    conf = write(tmp_path / "cinder.conf", "[DEFAULT]\n")
    result = cli("--config-file", conf, "status")
    assert result.exit_code == 3
    assert "no database configured" in result.stderr


def test_secret_connection_in_config_is_masked(cli, tmp_path):
    conf = write(tmp_path / "cinder.conf",
                 "[database]\nconnection = mysql+pymysql://cinder:C0nf-Secret@127.0.0.1:1/cinder\n")
    result = cli("--config-file", conf, "status")
    assert result.exit_code == 3
    assert "C0nf-Secret" not in result.stderr + result.stdout
