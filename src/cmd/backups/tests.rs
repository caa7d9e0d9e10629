//! Finding backups on storage, in memory.

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

#[tokio::test]
async fn at_a_time_the_newest_backup_taken_by_then() {
    let storage = MemoryStorage::default();
    let name = StorageName::parse("default").unwrap();
    let path = RelativePath::parse("a.git").unwrap();
    let at = |text: &str| time::parse_point_in_time(text).unwrap();
    let find = |when: &str| find_manifest_at(&storage, &name, &path, at(when));
    let missing = find("2030-01-01T00:00:00Z").await.unwrap_err();
    assert!(
        missing.to_string().ends_with(": it has no backups"),
        "{missing}"
    );
    put(&storage, "manifests/default/a.git/nightly.toml", "").await;
    let untimed = find("2030-01-01T00:00:00Z").await.unwrap_err();
    assert!(
        untimed
            .to_string()
            .contains("none of its 1 backups records"),
        "{untimed}"
    );
    // Written in reverse order: modification times must not matter.
    put(
        &storage,
        "manifests/default/a.git/2.toml",
        "object_format = 'sha1'\n[gitbak]\ncreated_at = '2026-01-02T00:00:00Z'\n",
    )
    .await;
    put(
        &storage,
        "manifests/default/a.git/1700000000_2023_11_14_16.6.0.toml",
        "object_format = 'sha256'\n",
    )
    .await;
    put(
        &storage,
        "manifests/default/a.git/+latest.toml",
        "object_format = 'x'\n[gitbak]\ncreated_at = '2027-01-01T00:00:00Z'\n",
    )
    .await;
    let too_early = find("2023-11-14T22:13:19Z").await.unwrap_err();
    assert_eq!(
        too_early.to_string(),
        "no backup of this repository taken at or before 2023-11-14T22:13:19Z in mem://: \
         the oldest, 1700000000_2023_11_14_16.6.0, was taken at 2023-11-14T22:13:20Z"
    );
    for (when, want) in [
        ("2023-11-14T22:13:20Z", "1700000000_2023_11_14_16.6.0"),
        ("20260101235959", "1700000000_2023_11_14_16.6.0"),
        ("2026-01-02T01:00:00+01:00", "2"),
        ("2030-01-01T00:00:00Z", "2"),
    ] {
        let found = find(when).await.unwrap();
        assert_eq!(
            found.backup_id.as_ref().map(BackupId::as_str),
            Some(want),
            "{when}"
        );
    }
    let found = find("2030-01-01T00:00:00Z").await.unwrap();
    assert_eq!(
        found.backup_time().unwrap().to_string(),
        "2026-01-02T00:00:00Z"
    );
}
