//! Carrying out a prune plan against storage, in the order that keeps
//! every remaining manifest whole: manifests first, then the data files no
//! remaining manifest names (recomputed from the manifests actually
//! removed), then the markers of runs with no manifest left, and last the
//! grace record. Every key gets its own outcome, so one refusal never
//! stops the rest. Prune's storage writes all happen here.

use tokio_util::sync::CancellationToken;

use super::plan::{files_to_remove, markers_to_remove, PrunePlan};
use crate::layout::catalog::Catalog;
use crate::layout::unreferenced::{self, Record};
use crate::layout::{self, BackupId};
use crate::storage::{Key, Storage, StorageError, StorageExt, WriteMode};

/// Keys per `delete_many` call: S3's limit for one DeleteObjects request.
const DELETE_BATCH: usize = 1000;

/// What happened to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Deleted,
    /// Under a retention period or legal hold: reported, skipped.
    Locked(String),
    Failed(String),
    /// Not attempted: the run was interrupted first.
    NotAttempted,
}

#[derive(Debug, Clone)]
pub struct Deletion {
    pub key: Key,
    pub bytes: u64,
    pub outcome: Outcome,
}

/// What a prune did.
#[derive(Debug, Clone, Default)]
pub struct Executed {
    pub manifests: Vec<Deletion>,
    pub files: Vec<Deletion>,
    pub temporaries: Vec<Deletion>,
    pub markers: Vec<Deletion>,
    /// Writing the grace record failed: why.
    pub record_error: Option<String>,
    pub interrupted: bool,
}

impl Executed {
    pub fn all(&self) -> impl Iterator<Item = &Deletion> {
        self.manifests
            .iter()
            .chain(&self.files)
            .chain(&self.temporaries)
            .chain(&self.markers)
    }
}

/// The record of unreferenced files; a missing one is empty, a damaged
/// one too (with a warning: its files wait one more grace period).
pub async fn load_record(storage: &dyn Storage) -> Result<(Record, Option<String>), StorageError> {
    match storage.get_bytes(&unreferenced::record_key()).await {
        Ok(bytes) => match Record::parse(&bytes) {
            Ok(record) => Ok((record, None)),
            Err(error) => Ok((Record::default(), Some(error.to_string()))),
        },
        Err(error) if error.is_not_found() => Ok((Record::default(), None)),
        Err(error) => Err(error),
    }
}

pub async fn execute(
    storage: &dyn Storage,
    cancel: &CancellationToken,
    catalog: &Catalog,
    plan: &PrunePlan,
    record: &Record,
) -> Executed {
    let mut executed = Executed::default();
    let manifest_keys = plan.manifests.iter().map(|&index| {
        let entry = &catalog.manifests[index];
        (entry.key.clone(), entry.size)
    });
    executed.manifests = delete_keys(storage, cancel, manifest_keys.collect()).await;

    // Only the manifests really gone free their files and markers.
    let mut removed = vec![false; catalog.manifests.len()];
    for (deletion, &index) in executed.manifests.iter().zip(&plan.manifests) {
        removed[index] = deletion.outcome == Outcome::Deleted;
    }
    let (files, mut waiting) =
        files_to_remove(catalog, &removed, record, plan.now, plan.grace_cutoff);
    let file_keys = files.iter().filter_map(|&index| {
        let file = &catalog.files()[index];
        Some((Key::new(file.key.clone()).ok()?, file.size.unwrap_or(0)))
    });
    executed.files = delete_keys(storage, cancel, file_keys.collect()).await;
    let temporary_keys = plan
        .temporaries
        .iter()
        .map(|meta| (meta.key.clone(), meta.size));
    executed.temporaries = delete_keys(storage, cancel, temporary_keys.collect()).await;
    let marker_keys = markers_to_remove(catalog, &removed)
        .into_iter()
        .map(|id: BackupId| (layout::backup_id_marker_key(&id), 0));
    executed.markers = delete_keys(storage, cancel, marker_keys.collect()).await;
    executed.interrupted = cancel.is_cancelled();
    if executed.interrupted {
        // The old record stays: files it lists still wait, and what this
        // run found is found again by the next.
        return executed;
    }

    // Files whose removal failed keep waiting with their time.
    for (deletion, &index) in executed.files.iter().zip(&files) {
        if deletion.outcome != Outcome::Deleted {
            let since = record.first_seen.get(&catalog.files()[index].key).copied();
            waiting.push((index, since.unwrap_or(plan.now)));
        }
    }
    let mut next = Record::default();
    for (index, since) in waiting {
        next.first_seen
            .insert(catalog.files()[index].key.clone(), since);
    }
    let temporaries_left = executed
        .temporaries
        .iter()
        .filter(|deletion| deletion.outcome != Outcome::Deleted)
        .map(|deletion| (deletion.key.to_string(), plan.now));
    let waiting_temporaries = plan
        .waiting_temporaries
        .iter()
        .map(|(meta, since)| (meta.key.to_string(), *since));
    for (key, since) in waiting_temporaries.chain(temporaries_left) {
        next.first_seen.entry(key).or_insert(since);
    }
    executed.record_error = save_record(storage, record, &next).await.err();
    executed
}

/// Writes the record when it changed (never an empty one where there was
/// none).
async fn save_record(storage: &dyn Storage, old: &Record, new: &Record) -> Result<(), String> {
    if old == new {
        return Ok(());
    }
    storage
        .put_bytes(
            &unreferenced::record_key(),
            new.render(),
            WriteMode::Overwrite,
        )
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// Deletes `keys` (with their sizes), each with its own outcome, in the
/// given order, in batches (S3 deletes a batch in one request); after a
/// cancellation no further batch starts.
async fn delete_keys(
    storage: &dyn Storage,
    cancel: &CancellationToken,
    keys: Vec<(Key, u64)>,
) -> Vec<Deletion> {
    let mut deletions = Vec::with_capacity(keys.len());
    for batch in keys.chunks(DELETE_BATCH) {
        let outcomes: Vec<Outcome> = if cancel.is_cancelled() {
            batch.iter().map(|_| Outcome::NotAttempted).collect()
        } else {
            let keys: Vec<Key> = batch.iter().map(|(key, _)| key.clone()).collect();
            storage
                .delete_many(&keys)
                .await
                .into_iter()
                .map(outcome_of)
                .collect()
        };
        deletions.extend(
            batch
                .iter()
                .zip(outcomes)
                .map(|((key, bytes), outcome)| Deletion {
                    key: key.clone(),
                    bytes: *bytes,
                    outcome,
                }),
        );
    }
    deletions
}

/// A refusal counts as locked only when the storage layer found the object
/// under a retention period or legal hold; any other refusal is a failure.
fn outcome_of(result: Result<(), StorageError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Deleted,
        Err(StorageError::Locked { key, reason }) => Outcome::Locked(format!("{key}: {reason}")),
        Err(error) => Outcome::Failed(error.to_string()),
    }
}
