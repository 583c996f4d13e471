//! The plan: identical updates grouped into set-based chunks, the others into
//! column-wise row chunks, each within the database's bind-parameter limit.

use std::ops::Range;

use super::check::{Checks, Ready};
use super::contract::Column;
use super::hash::{item_hash, mix, packed, shared_hash_runs, ByText};
use super::input::*;
use crate::error::{index, push, vec_for, Error};


/// Identical updates for many rows: one `UPDATE ... SET values WHERE id IN ids`;
/// the ids are [`KindPlan::ids`] of `members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetChunk<S> {
    pub values: Vec<(Column, Option<S>)>,
    pub members: Range<usize>,
}

/// Distinct updates of the same columns, a row per member: see
/// [`KindPlan::rows`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowChunk {
    pub columns: Vec<Column>,
    pub members: Range<usize>,
}

/// The writes for one kind of row. The chunks refer to the driver's list
/// (which the plan owns) rather than copying its strings.
#[derive(Debug, Clone)]
pub struct KindPlan<S> {
    /// Entries with something to write.
    pub count: usize,
    /// Entries whose every value equals the row's current one: not written.
    pub unchanged: usize,
    pub sets: Vec<SetChunk<S>>,
    pub rows: Vec<RowChunk>,
    /// The entries of the chunks, as indices into `ready`, chunk after chunk.
    members: Vec<u32>,
    ready: Vec<Ready>,
    /// The previous statuses, each distinct one once (see [`Ready::previous`]).
    statuses: Vec<Option<S>>,
    list: List<S>,
}

impl<S: Text> KindPlan<S> {
    fn id(&self, r: &Ready) -> S {
        self.list.entries[r.entry as usize].str_id().expect("a ready entry has a str id")
    }

    /// The ids of a chunk's members, in input order.
    pub fn ids(&self, members: Range<usize>) -> impl ExactSizeIterator<Item = S> + '_ {
        self.members[members].iter().map(|&m| self.id(&self.ready[m as usize]))
    }

    /// The rows of a row chunk, in input order: each id with its values, one
    /// per column of the chunk. (One pass over the members for all columns.)
    pub fn rows<'a>(
        &'a self,
        chunk: &'a RowChunk,
    ) -> impl ExactSizeIterator<Item = (S, impl Iterator<Item = Option<S>> + 'a)> + 'a {
        let previous = chunk.columns.first() == Some(&Column::PreviousStatus);
        self.members[chunk.members.clone()].iter().map(move |&m| {
            let r = &self.ready[m as usize];
            // previous_status, the first volume column by name, is not in the dict.
            let status = r.previous.filter(|_| previous).map(|p| self.statuses[p as usize]);
            let values = self.list.dicts.kept(r.dict, r.keep).map(|(_, value)| value);
            (self.id(r), status.into_iter().chain(values))
        })
    }
}

#[derive(Debug, Clone)]
pub struct Plan<S> {
    /// The service's columns, in the driver's order.
    pub service: Vec<(Column, Option<S>)>,
    pub volumes: KindPlan<S>,
    pub groups: KindPlan<S>,
}

pub(crate) fn plan_kind<S: Text>(checks: Checks<S>, limits: Limits) -> Result<KindPlan<S>, Error> {
    let Checks { ready, unchanged, statuses, dicts: checked, list } = checks;
    // Group the entries by their final values (the dict's content that
    // differs from the row, and the previous status), in order of first
    // appearance. An entry with the same dict, kept columns and previous
    // status as the one before it joins its group; the others are sorted by a
    // hash of their final values (see [`packed`]).
    let same = |a: &Ready, b: &Ready| {
        a.previous == b.previous
            && a.keep == b.keep
            && (a.dict == b.dict || {
                let (x, y) = (list.dicts.kept(a.dict, a.keep), list.dicts.kept(b.dict, b.keep));
                x.map(|(c, v)| (c, v.map(ByText))).eq(y.map(|(c, v)| (c, v.map(ByText))))
            })
    };
    let key = |r: &Ready| {
        // A dict's hash is the sum of its items' (see `item_hash`): the kept ones'.
        let hash = if r.keep == checked[r.dict as usize].mask {
            list.dicts.hash(r.dict)
        } else {
            u64::from(list.dicts.kept(r.dict, r.keep).fold(0u32, |sum, (c, v)| sum.wrapping_add(item_hash(c, v) as u32)))
        };
        mix(hash, r.previous.map_or(0, |p| u64::from(p) + 1))
    };
    // first[i]: the first entry with the final values of entry i.
    let n = index(ready.len())?;
    let mut first: Vec<u32> = vec_for(ready.len())?;
    first.extend(0..n);
    let mut keyed: Vec<u64> = vec_for(ready.len())?;
    for (i, r) in (0..n).zip(&ready) {
        match (i as usize).checked_sub(1) {
            Some(b) if ready[b].dict == r.dict && ready[b].keep == r.keep && ready[b].previous == r.previous => {
                first[i as usize] = first[b]
            }
            _ => keyed.push(packed(key(r), i)),
        }
    }
    keyed.sort_unstable();
    let mut distinct: Vec<u32> = Vec::new();
    for run in shared_hash_runs(&keyed) {
        // In index order: the first of each distinct value comes first.
        distinct.clear();
        for i in run {
            match distinct.iter().copied().find(|&f| same(&ready[f as usize], &ready[i as usize])) {
                Some(f) => first[i as usize] = f,
                None => push(&mut distinct, i)?,
            }
        }
    }
    drop(keyed);
    // first[i] becomes the group of entry i, the groups numbered in order of
    // first appearance (an entry's first comes before it: its group is known).
    let mut firsts: Vec<u32> = Vec::new();
    for i in 0..first.len() {
        let f = first[i] as usize;
        first[i] = if f == i {
            push(&mut firsts, f as u32)?;
            (firsts.len() - 1) as u32
        } else {
            first[f]
        };
    }
    let group_of = first;
    let mut place: Vec<u32> = vec_for(firsts.len())?;
    place.resize(firsts.len(), 0);
    for &g in &group_of {
        place[g as usize] += 1;
    }
    // The members of the set-based groups come first, each group's in input
    // order: a group's size becomes its first place in `members` (MAX: not
    // set-based) and, once they are placed, the end of its members.
    const NOT_A_SET: u32 = u32::MAX;
    let mut set_members = 0;
    for size in &mut place {
        if *size as usize >= limits.min_group {
            (*size, set_members) = (set_members, set_members + *size);
        } else {
            *size = NOT_A_SET;
        }
    }
    // Then the others, partitioned by their columns in order of first appearance.
    let mask_of = |r: &Ready| r.keep | if r.previous.is_some() { Column::PreviousStatus.bit() } else { 0 };
    let mut partition_of = vec![u32::MAX; 1 << Column::ALL.len()];
    let mut partitions: Vec<(u16, u32)> = Vec::new();
    for (r, &g) in ready.iter().zip(&group_of) {
        if place[g as usize] == NOT_A_SET {
            let mask = mask_of(r);
            let p = &mut partition_of[mask as usize];
            if *p == u32::MAX {
                *p = partitions.len() as u32;
                partitions.push((mask, 0));
            }
            partitions[*p as usize].1 += 1;
        }
    }
    let mut next_row: Vec<u32> = partitions
        .iter()
        .scan(set_members, |at, &(_, n)| {
            *at += n;
            Some(*at - n)
        })
        .collect();
    let mut members: Vec<u32> = vec_for(ready.len())?;
    members.resize(ready.len(), 0);
    for (i, (r, &g)) in ready.iter().zip(&group_of).enumerate() {
        let next = match place[g as usize] {
            NOT_A_SET => &mut next_row[partition_of[mask_of(r) as usize] as usize],
            _ => &mut place[g as usize],
        };
        members[*next as usize] = i as u32;
        *next += 1;
    }
    drop(group_of);

    let mut sets = Vec::new();
    let mut from = 0;
    for (&first, &end) in firsts.iter().zip(&place).filter(|(_, &end)| end != NOT_A_SET) {
        let r = &ready[first as usize];
        let mut values = Vec::with_capacity(Column::ALL.len());
        if let Some(p) = r.previous {
            // previous_status is the first volume column by name.
            values.push((Column::PreviousStatus, statuses[p as usize]));
        }
        values.extend(list.dicts.kept(r.dict, r.keep));
        let size = limits.max_params.saturating_sub(values.len()).max(1);
        let (mut at, to) = (from as usize, end as usize);
        while at < to {
            let end = to.min(at.saturating_add(size));
            push(&mut sets, SetChunk { values: values.clone(), members: at..end })?;
            at = end;
        }
        from = end;
    }

    let mut rows = Vec::new();
    let mut at = set_members as usize;
    for &(mask, n) in &partitions {
        let columns: Vec<Column> = Column::ALL.iter().copied().filter(|c| mask & c.bit() != 0).collect();
        let size = (limits.max_params / (columns.len() + 1)).max(1);
        let end = at + n as usize;
        for chunk in (at..end).step_by(size) {
            push(&mut rows, RowChunk { columns: columns.clone(), members: chunk..(chunk + size).min(end) })?;
        }
        at = end;
    }
    Ok(KindPlan { count: ready.len(), unchanged, sets, rows, members, ready, statuses, list })
}

