//! The update planner of the startup hook `update_host_replication` (SPEC
//! section 5): check a driver's answer against what the database holds, then
//! turn it into batched writes.
//!
//! The input is the driver's answer as the binding found it (strings are
//! borrowed through [`Text`], anything else is reduced to its type name), and
//! every problem is collected before anything is refused. Identical updates
//! become set-based `UPDATE ... WHERE id IN (...)` chunks; the others become
//! column-wise row chunks, both sized to the database's bind-parameter limit.
//! The pure-Python twin (`_reference.plan_updates`) gives the same plans and
//! the same messages.

mod check;
mod contract;
mod hash;
mod input;
mod plan;
#[cfg(test)]
mod tests;

pub use check::{check_limit, check_limits, known_not_a_dict, known_row_error, quote_code_points, KnownProblem};
pub use contract::*;
pub use hash::{item_hash, text_hash, FastMap};
pub use input::*;
pub use plan::*;

use crate::error::Error;
use check::{check_entries, check_service, Problems};

/// Check the driver's answer and plan its writes; every problem is reported.
pub fn plan<S: Text>(input: Input<S>, limits: Limits) -> Result<Plan<S>, Error> {
    let mut problems = Problems::default();
    let service = check_service(&input.service, &mut problems);
    let volumes = check_entries(Target::Volume, input.volumes, &mut problems)?;
    let groups = check_entries(Target::Group, input.groups, &mut problems)?;
    if problems.count > 0 {
        return Err(problems.refusal());
    }
    Ok(Plan { service, volumes: plan::plan_kind(volumes, limits)?, groups: plan::plan_kind(groups, limits)? })
}

