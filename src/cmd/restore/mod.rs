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
//!
//! `trial` runs the same build into a scratch directory for `verify
//! --deep`, and removes it instead of placing it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::exit::UsageError;
use crate::git::{GitError, ObjectFormat, RefFormat};
use crate::job::progress::{CommandName, Event};
use crate::job::scheduler::{JobSource, Outcome, RunReport, Work};
use crate::job::Job;
use crate::layout::manifest::Manifest;
use crate::layout::time::Timestamp;
use crate::layout::BackupId;
use crate::node::place::{self, Placement, TempDir};
use crate::node::{hooks, NodeError};
use crate::storage::{Key, StorageError};

use super::backups::{self, FindError};
use super::{admit, Context, RunOptions};

pub mod all;
mod build;
mod head;
mod lookup;
mod removal;
mod steps;
mod trial;

use build::{sweep_leftovers, Build};
use lookup::{find_backup, Wanted};
use removal::{record, SharedLedger};
pub use removal::{RemovalReason, RemovedRepository};
pub use trial::trial_restore;

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// `None`: the latest backup of each repository (or the one `at` picks).
    pub id: Option<BackupId>,
    /// `restore --at`: each repository's newest backup taken at or before
    /// this time. Not with `id`.
    pub at: Option<Timestamp>,
    pub run: RunOptions,
    /// `-remove-all-repositories`: storages whose repositories this run did
    /// not restore are removed after a fully successful run (spec §4.7).
    pub remove_all_repositories: Vec<String>,
    /// gitaly-backup's rule (spec §4.6): when the latest lookup succeeds
    /// and finds no backup of a repository, the repository is removed and
    /// the job fails. Gitaly mode only; otherwise the repository is kept.
    pub remove_when_no_backup: bool,
}

#[derive(Debug)]
pub struct RestoreReport {
    pub run: RunReport,
    /// Repositories removed at the end of the run, in removal order
    /// (`-remove-all-repositories`, and gitaly mode's missing backups).
    pub removed: Vec<RemovedRepository>,
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
    if options.id.is_some() && options.at.is_some() {
        return Err(
            UsageError("give either a backup id or a time to restore, not both".into()).into(),
        );
    }
    // Read once per run, as gitaly does; a failure only means per-repository lookups.
    let latest_id = match (&options.id, options.at) {
        (Some(_), _) | (_, Some(_)) => None,
        (None, None) => backups::latest_backup_id(ctx.storage.as_ref())
            .await
            .unwrap_or_else(|error| {
                ctx.progress.run_warning(
                    "read latest backup ID failed, will fallback to individual repository lookups",
                    &[("error", &error.to_string())],
                );
                None
            }),
    };
    // Before the first job: what the jobs restore must not count as dangling.
    let listed = removal::list_before(ctx, &options.remove_all_repositories).await;
    let ledger = SharedLedger::default();
    let work_ctx = ctx.clone();
    let work_options = options.clone();
    let work_ledger = ledger.clone();
    // A restore holds its slots to the end: all of it is git's work.
    let work: Work = Arc::new(move |job: Job, _slots| {
        let (ctx, options, latest_id) = (work_ctx.clone(), work_options.clone(), latest_id.clone());
        let ledger = work_ledger.clone();
        Box::pin(async move {
            let outcome = restore_job(&ctx, &options, latest_id.as_ref(), &ledger, &job).await;
            if outcome.is_completed() {
                record(&ledger, |ledger| ledger.restored(&job));
            }
            outcome
        })
    });
    let mut run = ctx
        .run_jobs(jobs, options.run.limits, CommandName::Restore, work)
        .await;
    let removed = removal::remove_at_end(ctx, listed, &ledger, &mut run).await;
    Ok(RestoreReport { run, removed })
}

async fn restore_job(
    ctx: &Context,
    options: &RestoreOptions,
    latest_id: Option<&BackupId>,
    ledger: &SharedLedger,
    job: &Job,
) -> Outcome {
    let (storage_name, path) = match admit(ctx, &options.run, job) {
        Ok(admitted) => admitted,
        Err(outcome) => return outcome,
    };
    let result = async {
        let repository = ctx.roots.resolve(&storage_name, &path)?;
        let storage_root = ctx.roots.root(&storage_name)?.to_path_buf();
        // Before anything else: a crash of an earlier run may have left the
        // repository moved aside, and the lookups below may fail.
        sweep_leftovers(ctx, job, &repository).await?;
        let wanted = Wanted {
            job,
            storage_name: &storage_name,
            path: &path,
            repository: repository.clone(),
        };
        let found = find_backup(ctx, options, latest_id, ledger, wanted).await?;
        let restore = Restore {
            ctx,
            job,
            manifest: &found.manifest,
            repository,
            storage_root,
        };
        restore.run().await?;
        Ok::<_, RestoreError>(lookup::completion(&found))
    };
    match result.await {
        Ok(completion) => Outcome::CompletedWith(completion),
        Err(error) => Outcome::Failed(error.to_string()),
    }
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
        let (object_format, ref_format) = formats(manifest)?;
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
        // An empty backup recreates the repository (spec §4.5 step 4): the
        // old hooks go with it; only the backup's own come back.
        let old = (!self.manifest.empty).then(|| self.repository.clone());
        let relative_path = self.job.relative_path.clone();
        let warnings = self
            .ctx
            .run_to_end(move || {
                placement.run(move |new| {
                    apply_custom_hooks(hooks, old.as_deref(), new).map_err(|error| {
                        NodeError::Invalid(format!("repository {relative_path}: {error}"))
                    })
                })
            })
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
                // gitbak records a symbolic HEAD always, so none means HEAD
                // was detached at backup time.
                (None, Some(detached)) if manifest.gitbak.is_some() => {
                    git.set_head_detached(new, detached).await?
                }
                (None, _) if manifest.gitbak.is_some() => {}
                (None, _) => self.infer_head(new, &final_refs).await?,
            }
        } else if let Some(head) = head.filter(|_| !head_set) {
            git.set_head_symbolic(new, head).await?;
        }
        Ok(())
    }

    /// A backup that never recorded HEAD (gitaly-backup before 16.6, the
    /// pointer and legacy layouts): HEAD names a branch at the commit the
    /// bundles listed as HEAD, else stays as `git init` left it.
    async fn infer_head(
        &self,
        new: &Path,
        final_refs: &steps::FinalRefs,
    ) -> Result<(), RestoreError> {
        let commit = final_refs.bundle_head.as_ref().or(final_refs.head.as_ref());
        let branch = commit.and_then(|commit| head::infer_head(&final_refs.refs, commit));
        match branch {
            Some(branch) => self.ctx.git.set_head_symbolic(new, &branch).await?,
            None if final_refs.refs.is_empty() => {}
            None => {
                let message = "the backup does not record HEAD and no branch points at its HEAD \
                               commit; HEAD is left as git init made it";
                self.ctx.progress.job_event(
                    CommandName::Restore,
                    self.job,
                    Event::Warning { message },
                );
            }
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
}

/// The object and ref formats a manifest records (files when it does not
/// say: gitaly-backup's manifests never do).
fn formats(manifest: &Manifest) -> Result<(ObjectFormat, RefFormat), RestoreError> {
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
    Ok((object_format, ref_format))
}

/// Puts hooks into the new repository: the backup's archive, or else the
/// old repository's hooks when there is one to keep them from. Blocking;
/// part of the placement.
fn apply_custom_hooks(
    archive: Option<Vec<u8>>,
    old: Option<&Path>,
    new: &Path,
) -> Result<(), NodeError> {
    match (archive, old) {
        (Some(bytes), _) => hooks::extract(&bytes, new),
        (None, Some(old)) if old.is_dir() => hooks::copy_existing(old, new),
        (None, _) => Ok(()),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| NodeError::Invalid(error.to_string()))?
}
