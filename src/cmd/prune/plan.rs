//! The prune plan: which manifests the policy removes, which data files
//! no remaining manifest names and have waited out `--grace`, which
//! markers name runs with no manifest left, and which temporary files of
//! dead runs go. Pure: computed from the catalogue, the policy, the grace
//! record and the time; nothing is deleted here (`execute` does that).

use crate::layout::catalog::{Catalog, Repository};
use crate::layout::time::Timestamp;
use crate::layout::unreferenced::Record;
use crate::layout::BackupId;
use crate::retention::{self, Duration, Policy, Reason};
use crate::storage::ObjectMeta;

/// Who left a temporary file (`tempname`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemporaryOwner {
    /// A gitbak of this host that no longer runs: removed now.
    DeadHere,
    /// A gitbak of this host still running: left alone.
    RunningHere,
    /// Another host's: removed once it has waited out the grace period
    /// and has not been written to for as long.
    Elsewhere,
}

/// What the policy says about one backup of one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep(Vec<Reason>),
    Remove,
    /// Its manifest cannot be read: kept, and nothing of its repository
    /// is swept.
    Unreadable,
}

#[derive(Debug, Clone)]
pub struct BackupVerdict {
    /// Index into `Catalog::manifests`.
    pub manifest: usize,
    pub verdict: Verdict,
    /// For a removed backup: how many of the files it names a kept
    /// backup still needs (earlier steps of a kept chain).
    pub files_still_needed: usize,
}

#[derive(Debug, Clone)]
pub struct RepositoryPlan {
    pub repository: Repository,
    /// Oldest first.
    pub backups: Vec<BackupVerdict>,
}

#[derive(Debug, Clone)]
pub struct PrunePlan {
    pub now: Timestamp,
    /// Files unreferenced since this instant or earlier are removed.
    pub grace_cutoff: Timestamp,
    pub repositories: Vec<RepositoryPlan>,
    /// Manifests to remove (indexes into `Catalog::manifests`).
    pub manifests: Vec<usize>,
    /// Data files to remove (indexes into `Catalog::files`).
    pub files: Vec<usize>,
    /// Data files no manifest names that wait out the grace period, and
    /// since when they are unreferenced.
    pub waiting_files: Vec<(usize, Timestamp)>,
    pub markers: Vec<BackupId>,
    pub temporaries: Vec<ObjectMeta>,
    pub waiting_temporaries: Vec<(ObjectMeta, Timestamp)>,
}

impl PrunePlan {
    /// The manifests the plan removes, as a mask over `Catalog::manifests`.
    pub fn removed_mask(&self, catalog: &Catalog) -> Vec<bool> {
        let mut removed = vec![false; catalog.manifests.len()];
        for &index in &self.manifests {
            removed[index] = true;
        }
        removed
    }

    /// When a file unreferenced since `since` becomes removable (for
    /// messages: calendar months make the grace period's length vary).
    pub fn removable_after(&self, since: Timestamp) -> Timestamp {
        let grace = self.now.unix_seconds() - self.grace_cutoff.unix_seconds();
        Timestamp::from_unix_seconds(since.unix_seconds() + grace)
    }
}

/// Plans a prune of `catalog` under `policy`, evaluated at `now`;
/// `temporaries` are the temporary files found, with who left them.
pub fn plan(
    catalog: &Catalog,
    policy: &Policy,
    now: Timestamp,
    grace: Duration,
    record: &Record,
    temporaries: &[(ObjectMeta, TemporaryOwner)],
) -> PrunePlan {
    let grace_cutoff = grace.before(now);
    let mut repositories = Vec::new();
    let mut removed = vec![false; catalog.manifests.len()];
    for (repository, history) in &catalog.repositories {
        let readable: Vec<usize> = history
            .backups
            .iter()
            .copied()
            .filter(|&index| catalog.manifests[index].content.is_ok())
            .collect();
        let candidates: Vec<(&str, Option<Timestamp>)> = readable
            .iter()
            .map(|&index| {
                let id = catalog.manifests[index].backup_id.as_ref();
                (id.map_or("", BackupId::as_str), catalog.backup_time(index))
            })
            .collect();
        let decisions = retention::apply(policy, &candidates, now);
        let mut backups = Vec::new();
        for &index in &history.backups {
            let verdict = match readable.iter().position(|&r| r == index) {
                None => Verdict::Unreadable,
                Some(at) if decisions[at].keep() => Verdict::Keep(decisions[at].reasons.clone()),
                Some(_) => {
                    removed[index] = true;
                    Verdict::Remove
                }
            };
            backups.push(BackupVerdict {
                manifest: index,
                verdict,
                files_still_needed: 0,
            });
        }
        repositories.push(RepositoryPlan {
            repository: repository.clone(),
            backups,
        });
    }
    let referenced = catalog.referenced(&removed);
    for backup in repositories.iter_mut().flat_map(|r| r.backups.iter_mut()) {
        if backup.verdict == Verdict::Remove {
            let named = catalog.named(backup.manifest);
            backup.files_still_needed = named
                .iter()
                .filter(|&&file| referenced[file] && catalog.files()[file].size.is_some())
                .count();
        }
    }
    let (files, waiting_files) = files_to_remove(catalog, &removed, record, now, grace_cutoff);
    let (temporaries, waiting_temporaries) =
        temporaries_to_remove(temporaries, record, now, grace_cutoff);
    PrunePlan {
        now,
        grace_cutoff,
        repositories,
        manifests: (0..removed.len()).filter(|&index| removed[index]).collect(),
        files,
        waiting_files,
        markers: markers_to_remove(catalog, &removed),
        temporaries,
        waiting_temporaries,
    }
}

/// The sweepable files no manifest outside `removed` names: those
/// unreferenced since `cutoff` or earlier (by the record; first found
/// now otherwise) to remove, the others waiting, with since when.
pub fn files_to_remove(
    catalog: &Catalog,
    removed: &[bool],
    record: &Record,
    now: Timestamp,
    cutoff: Timestamp,
) -> (Vec<usize>, Vec<(usize, Timestamp)>) {
    let referenced = catalog.referenced(removed);
    let mut remove = Vec::new();
    let mut waiting = Vec::new();
    for (index, file) in catalog.files().iter().enumerate() {
        if !file.sweepable || referenced[index] {
            continue;
        }
        let since = record.first_seen.get(&file.key).copied().unwrap_or(now);
        if since <= cutoff {
            remove.push(index);
        } else {
            waiting.push((index, since));
        }
    }
    (remove, waiting)
}

/// Markers of runs none of whose manifests remains (a run with an
/// unreadable manifest keeps its marker).
pub fn markers_to_remove(catalog: &Catalog, removed: &[bool]) -> Vec<BackupId> {
    catalog
        .markers
        .iter()
        .filter(|id| {
            catalog
                .backups
                .get(*id)
                .is_none_or(|backup| backup.manifests.iter().all(|&index| removed[index]))
        })
        .cloned()
        .collect()
}

fn temporaries_to_remove(
    temporaries: &[(ObjectMeta, TemporaryOwner)],
    record: &Record,
    now: Timestamp,
    cutoff: Timestamp,
) -> (Vec<ObjectMeta>, Vec<(ObjectMeta, Timestamp)>) {
    let mut remove = Vec::new();
    let mut waiting = Vec::new();
    for (meta, owner) in temporaries {
        match owner {
            TemporaryOwner::DeadHere => remove.push(meta.clone()),
            TemporaryOwner::RunningHere => {}
            TemporaryOwner::Elsewhere => {
                let since = record
                    .first_seen
                    .get(meta.key.as_str())
                    .copied()
                    .unwrap_or(now);
                // A run still writing it keeps touching it.
                let written = meta
                    .modified
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(i64::MAX, |elapsed| elapsed.as_secs() as i64);
                if since <= cutoff && written <= cutoff.unix_seconds() {
                    remove.push(meta.clone());
                } else {
                    waiting.push((meta.clone(), since));
                }
            }
        }
    }
    (remove, waiting)
}

#[cfg(test)]
mod tests;
