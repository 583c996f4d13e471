//! Validation of the values the operator and the drivers hand us: Cinder's
//! replication statuses and host names (`host@backend#pool`).

use crate::error::{quote, Error};

/// Cinder's `fields.ReplicationStatus` values, plus `updating`, the fence.
pub const REPLICATION_STATUSES: [&str; 10] = [
    "enabled",
    "disabled",
    "not-capable",
    "failing-over",
    "failover-error",
    "failed-over",
    "enabling",
    "disabling",
    "error",
    "updating",
];

/// The status that fences a service or cluster while the startup hook runs.
pub const FENCE_STATUS: &str = "updating";

/// Cinder's `host` and `cluster_name` columns are VARCHAR(255).
pub const HOST_MAX_CHARS: usize = 255;

/// Check a replication status. `updating` is the hook's fence: an operator
/// may never set it by hand, so it is accepted only when `allow_fence` is set.
pub fn check_replication_status(value: &str, allow_fence: bool) -> Result<(), Error> {
    if value == FENCE_STATUS && !allow_fence {
        return Err(Error::InvalidValue(format!(
            "replication status {} is reserved for the startup hook's fence and cannot be set by hand",
            quote(value)
        )));
    }
    if REPLICATION_STATUSES.contains(&value) {
        return Ok(());
    }
    let allowed: Vec<&str> = REPLICATION_STATUSES
        .iter()
        .copied()
        .filter(|s| allow_fence || *s != FENCE_STATUS)
        .collect();
    Err(Error::InvalidValue(format!(
        "invalid replication status {}: expected one of {}",
        quote(value),
        allowed.join(", ")
    )))
}

/// The three parts of a Cinder host string `host@backend#pool`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostParts {
    pub host: String,
    pub backend: Option<String>,
    pub pool: Option<String>,
}

/// Split and check a Cinder host name. The parts may contain any printable
/// characters (SQL and LIKE wildcards included: they are matched literally).
pub fn split_host(value: &str) -> Result<HostParts, Error> {
    let bad = |why: &str| Err(Error::InvalidValue(format!("invalid host {}: {}", quote(value), why)));
    if value.is_empty() {
        return bad("it is empty");
    }
    if value.chars().count() > HOST_MAX_CHARS {
        return bad("it is longer than 255 characters");
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("it contains whitespace or a control character");
    }
    if value.matches('@').count() > 1 {
        return bad("it contains more than one '@'");
    }
    if value.matches('#').count() > 1 {
        return bad("it contains more than one '#'");
    }
    let (rest, pool) = match value.split_once('#') {
        Some((rest, pool)) => (rest, Some(pool)),
        None => (value, None),
    };
    let (host, backend) = match rest.split_once('@') {
        Some((host, backend)) => (host, Some(backend)),
        None if value.contains('@') => return bad("'#' comes before '@'"),
        None => (rest, None),
    };
    if host.is_empty() || backend == Some("") || pool == Some("") {
        return bad("a part around '@' or '#' is empty");
    }
    Ok(HostParts {
        host: host.to_string(),
        backend: backend.map(str::to_string),
        pool: pool.map(str::to_string),
    })
}

/// Check the host of a volume service as given to `--backend-host`: a host or
/// `host@backend`, never a pool.
pub fn check_backend_host(value: &str) -> Result<HostParts, Error> {
    let parts = split_host(value)?;
    if parts.pool.is_some() {
        return Err(Error::InvalidValue(format!(
            "invalid backend host {}: '#pool' names a pool, not a volume service; give host@backend",
            quote(value)
        )));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cinder_status_is_accepted() {
        for s in REPLICATION_STATUSES.iter().filter(|s| **s != FENCE_STATUS) {
            assert_eq!(check_replication_status(s, false), Ok(()));
        }
        assert_eq!(check_replication_status("updating", true), Ok(()));
    }

    #[test]
    fn fence_status_is_refused_by_hand() {
        let err = check_replication_status("updating", false).unwrap_err();
        assert!(err.to_string().contains("reserved for the startup hook's fence"));
    }

    #[test]
    fn unknown_status_lists_the_choices() {
        let err = check_replication_status("Enabled", false).unwrap_err().to_string();
        assert!(err.starts_with("invalid replication status 'Enabled': expected one of enabled, disabled"));
        assert!(!err.contains("updating"));
    }

    #[test]
    fn host_parts() {
        let p = split_host("node1@lvm#pool_a").unwrap();
        assert_eq!(p.host, "node1");
        assert_eq!(p.backend.as_deref(), Some("lvm"));
        assert_eq!(p.pool.as_deref(), Some("pool_a"));
        let p = split_host("node1").unwrap();
        assert_eq!((p.backend, p.pool), (None, None));
        // Wildcards are ordinary characters here; the database layer escapes them.
        assert!(split_host("o'neil@100%_b").is_ok());
    }

    #[test]
    fn bad_hosts() {
        for (value, why) in [
            ("", "empty"),
            ("a b@c", "whitespace"),
            ("a\n@c", "control"),
            ("a@b@c", "more than one '@'"),
            ("a@b#c#d", "more than one '#'"),
            ("a#p@b", "'#' comes before '@'"),
            ("@b", "empty"),
            ("a@", "empty"),
            ("a@b#", "empty"),
        ] {
            let err = split_host(value).unwrap_err().to_string();
            assert!(err.contains(why), "{value:?}: {err}");
        }
        let long = "h".repeat(256);
        assert!(split_host(&long).unwrap_err().to_string().contains("255"));
        assert!(split_host(&"h".repeat(255)).is_ok());
    }

    #[test]
    fn backend_host_refuses_pools() {
        assert!(check_backend_host("a@b").is_ok());
        let err = check_backend_host("a@b#p").unwrap_err().to_string();
        assert!(err.contains("names a pool"));
    }
}
