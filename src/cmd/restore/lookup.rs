//! Which backup a job restores: the one `--id` names, the newest taken at
//! or before `--at`, or else the latest (spec §4.6); and what the job's
//! log line says about it.

use std::path::PathBuf;

use crate::job::progress::Completion;
use crate::job::Job;
use crate::layout::{BackupId, RelativePath, StorageName};

use super::super::backups::{self, FindError, FoundManifest};
use super::removal::{record, SharedLedger};
use super::{Context, RestoreError, RestoreOptions};

/// One job's repository, as the lookup needs it.
pub(super) struct Wanted<'a> {
    pub(super) job: &'a Job,
    pub(super) storage_name: &'a StorageName,
    pub(super) path: &'a RelativePath,
    pub(super) repository: PathBuf,
}

pub(super) async fn find_backup(
    ctx: &Context,
    options: &RestoreOptions,
    latest_id: Option<&BackupId>,
    ledger: &SharedLedger,
    wanted: Wanted<'_>,
) -> Result<FoundManifest, RestoreError> {
    let storage = ctx.storage.as_ref();
    let (storage_name, path) = (wanted.storage_name, wanted.path);
    let found = match (&options.id, options.at) {
        (Some(id), _) => backups::find_manifest(storage, storage_name, path, id).await,
        (None, Some(at)) => backups::find_manifest_at(storage, storage_name, path, at).await,
        (None, None) => backups::find_latest_manifest(storage, storage_name, path, latest_id).await,
    };
    match found {
        Ok(found) => {
            record(ledger, |ledger| ledger.found_backup());
            Ok(found)
        }
        // The lookup worked and there is nothing: gitaly-backup removes
        // the repository (spec §4.6), but only at the end of a run that
        // found other backups, since a wrong location finds none at all.
        Err(error @ FindError::NoBackup { .. }) if options.remove_when_no_backup => {
            record(ledger, |ledger| {
                ledger.without_backup(wanted.job, wanted.repository)
            });
            Err(error.into())
        }
        Err(error) => Err(error.into()),
    }
}

/// What the completed line tells: the backup restored and when it was taken.
pub(super) fn completion(found: &FoundManifest) -> Completion {
    Completion {
        backup_id: found.backup_id.as_ref().map(BackupId::to_string),
        backup_time: found.backup_time().map(|time| time.to_string()),
        ..Completion::default()
    }
}
