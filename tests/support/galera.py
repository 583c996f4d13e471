"""The 3-node MariaDB Galera cluster of scripts/galera, as the tests see it.

`CINDER_PROMOTE_TEST_GALERA_URLS` (printed by `scripts/servers env`) holds one
admin URL per node, comma-separated. A database created through one node
exists on all three: `on_node(url, n)` is the same database through node n.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

URLS_ENV = "CINDER_PROMOTE_TEST_GALERA_URLS"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "galera"


def node_urls() -> list[str]:
    return [u for u in os.environ.get(URLS_ENV, "").split(",") if u]


def on_node(url: str, node: int) -> str:
    """The database of `url` through node `node` (1-3)."""
    port = make_url(node_urls()[node - 1]).port
    return make_url(url).set(port=port).render_as_string(hide_password=False)


def engine_on(url: str, node: int, **options) -> sa.Engine:
    """An engine through node `node` whose reads wait for what the cluster has committed."""
    return sa.create_engine(on_node(url, node), connect_args={"init_command": "SET SESSION wsrep_sync_wait = 1"},
                            **options)


def wait_everywhere(url: str) -> str:
    """Return `url` once every node has applied the creation of its database.

    A connection names its database in the handshake, before any causal wait of
    the session can apply: a node still applying the CREATE DATABASE refuses it.
    """
    name = make_url(url).database
    for node in range(1, len(node_urls()) + 1):
        admin = engine_on(node_urls()[node - 1], node, poolclass=sa.pool.NullPool)
        try:
            with admin.connect() as conn:  # wsrep_sync_wait: this read waits for the DDL before it
                conn.execute(sa.text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :db"),
                             {"db": name}).scalar_one()
        finally:
            admin.dispose()
    return url


def node_pid(node: int) -> int:
    return int(subprocess.run([str(SCRIPT), "pid", str(node)], check=True, capture_output=True, text=True).stdout)


def start_node(node: int) -> None:
    """(Re)start a node that was killed; returns once it is synced with the others."""
    subprocess.run([str(SCRIPT), "start-node", str(node)], check=True, capture_output=True, text=True, timeout=300)


def status() -> str:
    return subprocess.run([str(SCRIPT), "status"], capture_output=True, text=True).stdout
