//! `gitbak create`: back up each repository into gitaly-backup's manifest
//! layout (spec §3.4, §4.4).
//!
//! Per repository: snapshot the refs, stream the bundle built from that
//! snapshot, then the refs file and custom hooks, and only then the
//! manifest, so a manifest always names complete files. With
//! `--incremental` the step written may continue the repository's latest
//! chain, or no step is written at all (`incremental`).

mod bundle;
mod earlier_files;
mod incremental;
mod snapshot;
mod step;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use crate::git::bundle::full_bundle_header;
use crate::job::progress::{CommandName, Completion};
use crate::job::scheduler::{JobSource, Outcome, RunReport, Slots, Work};
use crate::job::Job;
use crate::layout::manifest::{FileDigest, GitbakInfo, Manifest};
use crate::layout::{self, BackupId, RelativePath, StorageName};
use crate::storage::{self, Key, StorageError, StorageExt, WriteMode};

use self::bundle::BundleSpec;
use self::incremental::Plan;
use self::snapshot::Snapshot;
use self::step::{new_step, write_step};
use super::{admit, Context, RunOptions};

#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub id: BackupId,
    pub run: RunOptions,
    /// `--incremental` (gitaly-backup's `-incremental`); `None`: a full
    /// backup of every repository.
    pub incremental: Option<IncrementalOptions>,
}

#[derive(Debug, Clone)]
pub struct IncrementalOptions {
    /// `--max-chain`: a chain with this many steps is not extended; the
    /// next change starts a new full backup.
    pub max_chain: u32,
    /// Rails up to 16.4 passes `-layout pointer -incremental -id <the full
    /// backup's id>` (spec §8.1): a manifest already under the id is then
    /// that Rails version's doing, a failure, not a finished job to resume.
    pub existing_id_fails: bool,
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
    #[error("{0}")]
    Find(#[from] super::backups::FindError),
    #[error(
        "{key} exists but no manifest names it: an earlier run with backup id {id} was interrupted \
         and the repository has changed since; delete that directory or use another --id"
    )]
    Orphan { key: String, id: String },
    #[error(
        "{key}, which this backup takes over from an earlier one, is gone (removed by a prune \
         while this backup ran?); rerun the backup: it builds on what is there now"
    )]
    EarlierFileGone { key: String },
}

pub async fn run(ctx: &Context, options: CreateOptions, jobs: impl JobSource) -> CreateReport {
    let latest_id = match &options.incremental {
        Some(_) => incremental::latest_backup_id(ctx).await,
        None => None,
    };
    let work_ctx = ctx.clone();
    let work_options = options.clone();
    let work: Work = Arc::new(move |job: Job, mut slots: Slots| {
        let (ctx, options, latest_id) = (work_ctx.clone(), work_options.clone(), latest_id.clone());
        Box::pin(
            async move { back_up_job(&ctx, &options, latest_id.as_ref(), &job, &mut slots).await },
        )
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
        // The marker says the run is complete: every manifest published
        // by it must be durable under its name first.
        storage::blocking(&key, move || {
            files.settle()?;
            let _ = files.remove_stale_temporaries(&dir);
            Ok(())
        })
        .await
        .map_err(|error| error.to_string())?;
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

async fn back_up_job(
    ctx: &Context,
    options: &CreateOptions,
    latest_id: Option<&BackupId>,
    job: &Job,
    slots: &mut Slots,
) -> Outcome {
    let (storage_name, path) = match admit(ctx, &options.run, job) {
        Ok(admitted) => admitted,
        Err(outcome) => return outcome,
    };
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
    match manifest_exists(ctx, &target).await {
        Ok(true)
            if options
                .incremental
                .as_ref()
                .is_some_and(|i| i.existing_id_fails) =>
        {
            return Outcome::Failed(format!(
                "incremental backups from this Rails version (GitLab 16.4 and older pass the full \
                 backup's id, {}, which already has a manifest) are not supported; upgrade GitLab \
                 or run a full backup",
                target.id
            ))
        }
        Ok(true) => {
            return match repair_latest(ctx, &target).await {
                Ok(()) => Outcome::AlreadyDone(format!("already backed up as {}", options.id)),
                Err(error) => Outcome::Failed(error.to_string()),
            }
        }
        Ok(false) => {}
        Err(error) => return Outcome::Failed(error.to_string()),
    }
    match back_up(ctx, options, latest_id, &target, slots).await {
        Ok(bytes_written) => Outcome::CompletedWith(Completion {
            bytes_written: Some(bytes_written),
            ..Completion::default()
        }),
        Err(error) => Outcome::Failed(error.to_string()),
    }
}

/// Whether this id's manifest of the repository exists. On local storage,
/// in the same trip to the blocking pool, the temporary files a killed run
/// of this host left where this repository's files of this id and its
/// manifests go are removed first.
async fn manifest_exists(ctx: &Context, target: &Target) -> Result<bool, CreateError> {
    let Some(files) = ctx.storage.local_files() else {
        // Object storage keeps no temporaries: an unfinished upload is
        // invisible and aborted, or expired by the bucket's lifecycle rule.
        return Ok(ctx.storage.head(&target.manifest_key).await?.is_some());
    };
    let keys = layout::step_keys(&target.storage_name, &target.path, &target.id, 1);
    let step_dir = key_dir(&keys.bundle);
    let manifest_dir = key_dir(&target.manifest_key);
    let key = target.manifest_key.clone();
    let (removed, exists) = storage::blocking(&target.manifest_key, move || {
        let removed = files.remove_stale_temporaries(&step_dir)?
            + files.remove_stale_temporaries(&manifest_dir)?;
        Ok((removed, files.exists(&key)?))
    })
    .await?;
    if removed > 0 {
        tracing::debug!(removed, repository = %target.path, "removed temporary files of a dead run");
    }
    Ok(exists)
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

async fn back_up(
    ctx: &Context,
    options: &CreateOptions,
    latest_id: Option<&BackupId>,
    target: &Target,
    slots: &mut Slots,
) -> Result<u64, CreateError> {
    // The base is looked up while the repository is read: both are needed
    // before anything else, and an unchanged repository is little more.
    let (snapshot, base) = match &options.incremental {
        Some(_) => {
            let (snapshot, base) = tokio::join!(
                snapshot::take(ctx, target),
                incremental::find_base(ctx, target, latest_id)
            );
            (snapshot?, base?)
        }
        None => (snapshot::take(ctx, target).await?, None),
    };
    let (refs, read_at, identity, hooks) = match snapshot {
        Snapshot::Found {
            refs,
            read_at,
            identity,
            hooks,
        } => (refs, read_at, identity, hooks),
        Snapshot::Missing => {
            slots.release();
            let checked_at = (ctx.now)();
            let manifest = Manifest {
                empty: true,
                non_existent: true,
                steps: vec![new_step(target, 1, String::new())],
                gitbak: Some(gitbak_info(checked_at, "", Vec::new())),
                ..Manifest::default()
            };
            return write_manifest(ctx, target, &manifest).await.map(|()| 0);
        }
    };
    let plan = match &options.incremental {
        Some(incremental) => {
            let current = incremental::Current {
                refs: &refs,
                identity: &identity,
                hooks: hooks.as_deref(),
            };
            incremental::plan(ctx, target, incremental, base, &current).await?
        }
        None => Plan::Full,
    };
    let info = |files| gitbak_info(read_at, identity.ref_format.name(), files);
    let (steps, files, empty, written) = match plan {
        Plan::Reuse(base) => {
            tracing::debug!(repository = %target.path, "unchanged since its last backup: no new step");
            slots.release();
            let files = layout::chain::base_files(&base);
            (base.steps, files, base.empty, 0)
        }
        Plan::Full => {
            let step = new_step(target, 1, String::new());
            let bundle = (!refs.is_empty()).then(|| BundleSpec {
                header: full_bundle_header(identity.object_format, &refs),
                revisions: refs.tips().into_iter().map(str::to_owned).collect(),
            });
            let files = write_step(ctx, target, &step, &refs, hooks, bundle).await?;
            let written = bytes(&files);
            (vec![step], files, refs.is_empty(), written)
        }
        Plan::Increment { base, previous } => {
            let last = base.steps.last().map(|step| step.ref_path.clone());
            let step = new_step(target, base.steps.len() + 1, last.unwrap_or_default());
            let bundle = incremental::bundle_spec(ctx, target, &identity, &refs, &previous).await?;
            let written = write_step(ctx, target, &step, &refs, hooks, Some(bundle)).await?;
            let written_bytes = bytes(&written);
            let mut files = layout::chain::base_files(&base);
            files.extend(written);
            let mut steps = base.steps;
            steps.push(step);
            (steps, files, false, written_bytes)
        }
    };
    let manifest = Manifest {
        empty,
        non_existent: false,
        object_format: identity.object_format.name().into(),
        head_reference: identity.head_reference.clone(),
        steps,
        gitbak: Some(info(files)),
    };
    write_manifest(ctx, target, &manifest).await?;
    Ok(written)
}

/// The bytes of the files a step wrote.
fn bytes(files: &[FileDigest]) -> u64 {
    files.iter().map(|file| file.size).sum()
}

/// `created_at` is when the refs were read (`read_at`, Unix seconds).
fn gitbak_info(read_at: i64, ref_format: &str, files: Vec<FileDigest>) -> GitbakInfo {
    GitbakInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        created_at: layout::rfc3339(read_at),
        ref_format: ref_format.into(),
        files,
    }
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
    earlier_files::check_earlier_files(ctx, target, manifest).await?;
    let text = manifest.render().into_bytes();
    if let Some(files) = ctx.storage.local_files() {
        let latest = (!ctx.immutable)
            .then(|| layout::latest_manifest_key(&target.storage_name, &target.path));
        return write_manifests_locally(files, target.manifest_key.clone(), latest, text).await;
    }
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

/// The local filesystem: `<id>.toml` and `+latest.toml` are written, made
/// durable by one sync shared with the other repositories' manifests being
/// written at the same time, and renamed into place in that order: one
/// trip to the blocking pool and no fsync of their own (#10). The files
/// they name were published earlier, so the shared sync covers their names
/// too.
async fn write_manifests_locally(
    files: storage::LocalFiles,
    manifest_key: Key,
    latest_key: Option<Key>,
    text: Vec<u8>,
) -> Result<(), CreateError> {
    let key = manifest_key.clone();
    storage::blocking(&key, move || {
        let write = |key: &Key, mode| {
            let pending = files.create(key, mode)?;
            pending
                .file()
                .write_all(&text)
                .map_err(|error| StorageError::from_io(key.as_str(), error))?;
            Ok::<_, StorageError>(pending)
        };
        let manifest = write(&manifest_key, WriteMode::CreateOnly)?;
        let latest = latest_key
            .map(|key| write(&key, WriteMode::Overwrite))
            .transpose()?;
        let durable =
            files.make_durable(&[&manifest].into_iter().chain(&latest).collect::<Vec<_>>())?;
        manifest.publish(durable)?;
        crate::failpoint::hit("create-before-latest");
        if let Some(latest) = latest {
            latest.publish(durable)?;
        }
        Ok(())
    })
    .await?;
    Ok(())
}
