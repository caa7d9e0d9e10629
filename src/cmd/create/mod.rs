//! `gitbak create`: back up each repository into gitaly-backup's manifest
//! layout (spec §3.4, §4.4).
//!
//! Per repository: snapshot the refs, stream the bundle built from that
//! snapshot, then the refs file and custom hooks, and only then the
//! manifest, so a manifest always names complete files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::git::bundle::{drain, full_bundle_header, read_bundle_header};
use crate::git::refs::RefsSnapshot;
use crate::git::refs::RepositoryIdentity;
use crate::job::progress::CommandName;
use crate::job::scheduler::{JobSource, Outcome, RunReport, Work};
use crate::job::Job;
use crate::layout::manifest::{FileDigest, GitbakInfo, Manifest, Step};
use crate::layout::{self, BackupId, RelativePath, StepKeys, StorageName};
use crate::node::hooks;
use crate::storage::digest::{digest_file, digest_of, BodyDigest, DigestReader};
use crate::storage::{self, Key, LocalFiles, StorageError, StorageExt, WriteBehind, WriteMode};

use super::{validate, Context, RunOptions};

#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub id: BackupId,
    pub run: RunOptions,
    /// gitaly-backup's `-incremental`, not implemented yet: every job fails
    /// saying so rather than silently writing a full backup.
    pub incremental: bool,
}

#[derive(Debug)]
pub struct CreateReport {
    pub run: RunReport,
    /// Whether the `backup_ids/<id>` marker was written (or already there).
    pub marker: Result<bool, String>,
}

#[derive(Debug, thiserror::Error)]
enum CreateError {
    #[error("{0}")]
    Node(#[from] crate::node::NodeError),
    #[error("{0}")]
    Git(#[from] crate::git::GitError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error(
        "{key} exists but no manifest names it: an earlier run with backup id {id} was interrupted \
         and the repository has changed since; delete that directory or use another --id"
    )]
    Orphan { key: String, id: String },
}

pub async fn run(ctx: &Context, options: CreateOptions, jobs: impl JobSource) -> CreateReport {
    let work_ctx = ctx.clone();
    let work_options = options.clone();
    let work: Work = Arc::new(move |job: Job| {
        let (ctx, options) = (work_ctx.clone(), work_options.clone());
        Box::pin(async move { back_up_job(&ctx, &options, &job).await })
    });
    let report = ctx
        .run_jobs(jobs, options.run.limits, CommandName::Create, work)
        .await;
    let marker = if report.input_error.is_none()
        && !report.interrupted
        && report.completed + report.already_done > 0
    {
        write_marker(ctx, &options.id).await
    } else {
        Ok(false)
    };
    CreateReport {
        run: report,
        marker,
    }
}

/// The empty `backup_ids/<id>` object gitaly-backup 19.0 writes after a run.
async fn write_marker(ctx: &Context, id: &BackupId) -> Result<bool, String> {
    crate::failpoint::hit("create-before-marker");
    let key = layout::backup_id_marker_key(id);
    if let Some(files) = ctx.storage.local_files() {
        let dir = key_dir(&key);
        let _ = storage::blocking(&key, move || files.remove_stale_temporaries(&dir)).await;
    }
    match ctx
        .storage
        .put_bytes(&key, Vec::new(), WriteMode::CreateOnly)
        .await
    {
        Ok(_) | Err(StorageError::AlreadyExists { .. }) => Ok(true),
        Err(error) => Err(error.to_string()),
    }
}

async fn back_up_job(ctx: &Context, options: &CreateOptions, job: &Job) -> Outcome {
    let (storage_name, path) = match validate(job) {
        Ok(valid) => valid,
        Err(error) => return Outcome::Failed(error),
    };
    if options.run.local_storages_only && !ctx.roots.contains(&storage_name) {
        return Outcome::Skipped(format!("storage {storage_name} is not on this node"));
    }
    let repository = match ctx.roots.resolve(&storage_name, &path) {
        Ok(repository) => repository,
        Err(error) => return Outcome::Failed(error.to_string()),
    };
    let manifest_key = layout::manifest_key(&storage_name, &path, &options.id);
    let target = Target {
        storage_name,
        path,
        repository,
        id: options.id.clone(),
        manifest_key,
    };
    if options.incremental {
        return refuse_incremental(ctx, &target).await;
    }
    if let Err(error) = remove_leftovers(ctx, &target).await {
        return Outcome::Failed(error.to_string());
    }
    match ctx.storage.head(&target.manifest_key).await {
        Ok(Some(_)) => {
            return match repair_latest(ctx, &target).await {
                Ok(()) => Outcome::AlreadyDone(format!("already backed up as {}", options.id)),
                Err(error) => Outcome::Failed(error.to_string()),
            }
        }
        Ok(None) => {}
        Err(error) => return Outcome::Failed(error.to_string()),
    }
    match back_up(ctx, &target).await {
        Ok(()) => Outcome::Completed,
        Err(error) => Outcome::Failed(error.to_string()),
    }
}

/// Why this job's increment is not written. Rails up to 16.4 passes the
/// full backup's id with `-incremental` (spec §8.1), which finds that
/// backup's manifest under the id; say that this Rails version is the
/// reason, not the repository.
async fn refuse_incremental(ctx: &Context, target: &Target) -> Outcome {
    match ctx.storage.head(&target.manifest_key).await {
        Ok(Some(_)) => Outcome::Failed(format!(
            "incremental backups from this Rails version (GitLab 16.4 and older pass the full \
             backup's id, {}, which already has a manifest) are not supported; upgrade GitLab \
             or run a full backup",
            target.id
        )),
        Ok(None) => Outcome::Failed(
            "incremental backups are not supported by gitbak yet; run a full backup".into(),
        ),
        Err(error) => Outcome::Failed(error.to_string()),
    }
}

/// Local storage: removes the temporary files a killed run of this host
/// left where this repository's files of this id and its manifests go.
async fn remove_leftovers(ctx: &Context, target: &Target) -> Result<(), CreateError> {
    let Some(files) = ctx.storage.local_files() else {
        // Object storage keeps no temporaries: an unfinished upload is
        // invisible and aborted, or expired by the bucket's lifecycle rule.
        return Ok(());
    };
    let keys = layout::step_keys(&target.storage_name, &target.path, &target.id, 1);
    let step_dir = key_dir(&keys.bundle);
    let manifest_dir = key_dir(&target.manifest_key);
    let key = target.manifest_key.clone();
    let removed = storage::blocking(&key, move || {
        Ok(files.remove_stale_temporaries(&step_dir)?
            + files.remove_stale_temporaries(&manifest_dir)?)
    })
    .await?;
    if removed > 0 {
        tracing::debug!(removed, repository = %target.path, "removed temporary files of a dead run");
    }
    Ok(())
}

/// The directory part of a key.
fn key_dir(key: &Key) -> String {
    key.as_str()
        .rsplit_once('/')
        .map(|(dir, _)| dir.to_owned())
        .unwrap_or_default()
}

/// A resumed run finds this id's manifest written; `+latest.toml` may not
/// have followed (a crash or a full disk in between). It is rewritten when
/// missing, or when it differs and this id's manifest is the repository's
/// newest, so a newer backup's copy is never replaced by an older one.
async fn repair_latest(ctx: &Context, target: &Target) -> Result<(), CreateError> {
    if ctx.immutable {
        return Ok(());
    }
    let latest = layout::latest_manifest_key(&target.storage_name, &target.path);
    let manifest = ctx.storage.get_bytes(&target.manifest_key).await?;
    let current = match ctx.storage.get_bytes(&latest).await {
        Ok(bytes) => Some(bytes),
        Err(error) if error.is_not_found() => None,
        Err(error) => return Err(error.into()),
    };
    let rewrite = match current {
        None => true,
        Some(bytes) if bytes == manifest => false,
        Some(_) => {
            let newest = super::backups::newest_manifest(
                ctx.storage.as_ref(),
                &target.storage_name,
                &target.path,
            )
            .await?;
            newest.is_some_and(|meta| meta.key == target.manifest_key)
        }
    };
    if rewrite {
        ctx.storage
            .put_bytes(&latest, manifest, WriteMode::Overwrite)
            .await?;
        tracing::debug!(repository = %target.path, "repaired +latest.toml");
    }
    Ok(())
}

struct Target {
    storage_name: StorageName,
    path: RelativePath,
    repository: PathBuf,
    id: BackupId,
    manifest_key: Key,
}

async fn back_up(ctx: &Context, target: &Target) -> Result<(), CreateError> {
    let keys = layout::step_keys(&target.storage_name, &target.path, &target.id, 1);
    let step = Step {
        bundle_path: keys.bundle.to_string(),
        ref_path: keys.refs.to_string(),
        previous_ref_path: String::new(),
        custom_hooks_path: keys.custom_hooks.to_string(),
    };
    if !repository_exists(&target.repository).await? {
        let manifest = Manifest {
            empty: true,
            non_existent: true,
            steps: vec![step],
            gitbak: Some(gitbak_info(ctx, "", Vec::new())),
            ..Manifest::default()
        };
        return write_manifest(ctx, target, &manifest).await;
    }
    let refs = ctx.git.snapshot_refs(&target.repository).await?;
    let identity = ctx
        .git
        .identity_with_refs(&target.repository, &refs)
        .await?;
    let bundle = async {
        match refs.is_empty() {
            true => Ok(None),
            false => upload_bundle(ctx, target, &keys, &identity, &refs)
                .await
                .map(Some),
        }
    };
    let refs_file = put_small(ctx, target, &keys.refs, refs.bytes.clone());
    let hooks = upload_custom_hooks(ctx, target, &keys);
    let (bundle, refs_file, hooks) = if ctx.immutable {
        // Write-once storage cannot take a file back: the bundle, the one
        // that can fail on git, goes first, and the others only after it.
        let bundle = bundle.await?;
        (Ok(bundle), refs_file.await, hooks.await)
    } else {
        // The small files land (and wait for their fsyncs) while git packs.
        tokio::join!(bundle, refs_file, hooks)
    };
    if bundle.is_err() || refs_file.is_err() || hooks.is_err() {
        // Take back what this attempt wrote, so that a rerun with the same
        // id starts clean even if the repository changes before it.
        let written = [
            refs_file.as_ref().ok(),
            hooks.as_ref().ok().and_then(Option::as_ref),
        ];
        for file in written.into_iter().flatten().filter(|file| file.created) {
            if let Ok(key) = Key::new(file.digest.path.clone()) {
                let _ = ctx.storage.delete(&key).await;
            }
        }
    }
    let (bundle, refs_file, hooks) = (bundle?, refs_file?, hooks?);
    crate::failpoint::hit("create-before-manifest");
    let files: Vec<FileDigest> = bundle
        .into_iter()
        .chain(Some(refs_file.digest))
        .chain(hooks.map(|hooks| hooks.digest))
        .collect();
    let manifest = Manifest {
        empty: refs.is_empty(),
        non_existent: false,
        object_format: identity.object_format.name().into(),
        head_reference: identity.head_reference.clone(),
        steps: vec![step],
        gitbak: Some(gitbak_info(ctx, identity.ref_format.name(), files)),
    };
    write_manifest(ctx, target, &manifest).await
}

/// Whether the repository exists; one gitbak may not read is an error that
/// says so, rather than git's "not a git repository".
async fn repository_exists(path: &Path) -> Result<bool, CreateError> {
    let denied = |source: std::io::Error| {
        CreateError::Node(crate::node::NodeError::Invalid(format!(
            "cannot read repository {}: {source}; run gitbak as the user that owns the \
             repositories (usually git) or as root",
            path.display()
        )))
    };
    match tokio::fs::metadata(path).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(denied(error)),
    }
    for probe in ["HEAD", "objects", "refs"] {
        match tokio::fs::symlink_metadata(path.join(probe)).await {
            Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(denied(error))
            }
            _ => {}
        }
    }
    if let Err(error) = tokio::fs::File::open(path.join("HEAD")).await {
        if error.kind() == std::io::ErrorKind::PermissionDenied {
            return Err(denied(error));
        }
    }
    Ok(true)
}

fn gitbak_info(ctx: &Context, ref_format: &str, files: Vec<FileDigest>) -> GitbakInfo {
    GitbakInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        created_at: layout::rfc3339((ctx.now)()),
        ref_format: ref_format.into(),
        files,
    }
}

/// Writes header + pack into storage while git produces it.
#[tracing::instrument(skip_all, fields(repository = %target.path))]
async fn upload_bundle(
    ctx: &Context,
    target: &Target,
    keys: &StepKeys,
    identity: &RepositoryIdentity,
    refs: &RefsSnapshot,
) -> Result<FileDigest, CreateError> {
    let header = full_bundle_header(identity.object_format, refs);
    let written = match ctx.storage.local_files() {
        Some(files) => write_bundle_file(ctx, &files, target, &keys.bundle, header, refs).await,
        None => stream_bundle(ctx, target, &keys.bundle, header, refs).await,
    };
    let digest = match written {
        Ok(digest) => digest,
        Err(CreateError::Storage(StorageError::AlreadyExists { .. })) => {
            adopt_bundle(ctx, target, &keys.bundle, identity, refs).await?
        }
        Err(error) => return Err(error),
    };
    tracing::debug!(bytes = digest.size, "bundle uploaded");
    Ok(FileDigest {
        path: keys.bundle.to_string(),
        size: digest.size,
        sha256: digest.sha256,
    })
}

/// Object storage: git's output streams through gitbak into the upload.
async fn stream_bundle(
    ctx: &Context,
    target: &Target,
    key: &Key,
    header: Vec<u8>,
    refs: &RefsSnapshot,
) -> Result<BodyDigest, CreateError> {
    let pack = ctx.git.pack_objects(&target.repository, &refs.tips())?;
    let body = tokio::io::AsyncReadExt::chain(std::io::Cursor::new(header), pack);
    let (body, digest) = DigestReader::new(body);
    ctx.storage
        .put(key, Box::pin(body), WriteMode::CreateOnly)
        .await?;
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
    header: Vec<u8>,
    refs: &RefsSnapshot,
) -> Result<BodyDigest, CreateError> {
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
    let packed = ctx
        .git
        .pack_objects_into(&target.repository, &refs.tips(), out)
        .await;
    drop(finished);
    let digest = hasher
        .await
        .map_err(|error| io_error(std::io::Error::other(error)))?
        .map_err(io_error)?;
    packed.map_err(|error| bundle_write_error(key, error))?;
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
/// kept when it holds exactly the refs of this snapshot, and so the same
/// objects; otherwise it belongs to another state of the repository.
async fn adopt_bundle(
    ctx: &Context,
    target: &Target,
    key: &Key,
    identity: &RepositoryIdentity,
    refs: &RefsSnapshot,
) -> Result<BodyDigest, CreateError> {
    let orphan = || CreateError::Orphan {
        key: key.to_string(),
        id: target.id.to_string(),
    };
    let (reader, digest) = DigestReader::new(ctx.storage.get(key).await?);
    let mut reader = tokio::io::BufReader::new(reader);
    let header = read_bundle_header(&mut reader, key.as_str())
        .await
        .map_err(|_| orphan())?;
    if header.object_format != identity.object_format
        || !header.prerequisites.is_empty()
        || header.refs != refs.lines
    {
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

async fn upload_custom_hooks(
    ctx: &Context,
    target: &Target,
    keys: &StepKeys,
) -> Result<Option<Written>, CreateError> {
    let repository = target.repository.clone();
    let archive = tokio::task::spawn_blocking(move || hooks::archive(&repository))
        .await
        .map_err(|error| crate::node::NodeError::Invalid(error.to_string()))??;
    match archive {
        Some(bytes) => Ok(Some(
            put_small(ctx, target, &keys.custom_hooks, bytes).await?,
        )),
        None => Ok(None),
    }
}

/// A small file of a step, and whether this attempt created it (rather
/// than finding it from an interrupted run).
struct Written {
    digest: FileDigest,
    created: bool,
}

/// Writes a small file create-only; one left by an interrupted run of the
/// same id is accepted only if its bytes are the same.
async fn put_small(
    ctx: &Context,
    target: &Target,
    key: &Key,
    bytes: Vec<u8>,
) -> Result<Written, CreateError> {
    let digest = digest_of(&bytes);
    let created = match ctx
        .storage
        .put_bytes(key, bytes.clone(), WriteMode::CreateOnly)
        .await
    {
        Ok(_) => true,
        Err(StorageError::AlreadyExists { key }) => {
            let existing = ctx.storage.get_bytes(&Key::new(key.clone())?).await?;
            if existing != bytes {
                return Err(CreateError::Orphan {
                    key,
                    id: target.id.to_string(),
                });
            }
            false
        }
        Err(error) => return Err(error.into()),
    };
    Ok(Written {
        digest: FileDigest {
            path: key.to_string(),
            size: digest.size,
            sha256: digest.sha256,
        },
        created,
    })
}

/// Written last: readers take an existing manifest as proof that every file
/// it names is complete (spec §3.4). `+latest.toml` follows, as in 19.0,
/// except on write-once storage, where readers find the newest manifest by
/// listing instead.
async fn write_manifest(
    ctx: &Context,
    target: &Target,
    manifest: &Manifest,
) -> Result<(), CreateError> {
    let text = manifest.render().into_bytes();
    ctx.storage
        .put_bytes(&target.manifest_key, text.clone(), WriteMode::CreateOnly)
        .await?;
    if ctx.immutable {
        return Ok(());
    }
    crate::failpoint::hit("create-before-latest");
    let latest = layout::latest_manifest_key(&target.storage_name, &target.path);
    ctx.storage
        .put_bytes(&latest, text, WriteMode::Overwrite)
        .await?;
    Ok(())
}
