//! Streaming block-blob uploads of unknown length.
//!
//! A body shorter than one part goes up as one Put Blob. Anything longer is
//! cut into blocks staged with bounded concurrency, then made visible at once
//! by Put Block List. Until that commit nothing is visible; Azure discards
//! uncommitted blocks by itself (after a week), so dropping a failed upload's
//! blocks is the abort. Memory: up to (upload_concurrency + 1) parts, each
//! reserved from the process-wide budget (`storage::budget`) before it is
//! read and given back once it is staged.

use std::collections::HashMap;
use std::num::NonZero;
use std::sync::Arc;
use std::time::SystemTime;

use azure_core::http::{ClientMethodOptions, Context, RequestContent};
use azure_core::time::OffsetDateTime;
use azure_storage_blob::models::{
    BlockBlobClientCommitBlockListOptions, BlockBlobClientCommitBlockListResultHeaders,
    BlockBlobClientUploadOptions, BlockLookupList,
};
use azure_storage_blob::BlockBlobClient;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

use super::pipeline::Tries;
use super::AzureStorage;
use crate::storage::budget::{grown, Reservation};
use crate::storage::{ByteReader, Key, ObjectMeta, StorageError, WriteMode};

/// Azure's limits: 50,000 committed blocks of at most 4000 MiB.
const MAX_BLOCKS: usize = 50_000;
const MAX_BLOCK_SIZE: usize = 4000 << 20;
/// Blocks double in size every this many, up to half the memory budget:
/// from 16 MiB, the first 16 GiB go in 16 MiB blocks, the next 31 GiB in
/// 32 MiB blocks, and so on; with the default 256 MiB budget (128 MiB
/// blocks at most) a blob holds 5.8 TiB, and with no budget limit 164 TiB
/// (Azure's blob limit is 190.7 TiB), while ordinary bundles keep small
/// parts and little memory.
const BLOCKS_PER_DOUBLING: usize = 1000;
/// Blob metadata holding the body's SHA-256, to recognise our own earlier
/// try when a retried create-only request finds the blob already there.
pub(super) const SHA256_METADATA: &str = "gitbak_sha256";

/// Size of block `index` (from 0) for an upload whose first block is
/// `first`, growing up to `largest` (half the memory budget).
pub(super) fn part_size(first: usize, index: usize, largest: usize) -> usize {
    let doublings = u32::try_from(index / BLOCKS_PER_DOUBLING).unwrap_or(u32::MAX);
    grown(first.max(1), doublings, largest).min(MAX_BLOCK_SIZE)
}

/// Block ids must have one length per blob: 16 bytes of upload id, so
/// concurrent uploads of one key never share blocks, then the index.
fn block_id(upload: &[u8; 16], index: usize) -> Vec<u8> {
    let mut id = upload.to_vec();
    id.extend_from_slice(&u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes());
    id
}

pub(super) async fn put(
    storage: &AzureStorage,
    key: &Key,
    mut body: ByteReader,
    mode: WriteMode,
) -> Result<ObjectMeta, StorageError> {
    // Shared with the block tasks; the SDK's clients are not `Clone`.
    let blob = Arc::new(storage.block_blob(key));
    let mut hasher = Sha256::new();
    let first_size = part_size(storage.tuning.part_size, 0, usize::MAX);
    // Held until the body is sent: a short body by Put Blob below, the
    // first block of a long one by its staging task.
    let mut reservation = storage.tuning.upload_memory.reserve(first_size).await;
    let first = read_part(&mut body, first_size, &mut hasher).await?;
    if first.len() < first_size {
        reservation.shrink_to(first.capacity());
        let sha256 = hex::encode(hasher.finalize());
        return put_small(storage, key, &blob, first, sha256, mode).await;
    }
    put_blocks(
        storage,
        key,
        &blob,
        body,
        (first, reservation),
        hasher,
        mode,
    )
    .await
}

/// Reads up to `size` bytes; fewer only at the end of the body.
async fn read_part(
    body: &mut ByteReader,
    size: usize,
    hasher: &mut Sha256,
) -> Result<Vec<u8>, StorageError> {
    // `read_buf` fills the spare capacity and never grows it, unlike
    // `read_to_end`, which would double each part's allocation.
    let mut part = Vec::with_capacity(size);
    while part.len() < size {
        if body
            .read_buf(&mut part)
            .await
            .map_err(StorageError::Source)?
            == 0
        {
            part.shrink_to_fit();
            break;
        }
    }
    hasher.update(&part);
    Ok(part)
}

fn create_only_condition(mode: WriteMode) -> Option<azure_core::http::Etag> {
    (mode == WriteMode::CreateOnly).then(|| "*".into())
}

fn digest_metadata(sha256: &str) -> Option<HashMap<String, String>> {
    Some(HashMap::from([(
        SHA256_METADATA.to_owned(),
        sha256.to_owned(),
    )]))
}

async fn put_small(
    storage: &AzureStorage,
    key: &Key,
    blob: &BlockBlobClient,
    bytes: Vec<u8>,
    sha256: String,
    mode: WriteMode,
) -> Result<ObjectMeta, StorageError> {
    let size = bytes.len() as u64;
    let tries = Tries::default();
    let options = BlockBlobClientUploadOptions {
        if_none_match: create_only_condition(mode),
        metadata: digest_metadata(&sha256),
        method_options: ClientMethodOptions {
            context: Context::new().with_value(tries.clone()),
        },
        // One request: the SDK splits only bodies longer than this.
        partition_size: NonZero::new(size.max(1)),
        parallel: NonZero::new(1),
        ..Default::default()
    };
    let result = blob
        .upload(RequestContent::from(bytes), Some(options))
        .await
        .map(|done| done.last_modified);
    finish(storage, key, size, &sha256, result, &tries).await
}

async fn put_blocks(
    storage: &AzureStorage,
    key: &Key,
    blob: &Arc<BlockBlobClient>,
    mut body: ByteReader,
    (first, first_reservation): (Vec<u8>, Reservation),
    mut hasher: Sha256,
    mode: WriteMode,
) -> Result<ObjectMeta, StorageError> {
    let upload = *azure_core::Uuid::new_v4().as_bytes();
    let concurrency = storage.tuning.upload_concurrency.max(1);
    let budget = &storage.tuning.upload_memory;
    let first_size = first.len();
    let block_size = |index| part_size(first_size, index, budget.largest_part());
    let mut staging: JoinSet<Result<(), StorageError>> = JoinSet::new();
    let mut ids = Vec::new();
    let mut size = 0u64;
    let (mut part, mut reservation) = (first, first_reservation);
    // Dropping `staging` on an early return aborts the blocks in flight and
    // gives their memory back. A block's memory is reserved only while
    // this upload holds no block it has not handed to a task, and those
    // tasks end by themselves: waiting for the budget cannot deadlock.
    loop {
        let index = ids.len();
        if index == MAX_BLOCKS {
            let message = format!("body exceeds Azure's {MAX_BLOCKS} blocks");
            return Err(StorageError::Other {
                key: key.to_string(),
                message,
            });
        }
        let is_last = part.len() < block_size(index);
        let id = block_id(&upload, index);
        ids.push(id.clone());
        size += part.len() as u64;
        while staging.len() >= concurrency {
            settle(staging.join_next().await, key)?;
        }
        let (blob, errors, key_text) = (Arc::clone(blob), storage.errors.clone(), key.to_string());
        staging.spawn(async move {
            let length = part.len() as u64;
            let staged = blob
                .stage_block(&id, length, RequestContent::from(part), None)
                .await;
            drop(reservation);
            staged
                .map(drop)
                .map_err(|error| errors.map(&key_text, error))
        });
        while let Some(done) = staging.try_join_next() {
            settle(Some(done), key)?;
        }
        if is_last {
            break;
        }
        let next_size = block_size(index + 1);
        reservation = budget.reserve(next_size).await;
        part = read_part(&mut body, next_size, &mut hasher).await?;
        if part.is_empty() {
            // Not held while the last parts finish.
            drop(reservation);
            break;
        }
    }
    while let Some(done) = staging.join_next().await {
        settle(Some(done), key)?;
    }
    let sha256 = hex::encode(hasher.finalize());
    let tries = Tries::default();
    let options = BlockBlobClientCommitBlockListOptions {
        if_none_match: create_only_condition(mode),
        metadata: digest_metadata(&sha256),
        method_options: ClientMethodOptions {
            context: Context::new().with_value(tries.clone()),
        },
        ..Default::default()
    };
    let blocks = BlockLookupList {
        latest: Some(ids),
        ..Default::default()
    }
    .try_into()
    .map_err(|error| storage.errors.map(key.as_str(), error))?;
    let result = match blob.commit_block_list(blocks, Some(options)).await {
        Ok(response) => Ok(response.last_modified().ok().flatten()),
        Err(error) => Err(error),
    };
    finish(storage, key, size, &sha256, result, &tries).await
}

fn settle(
    done: Option<Result<Result<(), StorageError>, tokio::task::JoinError>>,
    key: &Key,
) -> Result<(), StorageError> {
    match done {
        None | Some(Ok(Ok(()))) => Ok(()),
        Some(Ok(Err(error))) => Err(error),
        Some(Err(join)) => Err(StorageError::Other {
            key: key.to_string(),
            message: format!("block upload task failed: {join}"),
        }),
    }
}

/// The outcome of the request that made the blob visible. A create-only
/// conflict after a retry is success if the blob there is ours: an earlier
/// try may have landed with its response lost.
async fn finish(
    storage: &AzureStorage,
    key: &Key,
    size: u64,
    sha256: &str,
    result: azure_core::Result<Option<OffsetDateTime>>,
    tries: &Tries,
) -> Result<ObjectMeta, StorageError> {
    let error = match result {
        Ok(modified) => {
            let modified = modified
                .map(SystemTime::from)
                .unwrap_or_else(SystemTime::now);
            return Ok(ObjectMeta {
                key: key.clone(),
                size,
                modified,
            });
        }
        Err(error) => storage.errors.map(key.as_str(), error),
    };
    if !matches!(error, StorageError::AlreadyExists { .. }) || tries.count() < 2 {
        return Err(error);
    }
    match storage.properties(key).await? {
        Some((meta, Some(existing))) if meta.size == size && existing == sha256 => {
            tracing::debug!(key = %key, "create-only retry found its own earlier try");
            Ok(meta)
        }
        _ => Err(error),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // allowed in tests (style.md)
mod tests {
    use super::*;

    #[test]
    fn without_a_budget_limit_the_block_limit_never_caps_an_upload() {
        let first = 16 << 20;
        assert_eq!(part_size(first, 0, usize::MAX), first);
        assert_eq!(part_size(first, BLOCKS_PER_DOUBLING - 1, usize::MAX), first);
        assert_eq!(part_size(first, BLOCKS_PER_DOUBLING, usize::MAX), 2 * first);
        assert_eq!(part_size(first, MAX_BLOCKS - 1, usize::MAX), MAX_BLOCK_SIZE);
        let capacity: u128 = (0..MAX_BLOCKS)
            .map(|index| part_size(first, index, usize::MAX) as u128)
            .sum();
        assert!(
            capacity > 160 << 40,
            "only {capacity} bytes fit in {MAX_BLOCKS} blocks"
        );
        // Tiny or huge first parts stay within Azure's block size.
        assert_eq!(part_size(0, 0, usize::MAX), 1);
        assert_eq!(part_size(usize::MAX, 0, usize::MAX), MAX_BLOCK_SIZE);
        let tiny: u128 = (0..MAX_BLOCKS)
            .map(|index| part_size(5 << 20, index, usize::MAX) as u128)
            .sum();
        assert!(tiny > 100 << 40);
    }

    #[test]
    fn blocks_grow_to_half_the_memory_budget() {
        let (first, largest) = (
            16 << 20,
            crate::storage::MemoryBudget::default().largest_part(),
        );
        assert_eq!(
            part_size(first, 3 * BLOCKS_PER_DOUBLING, largest),
            128 << 20
        );
        assert_eq!(part_size(first, MAX_BLOCKS - 1, largest), 128 << 20);
        let capacity: u128 = (0..MAX_BLOCKS)
            .map(|index| part_size(first, index, largest) as u128)
            .sum();
        assert!(
            capacity > 5 << 40,
            "only {capacity} bytes with the default budget"
        );
    }

    #[test]
    fn block_ids_have_one_length() {
        let upload = [7u8; 16];
        assert_eq!(
            block_id(&upload, 0).len(),
            block_id(&upload, MAX_BLOCKS - 1).len()
        );
        assert_ne!(block_id(&upload, 1), block_id(&upload, 2));
    }
}
