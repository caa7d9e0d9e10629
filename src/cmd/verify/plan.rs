//! Which backups `verify` checks: per repository, the newest backup (the
//! default), the one `--id` names or the newest taken at or before
//! `--at` (as `restore --at` picks it); narrowed to `--repository`, then `--sample N` repositories
//! picked at random. Pure: computed from the catalogue alone; the random
//! pick takes its seed from the caller.

use crate::layout::catalog::{Catalog, Repository};
use crate::layout::time::{backup_id_time, choose_at, AtChoice, Timestamp};
use crate::layout::BackupId;

/// Which backup of each repository is checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Selection {
    /// The newest backup of each repository.
    #[default]
    Latest,
    /// `--id`: the repositories with a manifest under this id.
    Id(BackupId),
    /// `--at`: each repository's newest backup taken at or before this.
    At(Timestamp),
}

/// The manifests to check (indexes into `Catalog::manifests`), one per
/// repository, in repository order.
pub fn select(
    catalog: &Catalog,
    selection: &Selection,
    repository: Option<&Repository>,
) -> Vec<usize> {
    catalog
        .repositories
        .iter()
        .filter(|(name, _)| repository.is_none_or(|wanted| wanted == *name))
        .filter_map(|(_, history)| {
            let per_id = &history.backups;
            match selection {
                Selection::Latest => newest(catalog, per_id).or(history.latest_copy),
                Selection::Id(id) => per_id
                    .iter()
                    .copied()
                    .find(|&index| catalog.manifests[index].backup_id.as_ref() == Some(id)),
                Selection::At(at) => at_or_before(catalog, per_id, *at),
            }
        })
        .collect()
}

/// When a backup was taken, as `restore --at` reckons it: the manifest's
/// `created_at` (when its refs were read), else the time its id names.
fn taken(catalog: &Catalog, index: usize) -> Option<Timestamp> {
    let entry = &catalog.manifests[index];
    let recorded = entry
        .content
        .as_ref()
        .ok()
        .and_then(|summary| summary.created_at);
    recorded.or_else(|| backup_id_time(entry.backup_id.as_ref()?.as_str()))
}

fn timed<'a>(catalog: &'a Catalog, per_id: &[usize]) -> Vec<(&'a str, Option<Timestamp>)> {
    per_id
        .iter()
        .map(|&index| {
            let id = catalog.manifests[index].backup_id.as_ref();
            (id.map_or("", BackupId::as_str), taken(catalog, index))
        })
        .collect()
}

/// The newest backup as `gitbak list` orders a repository's history (by
/// the run's time, the id's before any `created_at`, so every repository
/// of one run agrees): the last with a known time, else the last.
fn newest(catalog: &Catalog, per_id: &[usize]) -> Option<usize> {
    let timed = per_id
        .iter()
        .rev()
        .find(|&&index| catalog.backup_time(index).is_some());
    timed.or(per_id.last()).copied()
}

fn at_or_before(catalog: &Catalog, per_id: &[usize], at: Timestamp) -> Option<usize> {
    match choose_at(&timed(catalog, per_id), at) {
        AtChoice::Chosen(position) => Some(per_id[position]),
        _ => None,
    }
}

/// `count` of `selected` picked at random (all of them when there are no
/// more), kept in their order. `seed` makes the pick repeatable.
pub fn sample(selected: &[usize], count: usize, seed: u64) -> Vec<usize> {
    if count >= selected.len() {
        return selected.to_vec();
    }
    // A partial Fisher-Yates shuffle over positions, driven by splitmix64:
    // uniform enough for a spot check, and no dependency for it.
    let mut positions: Vec<usize> = (0..selected.len()).collect();
    let mut state = seed;
    for slot in 0..count {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^= mixed >> 31;
        let remaining = (selected.len() - slot) as u64;
        let pick = slot + (mixed % remaining) as usize;
        positions.swap(slot, pick);
    }
    let mut picked = positions[..count].to_vec();
    picked.sort_unstable();
    picked
        .into_iter()
        .map(|position| selected[position])
        .collect()
}

#[cfg(test)]
mod tests;
