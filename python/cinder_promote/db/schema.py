"""Cinder 29.0.0's tables as its migrations create them, and our journal.

Only `services`, `clusters`, `volumes` and `groups` are read or written, and
never altered (SPEC section 3). The definitions mirror the migrated schema
column for column; `tests/test_schema.py` checks them against a database
built by `cinder-manage db sync`. No column here has an `onupdate`: we never
write `services.updated_at`, the heartbeat, by accident.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

metadata = sa.MetaData()


def _soft_delete_columns() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime),
        sa.Column("updated_at", sa.DateTime),
        sa.Column("deleted_at", sa.DateTime),
        sa.Column("deleted", sa.Boolean),
    ]


services = sa.Table(
    "services",
    metadata,
    *_soft_delete_columns(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("host", sa.String(255)),
    sa.Column("binary", sa.String(255)),
    sa.Column("topic", sa.String(255)),
    sa.Column("report_count", sa.Integer, nullable=False),
    sa.Column("disabled", sa.Boolean),
    sa.Column("availability_zone", sa.String(255)),
    sa.Column("disabled_reason", sa.String(255)),
    sa.Column("modified_at", sa.DateTime),
    sa.Column("rpc_current_version", sa.String(36)),
    sa.Column("object_current_version", sa.String(36)),
    sa.Column("replication_status", sa.String(36)),
    sa.Column("frozen", sa.Boolean),
    sa.Column("active_backend_id", sa.String(255)),
    sa.Column("cluster_name", sa.String(255)),
    sa.Column("uuid", sa.String(36)),
)

clusters = sa.Table(
    "clusters",
    metadata,
    *_soft_delete_columns(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("binary", sa.String(255), nullable=False),
    sa.Column("disabled", sa.Boolean),
    sa.Column("disabled_reason", sa.String(255)),
    sa.Column("race_preventer", sa.Integer, nullable=False),
    sa.Column("replication_status", sa.String(36)),
    sa.Column("active_backend_id", sa.String(255)),
    sa.Column("frozen", sa.Boolean, nullable=False),
)

volumes = sa.Table(
    "volumes",
    metadata,
    *_soft_delete_columns(),
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("ec2_id", sa.String(255)),
    sa.Column("user_id", sa.String(255)),
    sa.Column("project_id", sa.String(255)),
    sa.Column("host", sa.String(255)),
    sa.Column("size", sa.Integer),
    sa.Column("availability_zone", sa.String(255)),
    sa.Column("status", sa.String(255)),
    sa.Column("attach_status", sa.String(255)),
    sa.Column("scheduled_at", sa.DateTime),
    sa.Column("launched_at", sa.DateTime),
    sa.Column("terminated_at", sa.DateTime),
    sa.Column("display_name", sa.String(255)),
    sa.Column("display_description", sa.String(255)),
    sa.Column("provider_location", sa.String(256)),
    sa.Column("provider_auth", sa.String(256)),
    sa.Column("snapshot_id", sa.String(36)),
    sa.Column("volume_type_id", sa.String(36), nullable=False),
    sa.Column("source_volid", sa.String(36)),
    sa.Column("bootable", sa.Boolean),
    sa.Column("provider_geometry", sa.String(255)),
    sa.Column("_name_id", sa.String(36)),
    sa.Column("encryption_key_id", sa.String(36)),
    sa.Column("migration_status", sa.String(255)),
    sa.Column("replication_status", sa.String(255)),
    sa.Column("replication_extended_status", sa.String(255)),
    sa.Column("replication_driver_data", sa.String(255)),
    sa.Column("consistencygroup_id", sa.String(36)),
    sa.Column("provider_id", sa.String(255)),
    sa.Column("multiattach", sa.Boolean),
    sa.Column("previous_status", sa.String(255)),
    sa.Column("cluster_name", sa.String(255)),
    sa.Column("group_id", sa.String(36)),
    sa.Column("service_uuid", sa.String(36)),
    sa.Column("shared_targets", sa.Boolean),
    sa.Column("use_quota", sa.Boolean, nullable=False),
)

groups = sa.Table(
    "groups",
    metadata,
    *_soft_delete_columns(),
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("user_id", sa.String(255)),
    sa.Column("project_id", sa.String(255)),
    sa.Column("cluster_name", sa.String(255)),
    sa.Column("host", sa.String(255)),
    sa.Column("availability_zone", sa.String(255)),
    sa.Column("name", sa.String(255)),
    sa.Column("description", sa.String(255)),
    sa.Column("group_type_id", sa.String(36)),
    sa.Column("status", sa.String(255)),
    sa.Column("group_snapshot_id", sa.String(36)),
    sa.Column("source_group_id", sa.String(36)),
    sa.Column("replication_status", sa.String(255)),
)

CINDER_TABLES = (services, clusters, volumes, groups)

# The one table of our own (SPEC section 6), created on first use. JSON is
# stored as text so that the three databases read it alike; LONGTEXT on
# MySQL because a cluster's before/after can outgrow TEXT's 64 KiB.
_json_text = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

journal = sa.Table(
    "cinder_promote_journal",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("operation", sa.String(64), nullable=False),
    sa.Column("target_kind", sa.String(16), nullable=False),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("holder", sa.String(255)),
    sa.Column("lease_expires_at", sa.DateTime),
    sa.Column("status_before", sa.String(36)),
    sa.Column("before_json", _json_text),
    sa.Column("after_json", _json_text),
    sa.Column("counts_json", _json_text),
    sa.Column("error", _json_text),
    sa.Column("undo_of", sa.Integer),
    sa.Index("cinder_promote_journal_target_idx", "target_kind", "target", "state"),
)


def inserted_id(result: Any) -> int:
    """The integer primary key of the one row an INSERT wrote."""
    key = result.inserted_primary_key
    if key is None:  # pragma: no cover - every INSERT here writes exactly one row
        raise RuntimeError("the INSERT returned no primary key")
    return int(key[0])
