//! What the contract allows: the columns a driver may write for each kind of
//! row, their widths and valid values, and the limits of a plan.

use crate::validate::{FENCE_STATUS, REPLICATION_STATUSES};

/// A refusal names at most this many problems, then how many more there are.
pub const MAX_PROBLEM_LINES: usize = 50;
/// The smallest bind-parameter limit we plan for.
pub const MIN_MAX_PARAMS: i64 = 8;
/// The smallest group of identical updates that may become a set-based write.
pub const MIN_MIN_GROUP: i64 = 1;

/// Cinder's `fields.VolumeStatus` values.
pub const VOLUME_STATUSES: [&str; 22] = [
    "creating",
    "available",
    "deleting",
    "error",
    "error_deleting",
    "error_managing",
    "managing",
    "attaching",
    "in-use",
    "detaching",
    "maintenance",
    "restoring-backup",
    "error_restoring",
    "reserved",
    "awaiting-transfer",
    "backing-up",
    "error_backing-up",
    "error_extending",
    "downloading",
    "uploading",
    "retyping",
    "extending",
];

/// Cinder's `fields.GroupStatus` values.
pub const GROUP_STATUSES: [&str; 8] =
    ["error", "available", "creating", "deleting", "deleted", "updating", "in-use", "error_deleting"];


/// A replication status a driver may report: Cinder's values, never the fence.
fn is_driver_replication_status(value: &str) -> bool {
    value != FENCE_STATUS && REPLICATION_STATUSES.contains(&value)
}

/// A column the hook may write, in the order of their names (so that sorting
/// columns sorts their names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Column {
    ActiveBackendId,
    PreviousStatus,
    ProviderAuth,
    ProviderId,
    ProviderLocation,
    ReplicationDriverData,
    ReplicationExtendedStatus,
    ReplicationStatus,
    Status,
}

impl Column {
    pub const ALL: [Column; 9] = [
        Column::ActiveBackendId,
        Column::PreviousStatus,
        Column::ProviderAuth,
        Column::ProviderId,
        Column::ProviderLocation,
        Column::ReplicationDriverData,
        Column::ReplicationExtendedStatus,
        Column::ReplicationStatus,
        Column::Status,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Column::ActiveBackendId => "active_backend_id",
            Column::PreviousStatus => "previous_status",
            Column::ProviderAuth => "provider_auth",
            Column::ProviderId => "provider_id",
            Column::ProviderLocation => "provider_location",
            Column::ReplicationDriverData => "replication_driver_data",
            Column::ReplicationExtendedStatus => "replication_extended_status",
            Column::ReplicationStatus => "replication_status",
            Column::Status => "status",
        }
    }

    /// The width of the column in characters (Cinder's `String(n)`).
    pub fn max_chars(self) -> usize {
        match self {
            Column::ProviderAuth | Column::ProviderLocation => 256,
            _ => 255,
        }
    }

    pub(crate) fn bit(self) -> u16 {
        1 << self as u16
    }

    /// The column of this name.
    pub fn named(name: &str) -> Option<Column> {
        Column::ALL.iter().copied().find(|c| c.name() == name)
    }
}

/// What a driver's update is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Service,
    Volume,
    Group,
}

impl Target {
    /// The columns a driver may set, sorted by name.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Target::Service => &[Column::ActiveBackendId, Column::ReplicationStatus],
            Target::Volume => &[
                Column::ProviderAuth,
                Column::ProviderId,
                Column::ProviderLocation,
                Column::ReplicationDriverData,
                Column::ReplicationExtendedStatus,
                Column::ReplicationStatus,
                Column::Status,
            ],
            Target::Group => &[Column::ReplicationStatus, Column::Status],
        }
    }

    /// The columns of the caller's tuples of current values, in their order:
    /// the contract's order of the allowed keys (`VOLUME_KEYS`, `GROUP_KEYS`).
    pub fn known_columns(self) -> &'static [Column] {
        match self {
            Target::Service => &[],
            Target::Volume => &[
                Column::ReplicationStatus,
                Column::ReplicationExtendedStatus,
                Column::ReplicationDriverData,
                Column::ProviderId,
                Column::ProviderLocation,
                Column::ProviderAuth,
                Column::Status,
            ],
            Target::Group => &[Column::ReplicationStatus, Column::Status],
        }
    }

    /// The place of an allowed column in [`Target::known_columns`].
    pub(crate) fn known_index(self, column: Column) -> usize {
        self.known_columns().iter().position(|&c| c == column).expect("an allowed column")
    }

    pub(crate) fn allows(self, column: Column) -> bool {
        self.columns().contains(&column)
    }

    pub(crate) fn valid_value(self, column: Column, value: &str) -> Option<bool> {
        match (self, column) {
            (_, Column::ReplicationStatus) => Some(is_driver_replication_status(value)),
            (Target::Volume, Column::Status) => Some(VOLUME_STATUSES.contains(&value)),
            (Target::Group, Column::Status) => Some(GROUP_STATUSES.contains(&value)),
            _ => None,
        }
    }

    /// `volume` / `group`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Service => "service",
            Target::Volume => "volume",
            Target::Group => "group",
        }
    }

    /// The driver's list: `volume_updates` / `group_updates`.
    pub fn list_name(self) -> &'static str {
        match self {
            Target::Service => "service_update",
            Target::Volume => "volume_updates",
            Target::Group => "group_updates",
        }
    }

    /// The id key of an entry: `volume_id` / `group_id`.
    pub fn id_key(self) -> &'static str {
        match self {
            Target::Service => "service_id",
            Target::Volume => "volume_id",
            Target::Group => "group_id",
        }
    }

    /// The caller's map of live rows: `known_volumes` / `known_groups`.
    pub fn known_name(self) -> &'static str {
        match self {
            Target::Service => "known_services",
            Target::Volume => "known_volumes",
            Target::Group => "known_groups",
        }
    }
}

