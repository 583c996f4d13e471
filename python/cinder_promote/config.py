"""Configuration read the way Cinder reads it, with oslo.config.

`--config-file` (repeatable, later wins) and `--config-dir` keep oslo.config's
semantics, including its default search for cinder.conf (which finds
/etc/cinder/cinder.conf when present).

Which database, first match wins: `--db-url`; then `[database] connection` of
the `--config-file`/`--config-dir` given on the command line; then the
environment's `CINDER_PROMOTE_DB_URL`; then the cinder.conf that oslo.config's
default search finds. A configuration named on the command line is what the
operator means now, so it beats a variable exported earlier.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from oslo_config import cfg

from .errors import ConfigError

DB_URL_ENV = "CINDER_PROMOTE_DB_URL"
DEFAULT_SERVICE_DOWN_TIME = 60

_OPTS = [cfg.IntOpt("service_down_time", default=DEFAULT_SERVICE_DOWN_TIME, min=1)]
_DB_OPTS = [cfg.StrOpt("connection", secret=True)]


@dataclass(frozen=True)
class Settings:
    db_url: str | None
    service_down_time: int
    config_files: tuple[str, ...]
    db_source: str = ""  # where db_url came from, for the operator: "--db-url", "CINDER_PROMOTE_DB_URL", a file

    def require_db_url(self) -> str:
        if not self.db_url:
            where = ", ".join(self.config_files) or "no cinder.conf found"
            raise ConfigError(
                f"no database configured: [database] connection is not set ({where});"
                f" give --config-file, --db-url or {DB_URL_ENV}"
            )
        return self.db_url


def _oslo_args(config_files: list[str] | None, config_dir: str | None) -> list[str]:
    """oslo.config's own command line for the files and folder the operator named."""
    args: list[str] = []
    for path in config_files or []:
        args += ["--config-file", path]
    if config_dir:
        args += ["--config-dir", config_dir]
    return args


def load(config_files: list[str] | None = None, config_dir: str | None = None, db_url: str | None = None) -> Settings:
    conf = cfg.ConfigOpts()
    conf.register_opts(_OPTS)
    conf.register_opts(_DB_OPTS, group="database")
    try:
        conf(args=_oslo_args(config_files, config_dir), project="cinder", use_env=False)
        connection = conf.database.connection
        down_time = conf.service_down_time
    except cfg.ConfigFilesNotFoundError as exc:
        raise ConfigError(f"cannot read configuration: {', '.join(exc.config_files)} not found or unreadable") from None
    except cfg.ConfigFilesPermissionDeniedError as exc:
        raise ConfigError(f"cannot read configuration: permission denied for {', '.join(exc.config_files)}") from None
    except cfg.ConfigDirNotFoundError as exc:
        raise ConfigError(f"cannot read configuration: directory {exc.config_dir} not found") from None
    except cfg.ConfigFileParseError as exc:
        raise ConfigError(f"cannot parse configuration file {exc.config_file}: {exc.msg}") from None
    except (cfg.ConfigFileValueError, ValueError) as exc:
        raise ConfigError(f"invalid configuration value: {exc}") from None
    except cfg.Error as exc:
        raise ConfigError(f"cannot read configuration: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {exc.filename}: {exc.strerror}") from None
    files = tuple(conf.config_file or ())
    from_files = f"[database] connection of {', '.join(files + ((config_dir,) if config_dir else ()))}"
    env_url = os.environ.get(DB_URL_ENV)
    if db_url:
        url, source = db_url, "--db-url"
    elif config_files or config_dir or not env_url:
        url, source = connection, from_files
    else:
        url, source = env_url, DB_URL_ENV
    return Settings(db_url=url, service_down_time=int(down_time), config_files=files, db_source=source)


# -- the volume backends a cinder.conf configures -------------------------------------------------------

# Cinder's default when neither the backend's section nor [backend_defaults] sets volume_driver.
DEFAULT_VOLUME_DRIVER = "cinder.volume.drivers.lvm.LVMVolumeDriver"


@dataclass(frozen=True)
class Backend:
    """One `enabled_backends` entry: its section, the service host it runs as, its driver."""

    name: str
    host: str  # host@backend, as the cinder-volume service of this node is named
    volume_driver: str


def configured_backends(config_files: list[str] | None = None, config_dir: str | None = None) -> list[Backend]:
    """The volume backends of the configuration, read as cinder-volume reads them.

    `enabled_backends` lists the sections; each section's `volume_driver` falls back to
    `[backend_defaults]`, then to Cinder's default (LVM); the host is the section's `backend_host`,
    else `[DEFAULT] host`, else this machine's name. No configuration file, or no
    `enabled_backends`: no backends.
    """
    conf = cfg.ConfigOpts()
    conf.register_opts([cfg.ListOpt("enabled_backends", default=[]),
                        cfg.StrOpt("host", default=socket.gethostname())])
    conf.register_opts([cfg.StrOpt("volume_driver")], group="backend_defaults")
    try:
        conf(args=_oslo_args(config_files, config_dir), project="cinder", use_env=False)
        names = [n for n in conf.enabled_backends or [] if n]
        for name in names:
            conf.register_opts([cfg.StrOpt("volume_driver"), cfg.StrOpt("backend_host")], group=name)
        default_driver = conf.backend_defaults.volume_driver or DEFAULT_VOLUME_DRIVER
        return [Backend(name, f"{conf[name].backend_host or conf.host}@{name}",
                        conf[name].volume_driver or default_driver) for name in names]
    except (cfg.Error, ValueError, OSError) as exc:
        raise ConfigError(f"cannot read the volume backends of the configuration: {exc}") from None
