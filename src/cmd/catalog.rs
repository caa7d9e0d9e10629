//! Loading a location's catalogue (`layout::catalog`) from storage: one
//! listing of the whole location, then every manifest it names, many reads
//! in flight. `list` and `prune` read storage only through here (and prune
//! deletes through `prune::execute`), so a streaming listing or a batched
//! many-gets helper replaces these few calls alone.

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::layout::catalog::{Catalog, CatalogBuilder, ManifestRead};
use crate::layout::manifest::Manifest;
use crate::storage::{Key, Storage, StorageError, StorageExt};

/// Manifest reads in flight: small objects, so this bounds requests, not
/// memory (each read is parsed and dropped as it lands).
const MANIFEST_READS_IN_FLIGHT: usize = 32;

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
    let mut reads = futures::stream::iter(keys)
        .map(|key| async move {
            let read = read_manifest(storage, &key).await;
            (key, read)
        })
        .buffer_unordered(MANIFEST_READS_IN_FLIGHT);
    while let Some((key, read)) = reads.next().await {
        builder.add_manifest(&key, read?);
    }
    Ok(builder.build())
}

/// One manifest, parsed; damage is a finding, not an error.
async fn read_manifest(storage: &dyn Storage, key: &Key) -> Result<ManifestRead, StorageError> {
    let bytes = match storage.get_bytes(key).await {
        Ok(bytes) => bytes,
        Err(error) if error.is_not_found() => return Ok(ManifestRead::Vanished),
        Err(error) => return Err(error),
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(ManifestRead::Damaged("not UTF-8".into()));
    };
    Ok(match Manifest::parse(&text) {
        Ok(manifest) => ManifestRead::Parsed(manifest),
        Err(error) => ManifestRead::Damaged(error.to_string()),
    })
}
