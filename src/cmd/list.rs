//! `gitbak list`: the backups a location holds, or one repository's
//! history, as rows whose fields are the `--json` schema (README, "gitbak
//! list"). Reads storage through `catalog` only.

use serde::Serialize;

use crate::layout::catalog::{BackupKind, Catalog, Repository, TimeSource};
use crate::layout::time::Timestamp;
use crate::storage::StorageError;

use super::Context;

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `--repository STORAGE:PATH`: that repository's history instead.
    pub repository: Option<Repository>,
}

/// One run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BackupRow {
    pub id: String,
    /// RFC 3339 UTC; `null`: time unknown.
    pub time: Option<String>,
    /// `id` or `manifest` (the earliest `created_at`); `null` when unknown.
    pub time_source: Option<&'static str>,
    /// Its `backup_ids/<id>` marker exists.
    pub finished: bool,
    pub repositories: usize,
    pub full: usize,
    pub incremental: usize,
    pub unchanged: usize,
    pub missing: usize,
    pub unreadable: usize,
    /// Bytes this backup added: its manifests and the files they name
    /// that no earlier backup of the same repository names.
    pub bytes: u64,
}

/// One backup of one repository.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryRow {
    pub id: String,
    pub time: Option<String>,
    pub finished: bool,
    /// `full`, `incremental`, `unchanged`, `missing`, or `unreadable`.
    pub kind: &'static str,
    /// Steps a restore replays.
    pub chain_length: usize,
    pub bytes: u64,
    /// Bytes of every file its steps name: what a restore reads.
    pub restore_bytes: u64,
    pub manifest: String,
}

/// A pointer- or legacy-layout backup: listed, never pruned.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReadOnlyRow {
    pub layout: &'static str,
    pub repository_prefix: String,
    pub id: Option<String>,
    pub steps: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UnreadableRow {
    pub manifest: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RepositoryHistory {
    pub storage: String,
    pub relative_path: String,
    pub backups: Vec<HistoryRow>,
}

/// What `list` shows: the runs, or one repository's history.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ListReport {
    /// Every run, oldest first (unknown times last); empty with
    /// `--repository`.
    pub backups: Vec<BackupRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepositoryHistory>,
    pub read_only: Vec<ReadOnlyRow>,
    pub unreadable: Vec<UnreadableRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("interrupted")]
    Interrupted,
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error(
        "no manifest of {repository} in {location}; check the storage name and relative path \
         (as in a job line: STORAGE:PATH, with .git)"
    )]
    NoSuchRepository {
        repository: Repository,
        location: String,
    },
}

pub async fn run(ctx: &Context, options: ListOptions) -> Result<ListReport, ListError> {
    let catalog = super::catalog::load_until_cancelled(
        ctx.storage.as_ref(),
        ctx.progress.as_ref(),
        &ctx.cancel,
    )
    .await?
    .ok_or(ListError::Interrupted)?;
    let repository = match options.repository {
        Some(repository) => {
            Some(
                history(&catalog, &repository).ok_or_else(|| ListError::NoSuchRepository {
                    repository,
                    location: ctx.storage.to_string(),
                })?,
            )
        }
        None => None,
    };
    let backups = if repository.is_some() {
        Vec::new()
    } else {
        backup_rows(&catalog)
    };
    let mut read_only = read_only_rows(&catalog);
    if let Some(history) = &repository {
        // The old layouts name a repository by its path without `.git`.
        let path = crate::layout::RelativePath::parse(&history.relative_path)
            .map(|path| crate::layout::legacy::repository_prefix(&path).to_owned());
        read_only.retain(|row| {
            path.as_ref()
                .is_ok_and(|path| *path == row.repository_prefix)
        });
    }
    Ok(ListReport {
        backups,
        repository,
        read_only,
        unreadable: catalog
            .manifests
            .iter()
            .filter_map(|entry| {
                let error = entry.content.as_ref().err()?;
                Some(UnreadableRow {
                    manifest: entry.key.to_string(),
                    error: error.clone(),
                })
            })
            .collect(),
    })
}

fn shown_time(time: Option<Timestamp>) -> Option<String> {
    time.map(|time| time.to_string())
}

fn backup_rows(catalog: &Catalog) -> Vec<BackupRow> {
    let added = catalog.added_bytes();
    let mut rows: Vec<(Option<Timestamp>, BackupRow)> = catalog
        .backups
        .values()
        .map(|backup| {
            let mut row = BackupRow {
                id: backup.id.to_string(),
                time: shown_time(backup.time),
                time_source: backup.time_source.map(|source| match source {
                    TimeSource::Id => "id",
                    TimeSource::Manifest => "manifest",
                }),
                finished: backup.finished,
                repositories: backup.manifests.len(),
                full: 0,
                incremental: 0,
                unchanged: 0,
                missing: 0,
                unreadable: 0,
                bytes: 0,
            };
            for &index in &backup.manifests {
                row.bytes += added[index];
                let counter = match &catalog.manifests[index].content {
                    Err(_) => &mut row.unreadable,
                    Ok(summary) => match summary.kind {
                        BackupKind::Full => &mut row.full,
                        BackupKind::Incremental => &mut row.incremental,
                        BackupKind::Unchanged => &mut row.unchanged,
                        BackupKind::Missing => &mut row.missing,
                    },
                };
                *counter += 1;
            }
            (backup.time, row)
        })
        .collect();
    rows.sort_by(|(a, row_a), (b, row_b)| {
        (a.is_none(), a, &row_a.id).cmp(&(b.is_none(), b, &row_b.id))
    });
    rows.into_iter().map(|(_, row)| row).collect()
}

fn history(catalog: &Catalog, repository: &Repository) -> Option<RepositoryHistory> {
    let history = catalog.repositories.get(repository)?;
    let added = catalog.added_bytes();
    let backups = history
        .backups
        .iter()
        .map(|&index| {
            let entry = &catalog.manifests[index];
            let id = entry.backup_id.as_ref();
            let backup = id.and_then(|id| catalog.backups.get(id));
            let (kind, chain_length) = match &entry.content {
                Ok(summary) => (summary.kind.name(), summary.steps),
                Err(_) => ("unreadable", 0),
            };
            HistoryRow {
                id: id.map(ToString::to_string).unwrap_or_default(),
                time: shown_time(catalog.backup_time(index)),
                finished: backup.is_some_and(|backup| backup.finished),
                kind,
                chain_length,
                bytes: added[index],
                restore_bytes: catalog.restore_bytes(index),
                manifest: entry.key.to_string(),
            }
        })
        .collect();
    Some(RepositoryHistory {
        storage: repository.storage.to_string(),
        relative_path: repository.path.to_string(),
        backups,
    })
}

fn read_only_rows(catalog: &Catalog) -> Vec<ReadOnlyRow> {
    catalog
        .read_only
        .iter()
        .map(|backup| ReadOnlyRow {
            layout: backup.layout.name(),
            repository_prefix: backup.repository_prefix.clone(),
            id: backup.backup_id.clone(),
            steps: backup.steps,
            bytes: backup.bytes,
        })
        .collect()
}
