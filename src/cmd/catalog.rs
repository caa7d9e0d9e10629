//! Loading a location's catalogue (`layout::catalog`) from storage: one
//! listing of the whole location, then every manifest it names, many reads
//! in flight. `list` and `prune` read storage only through here (and prune
//! deletes through `prune::execute`), so a streaming listing or a batched
//! many-gets helper replaces these few calls alone.

use std::io::Read;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::layout::catalog::{Catalog, CatalogBuilder, ManifestRead};
use crate::layout::manifest::Manifest;
use crate::storage::{Key, LocalFiles, Storage, StorageError, StorageExt};

/// Manifest reads in flight on object storage: small objects, so this
/// bounds requests, not memory (each read is parsed and dropped as it
/// lands).
const MANIFEST_READS_IN_FLIGHT: usize = 32;

/// Manifests one blocking task reads and parses on a local location: one
/// thread hop per batch instead of several per file, and the parsing
/// spread over the cores. 256 manifests of a few KiB each in memory per
/// batch in flight.
const LOCAL_BATCH: usize = 256;

/// `load`, or `None` once `cancel` fires (Ctrl-C): reading a large
/// location's manifests takes a while, and nothing is left half done.
pub async fn load_until_cancelled(
    storage: &dyn Storage,
    cancel: &CancellationToken,
) -> Result<Option<Catalog>, StorageError> {
    tokio::select! {
        () = cancel.cancelled() => Ok(None),
        catalog = load(storage) => catalog.map(Some),
    }
}

/// The catalogue of everything under the location.
pub async fn load(storage: &dyn Storage) -> Result<Catalog, StorageError> {
    let listing = storage.list("").await?;
    let mut builder = CatalogBuilder::new(listing);
    let keys = builder.manifest_keys();
    tracing::debug!(manifests = keys.len(), "reading manifests");
    match storage.local_files() {
        Some(files) => read_local(&files, keys, &mut builder).await?,
        None => read_remote(storage, keys, &mut builder).await?,
    }
    Ok(builder.build())
}

async fn read_remote(
    storage: &dyn Storage,
    keys: Vec<Key>,
    builder: &mut CatalogBuilder,
) -> Result<(), StorageError> {
    let mut reads = futures::stream::iter(keys)
        .map(|key| async move {
            let read = match storage.get_bytes(&key).await {
                Ok(bytes) => Ok(parse(bytes)),
                Err(error) if error.is_not_found() => Ok(ManifestRead::Vanished),
                Err(error) => Err(error),
            };
            (key, read)
        })
        .buffer_unordered(MANIFEST_READS_IN_FLIGHT);
    while let Some((key, read)) = reads.next().await {
        builder.add_manifest(&key, read?);
    }
    Ok(())
}

async fn read_local(
    files: &LocalFiles,
    keys: Vec<Key>,
    builder: &mut CatalogBuilder,
) -> Result<(), StorageError> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let batches: Vec<Vec<Key>> = keys.chunks(LOCAL_BATCH).map(<[Key]>::to_vec).collect();
    let mut reads = futures::stream::iter(batches)
        .map(|batch| {
            let files = files.clone();
            tokio::task::spawn_blocking(move || {
                batch
                    .into_iter()
                    .map(|key| {
                        let read = read_local_file(&files, &key);
                        (key, read)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .buffered(cores);
    while let Some(batch) = reads.next().await {
        let batch = batch.map_err(|error| StorageError::Other {
            key: String::new(),
            message: format!("reading manifests: {error}"),
        })?;
        for (key, read) in batch {
            builder.add_manifest(&key, read?);
        }
    }
    Ok(())
}

fn read_local_file(files: &LocalFiles, key: &Key) -> Result<ManifestRead, StorageError> {
    let mut file = match files.open(key) {
        Ok(file) => file,
        Err(error) if error.is_not_found() => return Ok(ManifestRead::Vanished),
        Err(error) => return Err(error),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|error| StorageError::from_io(key.as_str(), error))?;
    Ok(parse(bytes))
}

/// A manifest's bytes, parsed; damage is a finding, not an error.
fn parse(bytes: Vec<u8>) -> ManifestRead {
    let Ok(text) = String::from_utf8(bytes) else {
        return ManifestRead::Damaged("not UTF-8".into());
    };
    match Manifest::parse(&text) {
        Ok(manifest) => ManifestRead::Parsed(manifest),
        Err(error) => ManifestRead::Damaged(error.to_string()),
    }
}

/// One manifest, read and parsed as the catalogue reads it: `verify`
/// reads the ones it checks again, for their steps and digests.
pub async fn read_manifest(storage: &dyn Storage, key: &Key) -> Result<ManifestRead, StorageError> {
    match storage.get_bytes(key).await {
        Ok(bytes) => Ok(parse(bytes)),
        Err(error) if error.is_not_found() => Ok(ManifestRead::Vanished),
        Err(error) => Err(error),
    }
}
