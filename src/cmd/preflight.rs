//! Mistakes caught once, before any job runs: a backup location that is
//! missing, unreadable or unwritable, credentials that do not work, a
//! storage directory that does not exist, a restore `--id` that names no
//! backup. Without these checks each would fail every repository, one
//! error line (and, for an unreachable endpoint, a round of retries) each.
//!
//! Only checks; repairs nothing but a missing local backup directory,
//! which `create` makes as it always has.

use std::path::Path;

use futures::StreamExt;

use crate::job::scheduler::JobSource;
use crate::job::{InputError, Job};
use crate::layout::{self, BackupId};
use crate::storage::{Key, Storage, StorageError};

use super::Context;

/// What the run is about to do.
#[derive(Debug, Clone, Copy)]
pub enum Intent<'a> {
    Create,
    Restore { id: Option<&'a BackupId> },
}

/// Why the run cannot start: one line, saying what to fix.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "storage {name:?}: directory {} does not exist; check --storage or the \
         [[storage]] path in Gitaly's config", dir.display()
    )]
    StorageMissing {
        name: String,
        dir: std::path::PathBuf,
    },
    #[error("backup location {location} does not exist; check --path (or [backup] go_cloud_url)")]
    LocationMissing { location: String },
    #[error("backup location {location} is not usable: {reason}")]
    Location { location: String, reason: String },
    #[error(
        "backup id {id} not found in {location}: there is no backup_ids/{id} marker, and \
         {repository} has no manifest for it; `gitbak list --path ...` shows the ids"
    )]
    UnknownId {
        id: BackupId,
        location: String,
        repository: String,
    },
}

/// Runs the checks `intent` needs. `jobs` is only read for a restore
/// whose `--id` has no marker (backups from before markers): its first
/// job is checked for the id's manifest, and handed back through
/// `Peeked`, so nothing of the input is lost.
pub async fn check<S: JobSource>(
    ctx: &Context,
    intent: Intent<'_>,
    jobs: S,
) -> Result<Peeked<S>, PreflightError> {
    for (name, dir) in ctx.roots.iter() {
        let dir = dir.clone();
        let exists = tokio::task::spawn_blocking(move || dir.is_dir().then_some(()).ok_or(dir))
            .await
            .expect("a metadata read does not panic");
        if let Err(dir) = exists {
            return Err(PreflightError::StorageMissing {
                name: name.clone(),
                dir,
            });
        }
    }
    let storage = ctx.storage.as_ref();
    match intent {
        Intent::Create => writable(storage).await?,
        Intent::Restore { .. } => readable(storage).await?,
    }
    let mut jobs = Peeked::new(jobs);
    if let Intent::Restore { id: Some(id) } = intent {
        known_id(storage, &ctx.cancel, id, &mut jobs).await?;
    }
    Ok(jobs)
}

/// A local directory is made if missing and must take a file; object
/// storage must answer a listing (bucket exists, credentials work). A
/// write probe there would leave an object on write-once buckets.
async fn writable(storage: &dyn Storage) -> Result<(), PreflightError> {
    let Some(files) = storage.local_files() else {
        return readable(storage).await;
    };
    let root = files.root().to_path_buf();
    let location = storage.to_string();
    tokio::task::spawn_blocking(move || probe_directory(&root))
        .await
        .expect("a probe does not panic")
        .map_err(|reason| PreflightError::Location { location, reason })
}

fn probe_directory(root: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    // Private, as the storage makes every directory it writes.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(|error| format!("cannot create it: {error}"))?;
    // A temporary name: should gitbak die before removing it, listings
    // ignore it and the leftover sweeps remove it.
    let probe = root.join(format!(
        "{}{}",
        crate::tempname::unique(".probe"),
        crate::layout::catalog::TEMPORARY_SUFFIX
    ));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|error| format!("cannot write to it: {error}"))?;
    std::fs::remove_file(&probe)
        .map_err(|error| format!("cannot remove {}: {error}", probe.display()))
}

/// One cheap request: the first page of the markers.
async fn readable(storage: &dyn Storage) -> Result<(), PreflightError> {
    let location = storage.to_string();
    if let Some(files) = storage.local_files() {
        let root = files.root().to_path_buf();
        let is_dir = tokio::task::spawn_blocking(move || root.is_dir())
            .await
            .expect("a metadata read does not panic");
        if !is_dir {
            return Err(PreflightError::LocationMissing { location });
        }
    }
    let first = storage.list_stream("backup_ids/").next().await;
    match first {
        None | Some(Ok(_)) => Ok(()),
        Some(Err(error)) if error.is_not_found() => {
            Err(PreflightError::LocationMissing { location })
        }
        Some(Err(error)) => Err(PreflightError::Location {
            location,
            reason: error.to_string(),
        }),
    }
}

async fn known_id<S: JobSource>(
    storage: &dyn Storage,
    cancel: &tokio_util::sync::CancellationToken,
    id: &BackupId,
    jobs: &mut Peeked<S>,
) -> Result<(), PreflightError> {
    let location = storage.to_string();
    let unusable = |error: StorageError| PreflightError::Location {
        location: location.clone(),
        reason: error.to_string(),
    };
    if storage
        .head(&layout::backup_id_marker_key(id))
        .await
        .map_err(unusable)?
        .is_some()
    {
        return Ok(());
    }
    // No marker: a backup from before markers, or no such id. The first
    // job tells; a malformed one is left to fail as a job.
    let first = tokio::select! {
        // Interrupted while stdin is read: the run sees the signal.
        () = cancel.cancelled() => return Ok(()),
        first = jobs.peek() => first,
    };
    let Some(Ok(Some(job))) = first else {
        return Ok(());
    };
    let Ok((storage_name, path)) = super::validate(job) else {
        return Ok(());
    };
    let key: Key = layout::manifest_key(&storage_name, &path, id);
    if storage.head(&key).await.map_err(unusable)?.is_some() {
        return Ok(());
    }
    // gitaly-backup's older pointer layout: a directory named by the id.
    let pointer_dir = format!("{}/{id}/", layout::legacy::repository_prefix(&path));
    if let Some(first) = storage.list_stream(&pointer_dir).next().await {
        first.map_err(unusable)?;
        return Ok(());
    }
    Err(PreflightError::UnknownId {
        id: id.clone(),
        location,
        repository: format!("{storage_name}:{path}"),
    })
}

/// A job source whose first job may have been read ahead.
pub struct Peeked<S> {
    first: Option<Result<Option<Job>, InputError>>,
    rest: S,
}

impl<S: JobSource> Peeked<S> {
    pub fn new(rest: S) -> Self {
        Self { first: None, rest }
    }

    async fn peek(&mut self) -> Option<&Result<Option<Job>, InputError>> {
        if self.first.is_none() {
            self.first = Some(self.rest.next_job().await);
        }
        self.first.as_ref()
    }
}

#[async_trait::async_trait]
impl<S: JobSource> JobSource for Peeked<S> {
    async fn next_job(&mut self) -> Result<Option<Job>, InputError> {
        match self.first.take() {
            Some(first) => first,
            None => self.rest.next_job().await,
        }
    }
}
