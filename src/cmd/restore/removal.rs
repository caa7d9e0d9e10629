//! What a restore run removes besides restoring: the repositories of
//! `-remove-all-repositories` storages that the run did not restore (spec
//! §4.7), and, in gitaly mode, the repositories the latest lookup found no
//! backup for (spec §4.6).
//!
//! Both happen once the jobs are done, never while they run, and only when
//! the run as a whole makes sense: a typo in `-path` finds no backup for
//! anything, and must not empty a node. Every removal renames the
//! repository away before deleting it (`leftovers::remove_repository`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::job::scheduler::RunReport;
use crate::job::Job;
use crate::layout::StorageName;
use crate::node::{self, leftovers, NodeError};

use super::Context;

/// Why a repository was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    /// On a `-remove-all-repositories` storage, and not restored by the run.
    NotRestored,
    /// The latest lookup found no backup of it (gitaly mode).
    NoBackup,
}

/// One repository a restore run removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedRepository {
    pub storage_name: String,
    pub relative_path: String,
    pub reason: RemovalReason,
}

/// What the jobs of one run tell the removals at its end; shared between
/// the jobs, written as each ends.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// Storage name and relative path of every repository restored, a
    /// backup of a repository that did not exist included.
    restored: HashSet<(String, String)>,
    /// Whether any job's lookup found a backup.
    found_any_backup: bool,
    /// Jobs whose latest lookup found no backup, with their directories.
    without_backup: Vec<(Job, PathBuf)>,
}

pub(super) type SharedLedger = Arc<Mutex<Ledger>>;

/// Runs `change` on the ledger. A job that panicked while holding the lock
/// is a failed job; the ledger itself stays consistent (each change is
/// one insert or push), so the poison is ignored.
pub(super) fn record(ledger: &SharedLedger, change: impl FnOnce(&mut Ledger)) {
    let mut guard = ledger
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    change(&mut guard);
}

impl Ledger {
    pub(super) fn found_backup(&mut self) {
        self.found_any_backup = true;
    }

    pub(super) fn restored(&mut self, job: &Job) {
        self.restored
            .insert((job.storage_name.clone(), job.relative_path.clone()));
    }

    pub(super) fn without_backup(&mut self, job: &Job, repository: PathBuf) {
        self.without_backup.push((job.clone(), repository));
    }
}

/// The repositories of each `-remove-all-repositories` storage, listed
/// before the first job starts.
#[derive(Debug, Default)]
pub(super) struct Listed {
    repositories: Vec<(String, PathBuf, Vec<String>)>,
}

/// Lists the storages' repositories as `--discover` finds them: object
/// pools, `+gitaly/` and gitbak's temporary directories are never listed,
/// so never removed. A storage that cannot be listed is only a warning,
/// and then none of its repositories is removed (as gitaly-backup does).
pub(super) async fn list_before(ctx: &Context, storages: &[String]) -> Listed {
    let mut listed = Listed::default();
    for name in storages {
        let root = StorageName::parse(name)
            .map_err(|error| NodeError::Invalid(error.to_string()))
            .and_then(|storage| ctx.roots.root(&storage).map(PathBuf::from));
        let found = match root {
            Ok(root) => {
                let walked = root.clone();
                tokio::task::spawn_blocking(move || node::discover(&walked))
                    .await
                    .map_err(|error| NodeError::Invalid(error.to_string()))
                    .and_then(|found| found)
                    .map(|found| (root, found))
            }
            Err(error) => Err(error),
        };
        match found {
            Ok((root, found)) => listed.repositories.push((name.clone(), root, found)),
            // gitaly-backup's line and fields; the error says what follows.
            Err(error) => ctx.progress.run_warning(
                "failed to list repositories",
                &[
                    ("storage_name", name.as_str()),
                    (
                        "error",
                        &format!("{error}; none of its repositories will be removed"),
                    ),
                ],
            ),
        }
    }
    listed
}

/// Carries out the removals the run earned and returns what went; each
/// removal that failed is added to the run's failures.
pub(super) async fn remove_at_end(
    ctx: &Context,
    listed: Listed,
    ledger: &SharedLedger,
    report: &mut RunReport,
) -> Vec<RemovedRepository> {
    let mut removed = Vec::new();
    let ledger = std::mem::take(&mut *ledger.lock().unwrap_or_else(|p| p.into_inner()));
    if report.interrupted || ctx.cancel.is_cancelled() {
        return removed;
    }
    if !ledger.found_any_backup {
        if !ledger.without_backup.is_empty() || !listed.repositories.is_empty() {
            ctx.progress.run_warning(
                "no backup was found for any repository, so no repository is removed; \
                 check the backup location (-path) and the backup id",
                &[],
            );
        }
        return removed;
    }
    let mut plan: Vec<(Job, PathBuf, RemovalReason)> = ledger
        .without_backup
        .into_iter()
        .map(|(job, path)| (job, path, RemovalReason::NoBackup))
        .collect();
    let run_failed = !report.failures.is_empty() || report.input_error.is_some();
    if run_failed && !listed.repositories.is_empty() {
        ctx.progress.run_warning(
            "some repositories failed to restore, so no repository of the \
             -remove-all-repositories storages is removed; fix the failures and restore again",
            &[],
        );
    }
    if !run_failed {
        for (storage_name, root, paths) in listed.repositories {
            for relative_path in paths {
                let key = (storage_name.clone(), relative_path);
                if ledger.restored.contains(&key) {
                    continue;
                }
                let path = root.join(&key.1);
                let job = Job {
                    storage_name: key.0,
                    relative_path: key.1,
                    ..Job::default()
                };
                plan.push((job, path, RemovalReason::NotRestored));
            }
        }
    }
    for (job, path, reason) in plan {
        if ctx.cancel.is_cancelled() {
            break;
        }
        let removal = ctx
            .run_to_end(move || leftovers::remove_repository(&path))
            .await
            .map_err(|error| NodeError::Invalid(error.to_string()))
            .and_then(|outcome| outcome);
        match removal {
            Ok(true) => {
                tracing::info!(storage = %job.storage_name, relative_path = %job.relative_path, ?reason, "repository removed");
                removed.push(RemovedRepository {
                    storage_name: job.storage_name,
                    relative_path: job.relative_path,
                    reason,
                });
            }
            Ok(false) => {}
            Err(error) => {
                let message = format!("cannot remove the repository: {error}");
                report.failures.push((job, message));
            }
        }
    }
    removed
}
