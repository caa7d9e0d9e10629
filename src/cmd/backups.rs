//! Finding backups on storage: the backup-id markers and each repository's
//! manifests, with gitaly-backup 19.0's rules for "latest" (spec §3.5, §4.6).

use crate::layout::manifest::Manifest;
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
}

#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error("no backup {id} of this repository in {location}")]
    NoSuchBackup { id: String, location: String },
    #[error("no backup of this repository in {location}")]
    NoBackup { location: String },
    #[error("manifest {key}: {detail}")]
    BadManifest { key: String, detail: String },
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
    Ok(FoundManifest { key, manifest })
}

/// The manifest of backup `id`; it must exist.
pub async fn find_manifest(
    storage: &dyn Storage,
    storage_name: &StorageName,
    path: &RelativePath,
    id: &BackupId,
) -> Result<FoundManifest, FindError> {
    let key = layout::manifest_key(storage_name, path, id);
    match read_manifest(storage, key).await {
        Err(FindError::Storage(error)) if error.is_not_found() => Err(FindError::NoSuchBackup {
            id: id.to_string(),
            location: storage.to_string(),
        }),
        other => other,
    }
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
    match newest_manifest(storage, storage_name, path).await? {
        Some(meta) => read_manifest(storage, meta.key).await,
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
    let prefix = layout::manifest_prefix(storage_name, path);
    let manifests: Vec<ObjectMeta> = storage
        .list(&prefix)
        .await?
        .into_iter()
        .filter(|meta| {
            let name = &meta.key.as_str()[prefix.len()..];
            !name.contains('/') && name.ends_with(".toml")
        })
        .collect();
    let (copies, per_id): (Vec<_>, Vec<_>) = manifests
        .into_iter()
        .partition(|meta| meta.key.as_str().ends_with(layout::LATEST_MANIFEST_NAME));
    Ok(newest(per_id).or_else(|| newest(copies)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemoryStorage, WriteMode};

    async fn put(storage: &MemoryStorage, key: &str, text: &str) {
        storage
            .put_bytes(
                &Key::new(key).unwrap(),
                text.as_bytes().to_vec(),
                WriteMode::Overwrite,
            )
            .await
            .unwrap();
        // Distinct modification times.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    #[tokio::test]
    async fn latest_prefers_marker_then_newest_manifest() {
        let storage = MemoryStorage::default();
        let name = StorageName::parse("default").unwrap();
        let path = RelativePath::parse("a.git").unwrap();
        let other = RelativePath::parse("b.git").unwrap();
        put(
            &storage,
            "manifests/default/a.git/1.toml",
            "object_format = 'sha1'\n",
        )
        .await;
        put(
            &storage,
            "manifests/default/a.git/2.toml",
            "object_format = 'sha256'\n",
        )
        .await;
        put(
            &storage,
            "manifests/default/a.git/+latest.toml",
            "object_format = 'x'\n",
        )
        .await;
        put(
            &storage,
            "manifests/default/a.git2/9.toml",
            "object_format = 'y'\n",
        )
        .await;
        put(&storage, "backup_ids/1", "").await;
        let marker = latest_backup_id(&storage).await.unwrap();
        assert_eq!(marker.as_ref().map(BackupId::as_str), Some("1"));
        let found = find_latest_manifest(&storage, &name, &path, marker.as_ref())
            .await
            .unwrap();
        assert_eq!(found.key.as_str(), "manifests/default/a.git/1.toml");
        let found = find_latest_manifest(&storage, &name, &path, None)
            .await
            .unwrap();
        assert_eq!(found.manifest.object_format, "sha256");
        let missing = find_latest_manifest(&storage, &name, &other, marker.as_ref())
            .await
            .unwrap_err();
        assert!(matches!(missing, FindError::NoBackup { .. }), "{missing}");
        let missing = find_manifest(&storage, &name, &path, &BackupId::parse("7").unwrap())
            .await
            .unwrap_err();
        assert!(missing.to_string().contains("no backup 7"), "{missing}");
    }
}
