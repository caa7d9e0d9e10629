//! `gitbak verify`: whether the selected backups can be restored. Plain:
//! every file each selected manifest names exists with the size and
//! SHA-256 it records (gitaly-backup's manifests record none: existence
//! only), and every chain is whole. `--deep`: each backup is also
//! restored into a scratch directory under the system temp dir, through
//! restore's own code (`restore::trial_restore`), and its refs compared
//! with the refs file. Nothing is written to the location or to any
//! repository.
//!
//! `plan` picks the backups from the catalogue, `check` reads the files,
//! `deep` restores, `report` holds what was found (the `--json` schema).

mod check;
mod deep;
pub mod plan;
mod report;

use futures::StreamExt;

use crate::layout::catalog::{BackupKind, Catalog, ManifestRead, Repository};
use crate::storage::StorageError;

use super::Context;
pub use plan::Selection;
pub use report::{BackupCheck, Problem, ProblemKind, VerifyCounts, VerifyReport};

/// Backups checked at once. Each reads at most `check::FILES_IN_FLIGHT`
/// files at a time through a buffer of at most 512 KiB, so 4 × 4 files
/// hold at most 8 MiB of buffers whatever the bundles' sizes.
const BACKUPS_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    pub selection: Selection,
    /// `--repository`: only this repository.
    pub repository: Option<Repository>,
    /// `--sample N`: N repositories picked at random, after the filters.
    pub sample: Option<usize>,
    /// Seed of the random pick (the CLI passes a fresh one each run).
    pub seed: u64,
    /// `--deep`: also restore each backup into a scratch directory.
    pub deep: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("interrupted")]
    Interrupted,
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error(
        "no manifest of {repository} in {location}; check the storage name and relative path \
         (as in a job line: STORAGE:PATH, with .git), or run gitbak list"
    )]
    NoSuchRepository {
        repository: Repository,
        location: String,
    },
    #[error("no backup to verify in {location} {what}; gitbak list shows what it holds")]
    NothingSelected { location: String, what: String },
}

/// What verify tells as it goes, for a progress display; the defaults
/// ignore it.
pub trait VerifyProgress: Send + Sync {
    /// The backups selected, once the catalogue is read.
    fn selected(&self, _backups: usize) {}
    /// One backup checked, whose files hold `bytes`.
    fn checked(&self, _bytes: u64) {}
}

/// A `VerifyProgress` that shows nothing.
pub struct NoProgress;

impl VerifyProgress for NoProgress {}

pub async fn run(
    ctx: &Context,
    options: VerifyOptions,
    progress: &dyn VerifyProgress,
) -> Result<VerifyReport, VerifyError> {
    let checked = tokio::select! {
        () = ctx.cancel.cancelled() => Err(VerifyError::Interrupted),
        report = verify(ctx, &options, progress) => report,
    };
    // A trial restore dropped by an interrupt hands the removal of its
    // scratch directory to this tracker: wait until it is gone.
    ctx.unstoppable.close();
    ctx.unstoppable.wait().await;
    checked
}

async fn verify(
    ctx: &Context,
    options: &VerifyOptions,
    progress: &dyn VerifyProgress,
) -> Result<VerifyReport, VerifyError> {
    let catalog = super::catalog::load(ctx.storage.as_ref(), ctx.progress.as_ref()).await?;
    let selected = selected(ctx, &catalog, options)?;
    tracing::debug!(backups = selected.len(), "verifying");
    progress.selected(selected.len());
    let slots = deep::slots();
    let mut backups: Vec<(usize, BackupCheck)> = futures::stream::iter(selected)
        .enumerate()
        .map(|(position, index)| {
            let (catalog, slots) = (&catalog, &slots);
            let deep = options.deep.then_some(slots);
            async move {
                let check = check_backup(ctx, catalog, index, deep).await;
                progress.checked(check.bytes);
                (position, check)
            }
        })
        .buffer_unordered(BACKUPS_IN_FLIGHT)
        .collect()
        .await;
    backups.sort_by_key(|(position, _)| *position);
    let backups: Vec<BackupCheck> = backups.into_iter().map(|(_, check)| check).collect();
    let counts = count(&backups);
    Ok(VerifyReport {
        sound: backups.iter().all(BackupCheck::is_sound),
        counts,
        backups,
    })
}

/// The selection, narrowed and sampled; an empty one is an error, since
/// verifying nothing would pass a mistyped location.
fn selected(
    ctx: &Context,
    catalog: &Catalog,
    options: &VerifyOptions,
) -> Result<Vec<usize>, VerifyError> {
    let location = ctx.storage.to_string();
    if let Some(repository) = &options.repository {
        if !catalog.repositories.contains_key(repository) {
            return Err(VerifyError::NoSuchRepository {
                repository: repository.clone(),
                location,
            });
        }
    }
    let selected = plan::select(catalog, &options.selection, options.repository.as_ref());
    if selected.is_empty() {
        let what = match &options.selection {
            Selection::Latest => "(no manifests)".to_owned(),
            Selection::Id(id) => format!("under id {id}"),
            Selection::At(at) => format!("taken at or before {at}"),
        };
        return Err(VerifyError::NothingSelected { location, what });
    }
    Ok(match options.sample {
        Some(count) => plan::sample(&selected, count, options.seed),
        None => selected,
    })
}

/// One backup: its manifest read again (for its steps and digests), its
/// files checked, then, with `deep` (its slots), a trial restore when they
/// were sound.
async fn check_backup(
    ctx: &Context,
    catalog: &Catalog,
    index: usize,
    deep: Option<&tokio::sync::Semaphore>,
) -> BackupCheck {
    let entry = &catalog.manifests[index];
    let mut check = BackupCheck {
        storage: entry.repository.storage.to_string(),
        relative_path: entry.repository.path.to_string(),
        backup_id: entry.backup_id.as_ref().map(ToString::to_string),
        manifest: entry.key.to_string(),
        kind: match &entry.content {
            Ok(summary) => summary.kind.name(),
            Err(_) => "unreadable",
        },
        steps: entry.content.as_ref().map_or(0, |summary| summary.steps),
        files: 0,
        bytes: 0,
        bytes_hashed: 0,
        restored: false,
        problems: Vec::new(),
    };
    let unreadable = |detail: String| Problem {
        kind: ProblemKind::UnreadableManifest,
        file: None,
        step: None,
        detail,
    };
    if let Err(reason) = &entry.content {
        check.problems.push(unreadable(reason.clone()));
        return check;
    }
    let manifest = match super::catalog::read_manifest(ctx.storage.as_ref(), &entry.key).await {
        Ok(ManifestRead::Parsed(manifest)) => manifest,
        Ok(ManifestRead::Damaged(reason)) => {
            check.problems.push(unreadable(reason));
            return check;
        }
        Ok(ManifestRead::Vanished) => {
            check.problems.push(unreadable(
                "removed since the listing (is a prune running?); verify again".into(),
            ));
            return check;
        }
        Err(error) => {
            check.problems.push(Problem {
                kind: ProblemKind::ReadError,
                file: None,
                step: None,
                detail: error.to_string(),
            });
            return check;
        }
    };
    let files = check::check_files(ctx.storage.as_ref(), catalog, index, &manifest).await;
    check.files = files.found;
    check.bytes = files.bytes;
    check.bytes_hashed = files.bytes_hashed;
    check.problems = files.problems;
    let missing_repository = matches!(
        entry.content.as_ref().map(|summary| summary.kind),
        Ok(BackupKind::Missing)
    );
    if let Some(slots) = deep.filter(|_| check.is_sound() && !missing_repository) {
        check.restored = true;
        let found = deep::restore(ctx, slots, &entry.repository, &manifest).await;
        check.problems.extend(found);
    }
    check
}

fn count(backups: &[BackupCheck]) -> VerifyCounts {
    let ids = |broken_only: bool| {
        backups
            .iter()
            .filter(|check| !broken_only || !check.is_sound())
            .filter_map(|check| check.backup_id.as_deref())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    VerifyCounts {
        backups: ids(false),
        repositories: backups.len(),
        files: backups.iter().map(|check| check.files).sum(),
        bytes: backups.iter().map(|check| check.bytes).sum(),
        bytes_hashed: backups.iter().map(|check| check.bytes_hashed).sum(),
        deep_restores: backups.iter().filter(|check| check.restored).count(),
        broken_backups: ids(true),
        broken_repositories: backups.iter().filter(|check| !check.is_sound()).count(),
        broken_files: backups
            .iter()
            .flat_map(|check| &check.problems)
            .filter(|problem| problem.file.is_some() && problem.kind.is_file_damage())
            .count(),
    }
}
