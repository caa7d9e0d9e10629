//! Finding backups on storage: the backup-id markers and each repository's
//! manifests, with gitaly-backup 19.0's rules for "latest" (spec §3.5, §4.6);
//! for a repository without manifests, the pointer and legacy layouts
//! older gitaly-backup wrote, as 18.9 read them (spec §3.2, §3.3, §4.6).

use crate::layout::legacy::{self, LegacyError};
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
    Ok(FoundManifest { key, manifest })
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

    #[tokio::test]
    async fn without_manifests_pointer_then_legacy() {
        let storage = MemoryStorage::default();
        let name = StorageName::parse("default").unwrap();
        let path = RelativePath::parse("g/p.git").unwrap();
        async fn latest(storage: &MemoryStorage) -> Result<FoundManifest, FindError> {
            let name = StorageName::parse("default").unwrap();
            let path = RelativePath::parse("g/p.git").unwrap();
            find_latest_manifest(storage, &name, &path, None).await
        }
        let missing = latest(&storage).await.unwrap_err();
        assert!(matches!(missing, FindError::NoBackup { .. }), "{missing}");

        // Legacy before 14.2: a bundle and nothing else.
        put(&storage, "g/p.bundle", "x").await;
        let found = latest(&storage).await.unwrap();
        assert_eq!(found.manifest.steps[0].bundle_path, "g/p.bundle");
        assert_eq!(found.manifest.steps[0].ref_path, "");
        put(&storage, "g/p.refs", "").await;
        let found = latest(&storage).await.unwrap();
        assert_eq!(found.manifest.steps[0].ref_path, "g/p.refs");
        assert_eq!(
            found.manifest.steps[0].custom_hooks_path,
            "g/p/custom_hooks.tar"
        );

        // The pointer layout wins over legacy files.
        put(&storage, "g/p/LATEST", "20210930065413").await;
        let damaged = latest(&storage).await.unwrap_err();
        assert!(damaged.to_string().contains("g/p/LATEST"), "{damaged}");
        put(&storage, "g/p/20210930065413/LATEST", "not a number").await;
        let damaged = latest(&storage).await.unwrap_err();
        assert!(
            damaged.to_string().contains("determine increment ID"),
            "{damaged}"
        );
        put(&storage, "g/p/20210930065413/LATEST", "002").await;
        let found = latest(&storage).await.unwrap();
        assert_eq!(found.manifest.steps.len(), 2);
        assert_eq!(
            found.manifest.steps[1].bundle_path,
            "g/p/20210930065413/002.bundle"
        );
        let id = BackupId::parse("20210930065413").unwrap();
        let by_id = find_manifest(&storage, &name, &path, &id).await.unwrap();
        assert_eq!(by_id.manifest, found.manifest);
        let other = BackupId::parse("20200101000000").unwrap();
        let missing = find_manifest(&storage, &name, &path, &other)
            .await
            .unwrap_err();
        assert!(
            matches!(missing, FindError::NoSuchBackup { .. }),
            "{missing}"
        );

        // And a manifest wins over both.
        put(
            &storage,
            "manifests/default/g/p.git/1.toml",
            "object_format = 'sha256'\n",
        )
        .await;
        assert_eq!(
            latest(&storage).await.unwrap().manifest.object_format,
            "sha256"
        );
    }
}
