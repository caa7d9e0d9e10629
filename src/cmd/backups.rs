//! Finding backups on storage: the backup-id markers and each repository's
//! manifests, with gitaly-backup 19.0's rules for "latest" (spec §3.5, §4.6);
//! for a repository without manifests, the pointer and legacy layouts
//! older gitaly-backup wrote, as 18.9 read them (spec §3.2, §3.3, §4.6);
//! and, for `restore --at`, the newest backup taken by a point in time.

use futures::{StreamExt, TryStreamExt};

use crate::layout::legacy::{self, LegacyError};
use crate::layout::manifest::Manifest;
use crate::layout::time::{self, AtChoice, Timestamp};
use crate::layout::{self, BackupId, RelativePath, StorageName};
use crate::storage::{Key, ObjectMeta, Storage, StorageError, StorageExt};

/// The newest object by modification time; ties go to the greatest key.
fn newest(objects: impl IntoIterator<Item = ObjectMeta>) -> Option<ObjectMeta> {
    objects
        .into_iter()
        .max_by(|a, b| (a.modified, &a.key).cmp(&(b.modified, &b.key)))
}

/// The id of the newest `backup_ids/<id>` marker, if any.
pub async fn latest_backup_id(storage: &dyn Storage) -> Result<Option<BackupId>, StorageError> {
    let markers = storage.list(layout::BACKUP_IDS_PREFIX).await?;
    let marker = newest(
        markers
            .into_iter()
            .filter(|meta| !meta.key.as_str()[layout::BACKUP_IDS_PREFIX.len()..].contains('/')),
    );
    Ok(marker.and_then(|meta| {
        BackupId::parse(&meta.key.as_str()[layout::BACKUP_IDS_PREFIX.len()..]).ok()
    }))
}

/// A manifest found on storage, and the key it was read from.
#[derive(Debug, Clone)]
pub struct FoundManifest {
    pub key: Key,
    pub manifest: Manifest,
    /// The backup's id, when the layout names one (not in `+latest.toml`
    /// alone, nor in the legacy layout).
    pub backup_id: Option<BackupId>,
}

impl FoundManifest {
    /// When the backup was taken, if known (`layout::time::backup_time`).
    pub fn backup_time(&self) -> Option<Timestamp> {
        let id = self.backup_id.as_ref().map(BackupId::as_str);
        time::backup_time(id, &self.manifest)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error("no backup {id} of this repository in {location}")]
    NoSuchBackup { id: String, location: String },
    #[error("no backup of this repository in {location}")]
    NoBackup { location: String },
    #[error("no backup of this repository taken at or before {at} in {location}: {detail}")]
    NoBackupAt {
        at: Timestamp,
        location: String,
        detail: String,
    },
    #[error("manifest {key}: {detail}")]
    BadManifest { key: String, detail: String },
    #[error(transparent)]
    BadPointer(#[from] LegacyError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

async fn read_manifest(storage: &dyn Storage, key: Key) -> Result<FoundManifest, FindError> {
    let bytes = storage.get_bytes(&key).await?;
    let text = String::from_utf8(bytes).map_err(|_| FindError::BadManifest {
        key: key.to_string(),
        detail: "not UTF-8".into(),
    })?;
    let manifest = Manifest::parse(&text).map_err(|error| FindError::BadManifest {
        key: key.to_string(),
        detail: error.to_string(),
    })?;
    let backup_id =
        layout::backup_id_of_manifest(key.as_str()).and_then(|id| BackupId::parse(id).ok());
    Ok(FoundManifest {
        key,
        manifest,
        backup_id,
    })
}

/// The manifest of backup `id`; it must exist, or the pointer layout's
/// directory of that id.
pub async fn find_manifest(
    storage: &dyn Storage,
    storage_name: &StorageName,
    path: &RelativePath,
    id: &BackupId,
) -> Result<FoundManifest, FindError> {
    let key = layout::manifest_key(storage_name, path, id);
    match read_manifest(storage, key).await {
        Err(FindError::Storage(error)) if error.is_not_found() => {}
        other => return other,
    }
    match find_pointer_backup(storage, path, id).await? {
        Some(found) => Ok(found),
        None => Err(FindError::NoSuchBackup {
            id: id.to_string(),
            location: storage.to_string(),
        }),
    }
}

/// A small file's bytes, `None` when it does not exist.
async fn read_optional(storage: &dyn Storage, key: &str) -> Result<Option<Vec<u8>>, FindError> {
    let key = Key::new(key.to_owned())?;
    match storage.get_bytes(&key).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The pointer layout's backup `id`: `<path>/<id>/LATEST` counts its steps.
async fn find_pointer_backup(
    storage: &dyn Storage,
    path: &RelativePath,
    id: &BackupId,
) -> Result<Option<FoundManifest>, FindError> {
    let key = legacy::backup_pointer_key(path, id);
    let Some(bytes) = read_optional(storage, &key).await? else {
        return Ok(None);
    };
    let steps = legacy::parse_step_count(&key, &bytes)?;
    Ok(Some(FoundManifest {
        key: Key::new(key)?,
        manifest: legacy::pointer_manifest(path, id, steps),
        backup_id: Some(id.clone()),
    }))
}

/// The latest backup of a repository that has no manifest: the pointer
/// layout's (`<path>/LATEST`), else the legacy layout's when its refs file
/// or bundle exists. gitaly-backup took the legacy paths on trust; here a
/// repository with neither has no backup, so gitaly mode's removal rule
/// applies to it as to a repository without a manifest.
async fn find_pre_manifest_backup(
    storage: &dyn Storage,
    path: &RelativePath,
) -> Result<Option<FoundManifest>, FindError> {
    let key = legacy::latest_pointer_key(path);
    if let Some(bytes) = read_optional(storage, &key).await? {
        let id = legacy::parse_latest_backup(&key, &bytes)?;
        // A `LATEST` naming a directory without its own pointer is
        // damage, not an absent backup: say which file is missing.
        return match find_pointer_backup(storage, path, &id).await? {
            Some(found) => Ok(Some(found)),
            None => Err(FindError::BadManifest {
                key,
                detail: format!("names backup {id}, whose LATEST file does not exist"),
            }),
        };
    }
    let mut manifest = legacy::legacy_manifest(path);
    let step = &mut manifest.steps[0];
    let refs = Key::new(step.ref_path.clone())?;
    let bundle = Key::new(step.bundle_path.clone())?;
    let refs_exist = storage.head(&refs).await?.is_some();
    if !refs_exist {
        if storage.head(&bundle).await?.is_none() {
            return Ok(None);
        }
        // Before 14.2 the legacy layout had no refs file: the bundle's
        // refs are all there is.
        step.ref_path.clear();
    }
    Ok(Some(FoundManifest {
        key: if refs_exist { refs } else { bundle },
        manifest,
        backup_id: None,
    }))
}

/// The latest backup: `<latest marker>.toml` when the repository is part of
/// that run, else its newest manifest (`+latest.toml` only when it is the
/// sole one, since it is a copy).
pub async fn find_latest_manifest(
    storage: &dyn Storage,
    storage_name: &StorageName,
    path: &RelativePath,
    latest_id: Option<&BackupId>,
) -> Result<FoundManifest, FindError> {
    if let Some(id) = latest_id {
        match find_manifest(storage, storage_name, path, id).await {
            Err(FindError::NoSuchBackup { .. }) => {}
            other => return other,
        }
    }
    if let Some(meta) = newest_manifest(storage, storage_name, path).await? {
        return read_manifest(storage, meta.key).await;
    }
    match find_pre_manifest_backup(storage, path).await? {
        Some(found) => Ok(found),
        None => Err(FindError::NoBackup {
            location: storage.to_string(),
        }),
    }
}

/// A repository's newest manifest by listing: the newest per-id manifest,
/// or `+latest.toml` only when it is the sole one, since it is a copy.
pub async fn newest_manifest(
    storage: &dyn Storage,
    storage_name: &StorageName,
    path: &RelativePath,
) -> Result<Option<ObjectMeta>, StorageError> {
    let (copies, per_id): (Vec<_>, Vec<_>) = list_manifests(storage, storage_name, path)
        .await?
        .into_iter()
        .partition(|meta| meta.key.as_str().ends_with(layout::LATEST_MANIFEST_NAME));
    Ok(newest(per_id).or_else(|| newest(copies)))
}

/// Every manifest directly under the repository's manifest prefix.
async fn list_manifests(
    storage: &dyn Storage,
    storage_name: &StorageName,
    path: &RelativePath,
) -> Result<Vec<ObjectMeta>, StorageError> {
    let prefix = layout::manifest_prefix(storage_name, path);
    Ok(storage
        .list(&prefix)
        .await?
        .into_iter()
        .filter(|meta| {
            let name = &meta.key.as_str()[prefix.len()..];
            !name.contains('/') && name.ends_with(".toml")
        })
        .collect())
}

/// Manifests read at once while looking for a point in time: small
/// files, so this bounds requests in flight, not memory.
const MANIFEST_READS_IN_FLIGHT: usize = 8;

/// `restore --at`: the newest backup taken at or before `at`, among the
/// repository's per-id manifests (a backup's time: `layout::time`). Every
/// manifest is read, since `created_at` wins over the id's time; one that
/// cannot be read fails the lookup rather than being passed over, as it
/// may be the backup asked for.
pub async fn find_manifest_at(
    storage: &dyn Storage,
    storage_name: &StorageName,
    path: &RelativePath,
    at: Timestamp,
) -> Result<FoundManifest, FindError> {
    let keys = list_manifests(storage, storage_name, path)
        .await?
        .into_iter()
        .map(|meta| meta.key)
        .filter(|key| layout::backup_id_of_manifest(key.as_str()).is_some());
    let found: Vec<FoundManifest> = futures::stream::iter(keys)
        .map(|key| read_manifest(storage, key))
        .buffer_unordered(MANIFEST_READS_IN_FLIGHT)
        .try_collect()
        .await?;
    let timed: Vec<(&str, Option<Timestamp>)> = found
        .iter()
        .map(|found| {
            let id = found.backup_id.as_ref().map_or("", BackupId::as_str);
            (id, found.backup_time())
        })
        .collect();
    let detail = match time::choose_at(&timed, at) {
        AtChoice::Chosen(index) => return Ok(found[index].clone()),
        AtChoice::AllLater { oldest, taken } => {
            format!("the oldest, {}, was taken at {taken}", timed[oldest].0)
        }
        AtChoice::NoKnownTime { backups: 0 } => "it has no backups".to_owned(),
        AtChoice::NoKnownTime { backups } => format!(
            "none of its {backups} backups records when it was taken \
             (no [gitbak] created_at, and an id that is not a time)"
        ),
    };
    Err(FindError::NoBackupAt {
        at,
        location: storage.to_string(),
        detail,
    })
}

#[cfg(test)]
mod tests;
