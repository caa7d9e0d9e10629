//! Loading a location's catalogue (`layout::catalog`) from storage: one
//! streamed listing of the whole location, and every manifest it names
//! read as its page arrives, many reads in flight. `list`, `prune` and
//! `verify` read the catalogue only through here.

use std::io::Read;

use std::collections::VecDeque;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::job::progress::Progress;
use crate::layout::catalog::{Catalog, CatalogBuilder, ManifestRead};
use crate::layout::manifest::Manifest;
use crate::storage::{Key, LocalFiles, Storage, StorageError, StorageExt};

/// Manifest reads in flight on object storage: small objects, so this
/// bounds requests, not memory (each read is parsed and dropped as it
/// lands).
const MANIFEST_READS_IN_FLIGHT: usize = 32;

/// Manifests one blocking task reads and parses on a local location.
/// 256 manifests of a few KiB each in memory per
/// batch in flight.
const LOCAL_BATCH: usize = 256;

/// `load`, or `None` once `cancel` fires (Ctrl-C): reading a large
/// location's manifests takes a while, and nothing is left half done.
pub async fn load_until_cancelled(
    storage: &dyn Storage,
    progress: &dyn Progress,
    cancel: &CancellationToken,
) -> Result<Option<Catalog>, StorageError> {
    tokio::select! {
        () = cancel.cancelled() => Ok(None),
        catalog = load(storage, progress) => catalog.map(Some),
    }
}

/// The catalogue of everything under the location. The listing streams:
/// each manifest is read as soon as its page arrives, so on object storage
/// the reads overlap the listing's round trips and on a filesystem the walk
/// overlaps the parsing; no list of every key is ever held.
pub async fn load(storage: &dyn Storage, progress: &dyn Progress) -> Result<Catalog, StorageError> {
    let mut builder = CatalogBuilder::empty();
    let local = storage.local_files();
    let mut listing = storage.list_stream("");
    let mut listing_done = false;
    let mut pending: VecDeque<Key> = VecDeque::new();
    let mut reads: FuturesUnordered<BoxFuture<'_, Result<Reads, StorageError>>> =
        FuturesUnordered::new();
    let (in_flight, batch) = match local {
        Some(_) => (cores(), LOCAL_BATCH),
        None => (MANIFEST_READS_IN_FLIGHT, 1),
    };
    let mut manifests = 0_usize;
    let mut read_so_far = 0_usize;
    loop {
        // Start reads while there is room: whole batches, or what is left
        // once the listing has ended.
        while reads.len() < in_flight
            && (pending.len() >= batch || (listing_done && !pending.is_empty()))
        {
            let keys: Vec<Key> = pending.drain(..batch.min(pending.len())).collect();
            reads.push(match &local {
                Some(files) => read_local(files.clone(), keys).boxed(),
                None => read_remote(storage, keys).boxed(),
            });
        }
        if listing_done && reads.is_empty() {
            break;
        }
        // Both branches poll a stream's `next`, which is cancel-safe: an
        // item is either returned or still in its stream.
        tokio::select! {
            listed = listing.next(), if !listing_done => match listed {
                Some(meta) => {
                    if let Some(key) = builder.add_listed(meta?) {
                        manifests += 1;
                        pending.push_back(key);
                    }
                }
                None => listing_done = true,
            },
            Some(done) = reads.next(), if !reads.is_empty() => {
                for (key, read) in done? {
                    builder.add_manifest(&key, read);
                    read_so_far += 1;
                }
                progress.catalog_read(read_so_far, manifests, listing_done);
            }
        }
    }
    tracing::debug!(manifests, "read manifests");
    Ok(builder.build())
}

/// Manifests read, each with what reading it gave.
type Reads = Vec<(Key, ManifestRead)>;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

async fn read_remote(storage: &dyn Storage, keys: Vec<Key>) -> Result<Reads, StorageError> {
    let mut done = Vec::with_capacity(keys.len());
    for key in keys {
        let read = match storage.get_bytes(&key).await {
            Ok(bytes) => parse(bytes),
            Err(error) if error.is_not_found() => ManifestRead::Vanished,
            Err(error) => return Err(error),
        };
        done.push((key, read));
    }
    Ok(done)
}

/// One blocking task for a batch: one thread hop per batch instead of
/// several per file, and the parsing spread over the cores.
async fn read_local(files: LocalFiles, keys: Vec<Key>) -> Result<Reads, StorageError> {
    tokio::task::spawn_blocking(move || {
        keys.into_iter()
            .map(|key| {
                let read = read_local_file(&files, &key)?;
                Ok((key, read))
            })
            .collect()
    })
    .await
    .map_err(|error| StorageError::Other {
        key: String::new(),
        message: format!("reading manifests: {error}"),
    })?
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
