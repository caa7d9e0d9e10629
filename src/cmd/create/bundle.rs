//! A step's bundle: gitbak's own header, then `git pack-objects` streamed
//! after it (see `git::bundle`), for a full backup or an increment alike.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::git::bundle::{drain, read_bundle_header, BundleHeader};
use crate::git::ObjectFormat;
use crate::layout::manifest::FileDigest;
use crate::storage::digest::{digest_file, BodyDigest, DigestReader};
use crate::storage::{self, Key, LocalFiles, StorageError, WriteBehind, WriteMode};

use super::pack_check;
use super::step::put_small;
use super::{Context, CreateError, Target};

/// What a step's bundle holds.
pub(super) struct BundleSpec {
    /// The repository's: its pack indexes' checksums use it.
    pub object_format: ObjectFormat,
    pub header: Vec<u8>,
    /// The lines `pack-objects --revs` reads (`<oid>`, `^<oid>`); none for
    /// a header-only bundle, which has no pack at all.
    pub revisions: Vec<String>,
}

impl BundleSpec {
    /// The header as a reader parses it, to recognise a bundle an
    /// interrupted run of this id left.
    async fn parsed_header(&self, key: &Key) -> Result<BundleHeader, CreateError> {
        Ok(read_bundle_header(&mut &self.header[..], key.as_str()).await?)
    }
}

/// Writes header + pack into storage while git produces it.
#[tracing::instrument(skip_all, fields(repository = %target.path))]
pub(super) async fn upload_bundle(
    ctx: &Context,
    target: &Target,
    key: &Key,
    spec: &BundleSpec,
) -> Result<FileDigest, CreateError> {
    if spec.revisions.is_empty() {
        return Ok(put_small(ctx, target, key, spec.header.clone())
            .await?
            .digest);
    }
    let written = match ctx.storage.local_files() {
        Some(files) => write_bundle_file(ctx, &files, target, key, spec).await,
        None => stream_bundle(ctx, target, key, spec).await,
    };
    let digest = match written {
        Ok(digest) => digest,
        Err(CreateError::Storage(StorageError::AlreadyExists { .. })) => {
            adopt_bundle(ctx, target, key, spec).await?
        }
        Err(error) => return Err(error),
    };
    tracing::debug!(bytes = digest.size, "bundle uploaded");
    Ok(FileDigest {
        path: key.to_string(),
        size: digest.size,
        sha256: digest.sha256,
    })
}

fn revisions(spec: &BundleSpec) -> Vec<&str> {
    spec.revisions.iter().map(String::as_str).collect()
}

/// Object storage: git's output streams through gitbak into the upload.
async fn stream_bundle(
    ctx: &Context,
    target: &Target,
    key: &Key,
    spec: &BundleSpec,
) -> Result<BodyDigest, CreateError> {
    let check = pack_check::start(target, spec.object_format).await?;
    let pack = ctx.git.pack_objects(&target.repository, &revisions(spec))?;
    let (pack, verdict) = check.guard(pack);
    let header = spec.header.clone();
    let body = tokio::io::AsyncReadExt::chain(std::io::Cursor::new(header), pack);
    let (body, digest) = DigestReader::new(body);
    let put = ctx
        .storage
        .put(key, Box::pin(body), WriteMode::CreateOnly)
        .await;
    if put.is_err() {
        // A damaged source pack is the cause the user must hear of, not
        // the upload it aborted.
        if let Some(error) = verdict.failure().await {
            return Err(error);
        }
    }
    put?;
    Ok(digest.finish())
}

/// Local storage: git writes the pack into the bundle's temporary file
/// itself, while a blocking task hashes what has landed and starts its
/// writeback, so neither a pipe nor a long final fsync costs time.
async fn write_bundle_file(
    ctx: &Context,
    files: &LocalFiles,
    target: &Target,
    key: &Key,
    spec: &BundleSpec,
) -> Result<BodyDigest, CreateError> {
    let check = pack_check::start(target, spec.object_format).await?;
    let header = spec.header.clone();
    let io_error = |error| StorageError::from_io(key.as_str(), error);
    let (owned_files, owned_key) = (files.clone(), key.clone());
    let pending = storage::blocking(key, move || {
        let pending = owned_files.create(&owned_key, WriteMode::CreateOnly)?;
        std::io::Write::write_all(&mut pending.file(), &header)
            .map_err(|error| StorageError::from_io(owned_key.as_str(), error))?;
        Ok(pending)
    })
    .await?;
    // Duplicates share the offset: git appends right after the header.
    let out = pending.file().try_clone().map_err(io_error)?;
    let reader = pending.file().try_clone().map_err(io_error)?;
    let finished = FinishedFlag::default();
    let flag = finished.0.clone();
    let hasher = tokio::task::spawn_blocking(move || {
        let mut write_behind = WriteBehind::default();
        digest_file(
            &reader,
            || flag.load(Ordering::Acquire),
            |offset, len| write_behind.advance(&reader, offset + len),
        )
    });
    let packed = async {
        ctx.git
            .pack_objects_into(&target.repository, &revisions(spec), out)
            .await
            .map_err(|error| bundle_write_error(key, error))
    };
    let checked = check.alongside(packed).await;
    drop(finished);
    let digest = hasher
        .await
        .map_err(|error| io_error(std::io::Error::other(error)));
    if let Err(error @ CreateError::Pack { .. }) = checked {
        return Err(error);
    }
    let digest = digest?.map_err(io_error)?;
    checked?;
    crate::failpoint::hit("create-bundle-written");
    storage::blocking(key, move || pending.commit()).await?;
    Ok(digest)
}

/// git calls the file it writes into `'<stdout>'`; when the write itself
/// failed (a full disk), the message names the bundle's key instead.
fn bundle_write_error(key: &Key, error: crate::git::GitError) -> CreateError {
    if let crate::git::GitError::Failed { stderr_tail, .. } = &error {
        // "fatal: sha1 file '<stdout>' write error: …" or "… write error. Out of diskspace".
        if let Some((_, reason)) = stderr_tail.split_once("write error") {
            let reason = reason.trim_start_matches([':', '.', ' ']);
            let io = if reason.contains("No space left") || reason.contains("Out of diskspace") {
                std::io::Error::from_raw_os_error(libc::ENOSPC)
            } else if reason.contains("Disk quota exceeded") {
                std::io::Error::from_raw_os_error(libc::EDQUOT)
            } else {
                std::io::Error::other(format!("git could not write the bundle: {reason}"))
            };
            return StorageError::from_io(key.as_str(), io).into();
        }
    }
    error.into()
}

/// Tells the hashing task that git is done when dropped, so it also stops
/// when the backup is cancelled or fails half way.
#[derive(Default)]
struct FinishedFlag(Arc<AtomicBool>);

impl Drop for FinishedFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A bundle already there under this id was written by an interrupted run
/// (storage makes every object all-or-nothing, so it is complete). It is
/// kept when its header is exactly this one (the same refs over the same
/// prerequisites, and so the same objects); otherwise it belongs to
/// another state of the repository.
async fn adopt_bundle(
    ctx: &Context,
    target: &Target,
    key: &Key,
    spec: &BundleSpec,
) -> Result<BodyDigest, CreateError> {
    let expected = spec.parsed_header(key).await?;
    let orphan = || CreateError::Orphan {
        key: key.to_string(),
        id: target.id.to_string(),
    };
    let (reader, digest) = DigestReader::new(ctx.storage.get(key).await?);
    let mut reader = tokio::io::BufReader::new(reader);
    let header = read_bundle_header(&mut reader, key.as_str())
        .await
        .map_err(|_| orphan())?;
    if header != expected {
        return Err(orphan());
    }
    drain(&mut reader)
        .await
        .map_err(|error| StorageError::Other {
            key: key.to_string(),
            message: error.to_string(),
        })?;
    tracing::debug!(%key, "kept the complete bundle of an interrupted run");
    Ok(digest.finish())
}
