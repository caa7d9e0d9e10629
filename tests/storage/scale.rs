//! Conformance at the scale prune and list work at: listings streamed over
//! many pages, one-level listings, batch deletes of more than 1,000 keys
//! (two S3 requests), many small reads in flight, and what deleting frees.
//!
//! Each backend's test calls these after `conformance`, with the small
//! list page of `small_tuning` (10 keys), so every listing spans pages.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use gitbak::storage::{DirEntry, Key, Storage, StorageExt, Versioning, WriteMode};

use super::key;

/// More than one S3 DeleteObjects request (1,000 keys each).
const BULK: usize = 1005;

/// Puts small objects, 16 at a time; each body is its key.
async fn put_all(storage: &dyn Storage, keys: &[Key]) {
    futures::stream::iter(keys.iter().cloned())
        .map(|key| async move {
            let body = key.as_str().as_bytes().to_vec();
            storage
                .put_bytes(&key, body, WriteMode::CreateOnly)
                .await
                .unwrap_or_else(|error| panic!("{storage}: put {key}: {error}"));
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

/// Every key the streamed listing yields, checked for duplicates.
async fn streamed(storage: &dyn Storage, prefix: &str) -> BTreeSet<String> {
    let keys: Vec<String> = storage
        .list_stream(prefix)
        .map_ok(|meta| meta.key.to_string())
        .try_collect()
        .await
        .unwrap();
    let unique: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        keys.len(),
        "{storage}: {prefix} listed a key twice"
    );
    unique
}

/// The objects and sub-prefixes one level under `prefix`, each sorted,
/// checked for duplicates.
async fn one_level(storage: &dyn Storage, prefix: &str) -> (Vec<String>, Vec<String>) {
    let entries: Vec<DirEntry> = storage.list_dir_stream(prefix).try_collect().await.unwrap();
    let (mut objects, mut prefixes) = (Vec::new(), Vec::new());
    for entry in entries {
        match entry {
            DirEntry::Object(meta) => objects.push(meta.key.to_string()),
            DirEntry::Prefix(sub) => prefixes.push(sub),
        }
    }
    for list in [&mut objects, &mut prefixes] {
        let count = list.len();
        list.sort();
        list.dedup();
        assert_eq!(
            list.len(),
            count,
            "{storage}: {prefix} listed an entry twice"
        );
    }
    (objects, prefixes)
}

/// One-level listings across pages, with prefixes that are directories
/// and prefixes that are not.
pub async fn one_level_conforms(storage: &dyn Storage) {
    let name = storage.to_string();
    let subs: Vec<String> = (0..12)
        .map(|index| format!("tree/sub{index:02}/"))
        .collect();
    let mut keys: Vec<Key> = subs.iter().map(|sub| key(&format!("{sub}x"))).collect();
    for extra in [
        "tree/a.toml",
        "tree/b.toml",
        "tree/sub03/deeper/y",
        "treetop/z",
    ] {
        keys.push(key(extra));
    }
    put_all(storage, &keys).await;

    let (objects, prefixes) = one_level(storage, "tree/").await;
    assert_eq!(
        objects,
        ["tree/a.toml", "tree/b.toml"],
        "{name}: objects of tree/"
    );
    assert_eq!(prefixes, subs, "{name}: sub-prefixes of tree/");
    let (objects, prefixes) = one_level(storage, "tree/sub0").await;
    assert!(objects.is_empty(), "{name}: {objects:?}");
    assert_eq!(prefixes, subs[..10], "{name}: sub-prefixes of tree/sub0");
    let (objects, prefixes) = one_level(storage, "tree/sub03/").await;
    assert_eq!(objects, ["tree/sub03/x"], "{name}");
    assert_eq!(prefixes, ["tree/sub03/deeper/"], "{name}");
    let (_, top) = one_level(storage, "").await;
    for expected in ["tree/", "treetop/"] {
        assert!(
            top.contains(&expected.to_owned()),
            "{name}: {expected} missing in {top:?}"
        );
    }
    let (objects, prefixes) = one_level(storage, "none/").await;
    assert!(objects.is_empty() && prefixes.is_empty(), "{name}: none/");
    let collected = storage.list_dir("tree/").await.unwrap();
    assert_eq!(collected.objects.len(), 2, "{name}: list_dir");
    assert_eq!(collected.prefixes.len(), subs.len(), "{name}: list_dir");
}

/// The whole set: one level, then `BULK` keys streamed, read and deleted
/// in one batch call, and the versioning the backend reports.
pub async fn at_scale(storage: Arc<dyn Storage>, versioning: Versioning) {
    let name = storage.to_string();
    one_level_conforms(storage.as_ref()).await;

    let keys: Vec<Key> = (0..BULK)
        .map(|index| key(&format!("bulk/{index:04}")))
        .collect();
    put_all(storage.as_ref(), &keys).await;
    let listed = streamed(storage.as_ref(), "bulk/").await;
    let want: BTreeSet<String> = keys.iter().map(Key::to_string).collect();
    assert_eq!(listed, want, "{name}: the streamed listing of {BULK} keys");
    assert_eq!(streamed(storage.as_ref(), "bulk/00").await.len(), 100);

    // Many small reads in flight, a missing key among them.
    let missing = key("bulk-missing/0");
    let wanted = keys[..200].iter().cloned().chain([missing.clone()]);
    let read: Vec<_> = storage.get_many_bytes(wanted, 8).collect().await;
    assert_eq!(read.len(), 201, "{name}: one result per key");
    for (read_key, result) in read {
        match result {
            Ok(bytes) => assert_eq!(bytes, read_key.as_str().as_bytes(), "{name}: {read_key}"),
            Err(error) => assert!(
                read_key == missing && error.is_not_found(),
                "{name}: {read_key}: {error}"
            ),
        }
    }

    // One call deletes them all; missing keys are fine.
    let mut doomed = keys.clone();
    doomed.extend((0..3).map(|index| key(&format!("bulk-missing/{index}"))));
    let results = storage.delete_many(&doomed).await;
    assert_eq!(results.len(), doomed.len(), "{name}: one result per key");
    for (doomed_key, result) in doomed.iter().zip(&results) {
        assert!(result.is_ok(), "{name}: delete {doomed_key}: {result:?}");
    }
    assert!(
        streamed(storage.as_ref(), "bulk/").await.is_empty(),
        "{name}: deleted keys listed"
    );
    let (_, top) = one_level(storage.as_ref(), "").await;
    assert!(
        !top.contains(&"bulk/".to_owned()),
        "{name}: bulk/ still listed: {top:?}"
    );
    assert!(storage.delete_many(&[]).await.is_empty());

    assert_eq!(
        storage.versioning().await.unwrap(),
        versioning,
        "{name}: versioning"
    );
}
