//! Subcommands: plain `*Options` in, a report out. Each file describes one
//! repository's work and hands it to `job::scheduler`; none spawns tasks or
//! processes itself.

pub mod backups;
pub mod catalog;
pub mod clock;
pub mod create;
pub mod list;
pub mod preflight;
pub mod prune;
pub mod restore;
pub mod verify;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::exit::UsageError;
use crate::git::Git;
use crate::job::progress::Progress;
use crate::job::scheduler::Limits;
use crate::layout::{RelativePath, StorageName};
use crate::node::StorageRoots;
use crate::storage::budget::{smallest_budget, DEFAULT_UPLOAD_MEMORY};
use crate::storage::{MemoryBudget, Storage, Tuning};

/// Everything a command needs, passed explicitly.
#[derive(Clone)]
pub struct Context {
    pub storage: Arc<dyn Storage>,
    pub git: Git,
    pub roots: StorageRoots,
    pub progress: Arc<dyn Progress>,
    pub cancel: CancellationToken,
    /// Blocking work that must run to its end even when its job is
    /// cancelled or dropped (a swap that has started, removing what a
    /// restore replaced); the run waits for all of it before it returns.
    pub unstoppable: TaskTracker,
    /// Seconds since the Unix epoch; injected so tests can fix it.
    pub now: fn() -> i64,
    /// Write-once storage: nothing is ever overwritten (no `+latest.toml`).
    pub immutable: bool,
    /// The backup location as logs may show it: credentials never appear.
    pub location: String,
}

/// Options shared by create and restore.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub limits: Limits,
    /// Skip (with a log line) jobs whose storage is not on this node.
    pub local_storages_only: bool,
}

/// A job's storage and path, checked, or the outcome that ends the job
/// here: a malformed one fails; under `--local-storages-only`, one whose
/// storage is not on this node is skipped.
pub(crate) fn admit(
    ctx: &Context,
    run: &RunOptions,
    job: &crate::job::Job,
) -> Result<(StorageName, RelativePath), crate::job::scheduler::Outcome> {
    use crate::job::scheduler::Outcome;
    let (storage_name, path) = validate(job).map_err(Outcome::Failed)?;
    if run.local_storages_only && !ctx.roots.contains(&storage_name) {
        return Err(Outcome::Skipped(format!(
            "storage {storage_name} is not on this node"
        )));
    }
    Ok((storage_name, path))
}

/// A job's storage and path, checked.
pub(crate) fn validate(job: &crate::job::Job) -> Result<(StorageName, RelativePath), String> {
    let storage = StorageName::parse(&job.storage_name).map_err(|error| error.to_string())?;
    let path = RelativePath::parse(&job.relative_path).map_err(|error| error.to_string())?;
    Ok((storage, path))
}

pub use clock::unix_now;

/// What a command needs to build its `Context`.
#[derive(Debug, Clone)]
pub struct Setup {
    /// `--path`; `None` falls back to Gitaly's `[backup] go_cloud_url`.
    pub location: Option<String>,
    pub storages: Vec<(String, std::path::PathBuf)>,
    pub gitaly_config: Option<std::path::PathBuf>,
    pub git: std::path::PathBuf,
    /// Global job limit, to share the cores between pack-objects runs.
    pub parallel: usize,
    /// `--part-size`; `None`: Gitaly's `buffer_size` when the location comes
    /// from its config, else the default.
    pub part_size: Option<usize>,
    pub upload_concurrency: usize,
    /// `--upload-memory`: the process-wide budget for upload part buffers;
    /// `None`: the default, raised to two parts if the part size needs it.
    pub upload_memory: Option<usize>,
    pub retries: u32,
    pub immutable: bool,
    /// Storage name → Gitaly address (gitaly mode's `GITALY_SERVERS`): not
    /// where repositories are, only what a job whose storage is not on this
    /// node is told.
    pub gitaly_addresses: std::collections::BTreeMap<String, String>,
}

impl Context {
    /// Runs one command's per-repository `work` over `jobs`, with this
    /// context's progress and cancellation.
    pub(crate) async fn run_jobs(
        &self,
        jobs: impl crate::job::scheduler::JobSource,
        limits: Limits,
        command: crate::job::progress::CommandName,
        work: crate::job::scheduler::Work,
    ) -> crate::job::scheduler::RunReport {
        let report = crate::job::scheduler::run(
            jobs,
            limits,
            command,
            self.progress.clone(),
            self.cancel.clone(),
            work,
        )
        .await;
        self.unstoppable.close();
        self.unstoppable.wait().await;
        report
    }

    /// Runs `work` on the blocking pool to its end, whatever happens to
    /// the caller: dropping the returned future does not stop it, and the
    /// run does not end before it has finished.
    pub(crate) async fn run_to_end<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        self.unstoppable.spawn_blocking(work).await
    }

    /// Reads the Gitaly config, resolves the location and opens storage.
    /// Every failure here is a usage or configuration error.
    pub async fn open(
        setup: Setup,
        progress: Arc<dyn Progress>,
        cancel: CancellationToken,
    ) -> anyhow::Result<Self> {
        use crate::node::config::{GitalyConfig, DEFAULT_GITALY_CONFIG};
        use crate::storage::Location;

        if let Some(Err(error)) = clock::test_now() {
            return Err(UsageError(error).into());
        }
        let cpus = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1);
        let git = Git::new(
            setup.git.clone(),
            cpus / setup.parallel.max(1),
            cancel.clone(),
        );
        // First: git is the one runtime dependency, and a missing or old
        // one would otherwise fail every repository.
        git.check_version()
            .await
            .map_err(|error| UsageError(error.to_string()))?;
        let config_path = setup.gitaly_config.clone().or_else(|| {
            let default = std::path::PathBuf::from(DEFAULT_GITALY_CONFIG);
            default.is_file().then_some(default)
        });
        let config = match &config_path {
            Some(path) => {
                GitalyConfig::load(path).map_err(|error| UsageError(error.to_string()))?
            }
            None => GitalyConfig::default(),
        };
        let from_config = setup.location.is_none();
        let location_text = setup.location.clone().or_else(|| config.backup.go_cloud_url.clone()).ok_or_else(|| {
            UsageError("no backup location: pass --path DIR, or set [backup] go_cloud_url in Gitaly's config (--gitaly-config, GITBAK_GITALY_CONFIG)".into())
        })?;
        let location =
            Location::parse(&location_text).map_err(|error| UsageError(error.to_string()))?;
        for notice in crate::storage::location::notices(&location_text) {
            progress.run_warning(&notice, &[]);
        }
        let defaults = Tuning::default();
        let config_part_size = config
            .backup
            .buffer_size
            .filter(|_| from_config)
            .and_then(|size| usize::try_from(size).ok());
        let part_size = setup
            .part_size
            .or(config_part_size)
            .unwrap_or(defaults.part_size);
        let upload_memory = upload_memory(setup.upload_memory, part_size)?;
        let tuning = Tuning {
            part_size,
            upload_concurrency: setup.upload_concurrency.max(1),
            upload_memory: MemoryBudget::new(upload_memory),
            retries: setup.retries,
            immutable: setup.immutable,
            ..defaults
        };
        let storage = crate::storage::open(&location, tuning)
            .await
            .map_err(|error| UsageError(error.to_string()))?;
        Ok(Self {
            storage,
            git,
            roots: config
                .storage_roots(&setup.storages)
                .with_gitaly_addresses(setup.gitaly_addresses),
            progress,
            cancel,
            unstoppable: TaskTracker::new(),
            now: unix_now,
            immutable: setup.immutable,
            location: location.to_string(),
        })
    }
}

/// The upload memory budget in bytes. An explicit `--upload-memory` below
/// two parts is refused: an upload must hold the part it sends and the one
/// it reads. The default instead grows to two parts, so that a large part
/// size (Gitaly's `[backup] buffer_size` included) keeps working unchanged.
fn upload_memory(asked: Option<usize>, part_size: usize) -> Result<usize, UsageError> {
    let smallest = smallest_budget(part_size);
    let mebibytes = |bytes: usize| format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20));
    match asked {
        Some(bytes) if bytes < smallest => Err(UsageError(format!(
            "--upload-memory {} is less than two upload parts of {} (--part-size, or Gitaly's [backup] buffer_size); pass --upload-memory {}MiB or more, or a smaller --part-size",
            mebibytes(bytes),
            mebibytes(smallest / 2),
            smallest.div_ceil(1 << 20),
        ))),
        Some(bytes) => Ok(bytes),
        None => Ok(DEFAULT_UPLOAD_MEMORY.max(smallest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_memory_is_two_parts_at_least() {
        let mib = 1 << 20;
        assert_eq!(upload_memory(None, 16 * mib).ok(), Some(256 * mib));
        assert_eq!(upload_memory(Some(32 * mib), 16 * mib).ok(), Some(32 * mib));
        // The default grows for a large part size; an explicit value is refused.
        assert_eq!(upload_memory(None, 200 * mib).ok(), Some(400 * mib));
        let refused = upload_memory(Some(100 * mib), 64 * mib).unwrap_err().0;
        assert_eq!(
            refused,
            "--upload-memory 100.0 MiB is less than two upload parts of 64.0 MiB (--part-size, or Gitaly's [backup] buffer_size); pass --upload-memory 128MiB or more, or a smaller --part-size"
        );
    }
}
