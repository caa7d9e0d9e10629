//! `gitbak restore`: rebuild each repository from its backup (spec §4.5)
//! in a temporary directory beside it, check it, and swap it into place.
//!
//! A failed restore leaves the existing repository exactly as it was: the
//! new one is only swapped in after every check passed, and the old one is
//! removed only after the swap. Once placement starts (hooks, chown,
//! fsync, swap, removing the old copy) it runs to its end whatever the
//! signal; before that, an interrupt removes the build directory, but only
//! after the git processes writing into it have exited. What a crash
//! leaves behind, the next restore of the repository cleans up first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncRead, BufReader};
use tokio_util::task::TaskTracker;

use crate::git::bundle::{drain, read_bundle_header, BundleHeader};
use crate::git::refs::{parse_ref_lines, RefLine};
use crate::git::{GitError, ObjectFormat, RefFormat};
use crate::job::progress::{CommandName, Event};
use crate::job::scheduler::{JobSource, Outcome, RunReport, Work};
use crate::job::Job;
use crate::layout::manifest::{Manifest, Step};
use crate::layout::BackupId;
use crate::node::place::{self, CreatedDirs, Placement, TempDir};
use crate::node::{hooks, leftovers, NodeError};
use crate::storage::digest::{
    self, digest_file, digest_of, BodyDigest, DigestReader, VerifyingReader,
};
use crate::storage::{ByteReader, Key, LocalFiles, StorageError, StorageExt};

use super::backups::{self, FindError};
use super::{validate, Context, RunOptions};

/// Read buffer between storage and `git index-pack`.
const PACK_BUFFER: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// `None`: the latest backup of each repository.
    pub id: Option<BackupId>,
    pub run: RunOptions,
}

#[derive(Debug)]
pub struct RestoreReport {
    pub run: RunReport,
}

#[derive(Debug, thiserror::Error)]
enum RestoreError {
    #[error("{0}")]
    Find(#[from] FindError),
    #[error("{0}")]
    Node(#[from] NodeError),
    #[error("{0}")]
    Git(#[from] GitError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Backup(String),
}

pub async fn run(
    ctx: &Context,
    options: RestoreOptions,
    jobs: impl JobSource,
) -> anyhow::Result<RestoreReport> {
    // Read once per run, as gitaly does; a failure only means per-repository lookups.
    let latest_id = match &options.id {
        Some(_) => None,
        None => backups::latest_backup_id(ctx.storage.as_ref()).await.unwrap_or_else(|error| {
            tracing::warn!(%error, "read latest backup ID failed, will fallback to individual repository lookups");
            None
        }),
    };
    let work_ctx = ctx.clone();
    let work_options = options.clone();
    let work: Work = Arc::new(move |job: Job| {
        let (ctx, options, latest_id) = (work_ctx.clone(), work_options.clone(), latest_id.clone());
        Box::pin(async move { restore_job(&ctx, &options, latest_id.as_ref(), &job).await })
    });
    let report = ctx
        .run_jobs(jobs, options.run.limits, CommandName::Restore, work)
        .await;
    Ok(RestoreReport { run: report })
}

async fn restore_job(
    ctx: &Context,
    options: &RestoreOptions,
    latest_id: Option<&BackupId>,
    job: &Job,
) -> Outcome {
    let (storage_name, path) = match validate(job) {
        Ok(valid) => valid,
        Err(error) => return Outcome::Failed(error),
    };
    if options.run.local_storages_only && !ctx.roots.contains(&storage_name) {
        return Outcome::Skipped(format!("storage {storage_name} is not on this node"));
    }
    let result = async {
        let repository = ctx.roots.resolve(&storage_name, &path)?;
        let storage_root = ctx.roots.root(&storage_name)?.to_path_buf();
        // Before anything else: a crash of an earlier run may have left the
        // repository moved aside, and the lookups below may fail.
        sweep_leftovers(ctx, job, &repository).await?;
        let found = match &options.id {
            Some(id) => {
                backups::find_manifest(ctx.storage.as_ref(), &storage_name, &path, id).await?
            }
            None => {
                backups::find_latest_manifest(ctx.storage.as_ref(), &storage_name, &path, latest_id)
                    .await?
            }
        };
        let restore = Restore {
            ctx,
            job,
            manifest: &found.manifest,
            repository,
            storage_root,
        };
        restore.run().await
    };
    match result.await {
        Ok(()) => Outcome::Completed,
        Err(error) => Outcome::Failed(error.to_string()),
    }
}

/// Cleans the repository's parent of what dead runs on this host left
/// there (`leftovers::sweep`), saying in the job's log what it repaired.
async fn sweep_leftovers(ctx: &Context, job: &Job, repository: &Path) -> Result<(), RestoreError> {
    let (Some(parent), Some(name)) = (repository.parent(), repository.file_name()) else {
        return Ok(());
    };
    let (parent, name) = (parent.to_path_buf(), name.to_string_lossy().into_owned());
    let swept = ctx
        .run_to_end(move || leftovers::sweep(&parent, &name))
        .await
        .map_err(|error| RestoreError::Backup(error.to_string()))??;
    let warn = |message: &str| {
        ctx.progress
            .job_event(CommandName::Restore, job, Event::Warning { message })
    };
    if let Some(path) = &swept.put_back {
        warn(&format!(
            "moved {} back in place: an interrupted restore had moved it aside",
            path.display()
        ));
    }
    for failure in &swept.failed {
        warn(&format!(
            "cannot clean up after an interrupted restore: {failure}"
        ));
    }
    for removed in &swept.removed {
        tracing::debug!(path = %removed.display(), "removed a leftover of an interrupted restore");
    }
    Ok(())
}

/// The build directory while async code fills it, with the parent
/// directories made for it.
///
/// Its removal never runs on an async thread, nor while git may still
/// write into it: dropped (an error, or the job's future dropped when the
/// run is cancelled) it hands the removal to a blocking task the run waits
/// for, and that task first waits until no git of this gitbak runs in the
/// directory (a dropped git is killed but not yet reaped). Placement takes
/// the directory out, so nothing removes it while the swap runs.
struct Build {
    path: PathBuf,
    parts: Option<(TempDir, CreatedDirs)>,
    unstoppable: TaskTracker,
}

impl Build {
    fn new(temp: TempDir, created: CreatedDirs, unstoppable: TaskTracker) -> Self {
        Self {
            path: temp.path().to_path_buf(),
            parts: Some((temp, created)),
            unstoppable,
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn into_parts(mut self) -> (TempDir, CreatedDirs) {
        self.parts
            .take()
            .expect("only into_parts, discard and drop take the parts, each consuming the Build")
    }

    /// Removes the build directory and the parents made for it, and waits
    /// until that is done.
    async fn discard(mut self) {
        if let Some(parts) = self.parts.take() {
            let _ = self.unstoppable.spawn_blocking(move || remove(parts)).await;
        }
    }
}

impl Drop for Build {
    fn drop(&mut self) {
        if let Some(parts) = self.parts.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // A runtime shutting down drops the closure unrun; TempDir's
                // own Drop then removes it, on this thread.
                self.unstoppable.spawn_blocking(move || remove(parts));
            } else {
                remove(parts);
            }
        }
    }
}

fn remove((temp, created): (TempDir, CreatedDirs)) {
    let _ = temp.remove();
    created.remove();
}

struct Restore<'a> {
    ctx: &'a Context,
    job: &'a Job,
    manifest: &'a Manifest,
    repository: PathBuf,
    storage_root: PathBuf,
}

impl Restore<'_> {
    async fn run(&self) -> Result<(), RestoreError> {
        let manifest = self.manifest;
        if manifest.non_existent {
            // Nothing existed at backup time; an existing repository is left alone.
            return Ok(());
        }
        let last = manifest
            .steps
            .last()
            .ok_or_else(|| RestoreError::Backup("manifest has no steps".into()))?;
        let object_format = ObjectFormat::parse(&manifest.object_format).ok_or_else(|| {
            RestoreError::Backup(format!(
                "manifest has unknown object_format {:?}",
                manifest.object_format
            ))
        })?;
        let ref_format = match manifest
            .gitbak
            .as_ref()
            .map(|info| info.ref_format.as_str())
        {
            None | Some("") => RefFormat::Files,
            Some(name) => RefFormat::parse(name).ok_or_else(|| {
                RestoreError::Backup(format!("manifest has unknown ref_format {name:?}"))
            })?,
        };
        let parent = self
            .repository
            .parent()
            .unwrap_or(&self.storage_root)
            .to_path_buf();
        let owner = place::owner_for(&self.storage_root)?;
        let created = place::create_dirs_owned(&parent, owner)?;
        let name = self
            .repository
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("repository");
        let build = Build::new(
            TempDir::beside(&parent, name),
            created,
            self.ctx.unstoppable.clone(),
        );
        let built = async {
            self.check_free_space(&parent).await?;
            self.build(build.path(), object_format, ref_format).await?;
            self.fetch_custom_hooks(last).await
        };
        let hooks = match built.await {
            Ok(hooks) => hooks,
            Err(error) => {
                build.discard().await;
                return Err(error);
            }
        };
        let (temp, created) = build.into_parts();
        let placement = Placement {
            temp,
            target: self.repository.clone(),
            owner,
            created,
        };
        let old = self.repository.clone();
        let warnings = self
            .ctx
            .run_to_end(move || placement.run(move |new| apply_custom_hooks(hooks, &old, new)))
            .await
            .map_err(|error| RestoreError::Backup(error.to_string()))??;
        for message in &warnings {
            self.ctx
                .progress
                .job_event(CommandName::Restore, self.job, Event::Warning { message });
        }
        Ok(())
    }

    /// Makes the new repository in `new`: objects, refs and HEAD.
    async fn build(
        &self,
        new: &Path,
        object_format: ObjectFormat,
        ref_format: RefFormat,
    ) -> Result<(), RestoreError> {
        let (git, manifest) = (&self.ctx.git, self.manifest);
        let head = manifest.head_reference.as_deref();
        let head_set = git.init_bare(new, object_format, ref_format, head).await?;
        crate::failpoint::hit("restore-after-init");
        if !manifest.empty {
            let final_refs = self.apply_steps(new, object_format).await?;
            git.write_refs(new, ref_format, &final_refs.refs).await?;
            match (head, &final_refs.head) {
                (Some(_), _) if head_set => {}
                (Some(head), _) => git.set_head_symbolic(new, head).await?,
                (None, Some(detached)) => git.set_head_detached(new, detached).await?,
                (None, None) => {}
            }
        } else if let Some(head) = head.filter(|_| !head_set) {
            git.set_head_symbolic(new, head).await?;
        }
        Ok(())
    }

    /// A restore that cannot fit fails before it starts.
    async fn check_free_space(&self, parent: &Path) -> Result<(), RestoreError> {
        let mut needed = 0u64;
        for step in &self.manifest.steps {
            if step.bundle_path.is_empty() {
                continue;
            }
            let size = match self.manifest.digest(&step.bundle_path) {
                Some(digest) => digest.size,
                None => {
                    let key = Key::new(step.bundle_path.clone())?;
                    self.ctx
                        .storage
                        .head(&key)
                        .await?
                        .map(|meta| meta.size)
                        .unwrap_or(0)
                }
            };
            needed += size;
        }
        // The pack plus its index and reverse index, and some headroom.
        let needed = needed + needed / 8 + (16 << 20);
        let dir = parent.to_path_buf();
        let available = blocking(move || place::available_bytes(&dir)).await?;
        if available < needed {
            return Err(RestoreError::Backup(format!(
                "not enough free space in {}: the restore needs about {} MiB, {} MiB are available",
                parent.display(),
                needed >> 20,
                available >> 20
            )));
        }
        Ok(())
    }

    /// Opens a file the manifest names, verified against its recorded digest.
    async fn open(&self, path: &str) -> Result<ByteReader, RestoreError> {
        let key = Key::new(path.to_owned())?;
        let reader = self.ctx.storage.get(&key).await?;
        Ok(match self.expected_digest(path) {
            Some(expected) => Box::pin(VerifyingReader::new(reader, path, expected)),
            None => reader,
        })
    }

    /// Size and SHA-256 the manifest records for a file, when it does.
    fn expected_digest(&self, path: &str) -> Option<BodyDigest> {
        self.manifest.digest(path).map(|digest| BodyDigest {
            size: digest.size,
            sha256: digest.sha256.clone(),
        })
    }

    async fn read_small(&self, path: &str) -> Result<Vec<u8>, RestoreError> {
        let key = Key::new(path.to_owned())?;
        let bytes = self.ctx.storage.get_bytes(&key).await?;
        if let Some(expected) = self.expected_digest(path) {
            let actual = digest_of(&bytes);
            if actual != expected {
                let error = digest::mismatch(path, &expected, &actual);
                return Err(RestoreError::Backup(error.to_string()));
            }
        }
        Ok(bytes)
    }

    /// Fetches every step's bundle in order and returns the refs the
    /// repository must end with: the last refs file's.
    async fn apply_steps(
        &self,
        repository: &Path,
        object_format: ObjectFormat,
    ) -> Result<FinalRefs, RestoreError> {
        let git = &self.ctx.git;
        let steps = &self.manifest.steps;
        let mut last_refs = Vec::new();
        let mut bundle_refs = Vec::new();
        let mut all_self_contained = true;
        for (index, step) in steps.iter().enumerate() {
            if step.ref_path.is_empty() {
                return Err(RestoreError::Backup(format!(
                    "step {} of the manifest has no ref_path",
                    index + 1
                )));
            }
            let refs = parse_ref_lines(&self.read_small(&step.ref_path).await?)
                .map_err(|error| RestoreError::Backup(format!("{}: {error}", step.ref_path)))?;
            if !refs.is_empty() && !step.bundle_path.is_empty() {
                let header = match self.ctx.storage.local_files() {
                    Some(files) => {
                        self.index_bundle_file(&files, repository, &step.bundle_path, object_format)
                            .await?
                    }
                    None => {
                        self.index_bundle_stream(repository, &step.bundle_path, object_format)
                            .await?
                    }
                };
                all_self_contained &= header.prerequisites.is_empty();
                bundle_refs = header.refs;
            }
            last_refs = refs;
        }
        let final_refs = self
            .settle_refs(repository, last_refs, &bundle_refs)
            .await?;
        if !(all_self_contained && steps.len() == 1) {
            git.check_connectivity(repository).await?;
        }
        Ok(final_refs)
    }

    /// Checks a bundle's header against the manifest and the repository
    /// built so far.
    async fn check_header(
        &self,
        repository: &Path,
        path: &str,
        header: &BundleHeader,
        object_format: ObjectFormat,
    ) -> Result<(), RestoreError> {
        if header.object_format != object_format {
            return Err(RestoreError::Backup(format!(
                "{path} is a {} bundle but the manifest says {object_format}",
                header.object_format
            )));
        }
        let prerequisites: Vec<&str> = header.prerequisites.iter().map(String::as_str).collect();
        let missing = self
            .ctx
            .git
            .missing_objects(repository, &prerequisites)
            .await?;
        if let Some(first) = missing.first() {
            return Err(RestoreError::Backup(format!(
                "{path} needs commit {first}, which no earlier step provides"
            )));
        }
        Ok(())
    }

    /// Object storage: the bundle streams through a verifying reader into
    /// `git index-pack`.
    async fn index_bundle_stream(
        &self,
        repository: &Path,
        path: &str,
        object_format: ObjectFormat,
    ) -> Result<BundleHeader, RestoreError> {
        let mut reader = BufReader::with_capacity(PACK_BUFFER, self.open(path).await?);
        let header = read_bundle_header(&mut reader, path).await?;
        self.check_header(repository, path, &header, object_format)
            .await?;
        let in_bundle = |error: String| RestoreError::Backup(format!("{path}: {error}"));
        let self_contained = header.prerequisites.is_empty();
        self.ctx
            .git
            .index_pack(repository, &mut reader, self_contained)
            .await
            .map_err(|e| in_bundle(e.to_string()))?;
        drain(&mut reader)
            .await
            .map_err(|error| in_bundle(error.to_string()))?;
        Ok(header)
    }

    /// Local storage: `git index-pack` reads the bundle file itself from
    /// the pack's first byte, while a blocking task checks the whole file's
    /// digest; a mismatch wins over whatever git made of the pack.
    async fn index_bundle_file(
        &self,
        files: &LocalFiles,
        repository: &Path,
        path: &str,
        object_format: ObjectFormat,
    ) -> Result<BundleHeader, RestoreError> {
        let key = Key::new(path.to_owned())?;
        let (owned_files, owned_key) = (files.clone(), key.clone());
        let file = tokio::task::spawn_blocking(move || owned_files.open(&owned_key))
            .await
            .map_err(|error| RestoreError::Backup(error.to_string()))??;
        let io_error = |error: std::io::Error| RestoreError::Backup(format!("{path}: {error}"));
        let (counted, consumed) = DigestReader::new(tokio::fs::File::from_std(
            file.try_clone().map_err(io_error)?,
        ));
        let mut reader = BufReader::with_capacity(64 << 10, counted);
        let header = read_bundle_header(&mut reader, path).await?;
        let pack_start = consumed.finish().size - reader.buffer().len() as u64;
        drop(reader);
        self.check_header(repository, path, &header, object_format)
            .await?;
        let verify = self.expected_digest(path);
        let hashed = file.try_clone().map_err(io_error)?;
        let hashing = tokio::task::spawn_blocking(move || match verify {
            Some(expected) => digest_file(&hashed, || true, |_, _| {}).map(|d| Some((expected, d))),
            None => Ok(None),
        });
        let size = file.metadata().map_err(io_error)?.len();
        let indexed = if size > pack_start {
            let mut pack = file;
            std::io::Seek::seek(&mut pack, std::io::SeekFrom::Start(pack_start))
                .map_err(io_error)?;
            let self_contained = header.prerequisites.is_empty();
            self.ctx
                .git
                .index_pack_file(repository, pack, self_contained)
                .await
        } else {
            Ok(())
        };
        let checked = hashing
            .await
            .map_err(|error| RestoreError::Backup(error.to_string()))?
            .map_err(io_error)?;
        if let Some((expected, actual)) = checked {
            if expected != actual {
                return Err(RestoreError::Backup(
                    digest::mismatch(path, &expected, &actual).to_string(),
                ));
            }
        }
        indexed.map_err(|error| RestoreError::Backup(format!("{path}: {error}")))?;
        Ok(header)
    }

    /// The refs file is the truth. A ref whose object is missing (gitaly
    /// lists refs before it bundles, so a push in between can leave one
    /// behind) takes the bundle's value for that name, with a warning;
    /// otherwise it is an error.
    async fn settle_refs(
        &self,
        repository: &Path,
        refs: Vec<RefLine>,
        bundle_refs: &[RefLine],
    ) -> Result<FinalRefs, RestoreError> {
        let tips: Vec<&str> = {
            let mut tips: Vec<&str> = refs.iter().map(|line| line.object_id.as_str()).collect();
            tips.sort_unstable();
            tips.dedup();
            tips
        };
        let missing = self.ctx.git.missing_objects(repository, &tips).await?;
        let mut head = None;
        let mut settled = Vec::with_capacity(refs.len());
        for mut line in refs {
            if missing.contains(&line.object_id) {
                let replacement = bundle_refs.iter().find(|bundle| bundle.name == line.name);
                match replacement {
                    Some(bundle) if !missing.contains(&bundle.object_id) => {
                        let message = format!(
                            "{} points at {}, which the bundle lacks; restored at the bundle's {}",
                            line.name, line.object_id, bundle.object_id
                        );
                        self.ctx.progress.job_event(
                            CommandName::Restore,
                            self.job,
                            Event::Warning { message: &message },
                        );
                        line.object_id = bundle.object_id.clone();
                    }
                    _ => {
                        return Err(RestoreError::Backup(format!(
                            "the backup lacks object {} that {} points at",
                            line.object_id, line.name
                        )))
                    }
                }
            }
            if line.name == "HEAD" {
                head = Some(line.object_id);
            } else {
                settled.push(line);
            }
        }
        Ok(FinalRefs {
            refs: settled,
            head,
        })
    }

    /// Hooks come from the last step only; when it has none, the repository
    /// keeps the hooks it had, as gitaly-backup does (`apply_custom_hooks`).
    async fn fetch_custom_hooks(&self, last: &Step) -> Result<Option<Vec<u8>>, RestoreError> {
        if last.custom_hooks_path.is_empty() {
            return Ok(None);
        }
        match self.open(&last.custom_hooks_path).await {
            Ok(reader) => Ok(Some(read_capped(reader).await?)),
            Err(RestoreError::Storage(error)) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// Puts hooks into the new repository: the backup's archive, or else the
/// old repository's hooks. Blocking; part of the placement.
fn apply_custom_hooks(archive: Option<Vec<u8>>, old: &Path, new: &Path) -> Result<(), NodeError> {
    match archive {
        Some(bytes) => hooks::extract(&bytes, new),
        None if old.is_dir() => hooks::copy_existing(old, new),
        None => Ok(()),
    }
}

struct FinalRefs {
    refs: Vec<RefLine>,
    /// Where a detached HEAD pointed.
    head: Option<String>,
}

async fn read_capped(mut reader: impl AsyncRead + Unpin) -> Result<Vec<u8>, RestoreError> {
    let mut bytes = Vec::new();
    let limit = hooks::MAX_HOOKS_ARCHIVE + 1;
    tokio::io::AsyncReadExt::read_to_end(
        &mut tokio::io::AsyncReadExt::take(&mut reader, limit),
        &mut bytes,
    )
    .await
    .map_err(|error| RestoreError::Backup(error.to_string()))?;
    if bytes.len() as u64 > hooks::MAX_HOOKS_ARCHIVE {
        return Err(RestoreError::Backup(
            "custom hooks archive is larger than 64 MiB".into(),
        ));
    }
    Ok(bytes)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| NodeError::Invalid(error.to_string()))?
}
