//! Running a translated gitaly-mode command line: the same create and
//! restore as gitbak's own front end, with gitaly-backup's log lines and
//! its rules for what gitbak does differently (`-layout`).

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::{GitalyArgs, GitalyFlags, GitalyServers, Layout};
use crate::cli::output::Log;
use crate::cli::Command;
use crate::cmd::create::{CreateOptions, IncrementalOptions};
use crate::cmd::restore::RestoreOptions;
use crate::cmd::RunOptions;
use crate::exit::{Status, UsageError};
use crate::job::progress::Progress;
use crate::layout::BackupId;
use crate::metrics::Recorder;

/// Runs a translated command line: the same create and restore as gitbak's
/// own front end, with gitaly-backup's log lines and rules.
/// `metrics` counts the run for `GITBAK_METRICS_FILE`.
pub async fn run(
    translated: GitalyArgs,
    metrics: Option<Arc<Recorder>>,
    cancel: CancellationToken,
) -> anyhow::Result<Status> {
    let GitalyArgs { cli, flags } = translated;
    let servers = GitalyServers::from_env_value(std::env::var("GITALY_SERVERS").ok().as_deref())?;
    let log = Arc::new(Log::gitaly_stdout());
    let cpus = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    let limits = flags.limits(cpus);
    match cli.command {
        Command::Create(args) => {
            let id = match &args.id {
                Some(id) => crate::cli::parse_id(id)?,
                None => BackupId::from_unix_seconds(crate::cmd::unix_now()),
            };
            warn_layout(log.as_ref(), flags.layout);
            let mut setup = args.setup(limits.parallel.min(cpus));
            setup.gitaly_addresses = servers.addresses;
            let options = CreateOptions {
                id,
                run: RunOptions {
                    limits,
                    local_storages_only: args.common.local_storages_only,
                },
                incremental: flags.incremental.then_some(IncrementalOptions {
                    max_chain: args.max_chain,
                    existing_id_fails: rails_16_4_increment(&flags, args.id.is_some()),
                }),
                lock_timeout: args.lock_timeout,
                storages_up_front: Vec::new(),
            };
            crate::cli::create(setup, options, args.discover, log, metrics, cancel)
                .await
                .context("create")
        }
        Command::Restore(args) => {
            let id = args.id.as_deref().map(crate::cli::parse_id).transpose()?;
            warn_layout(log.as_ref(), flags.layout);
            let mut setup = args.common.setup(limits.parallel.min(cpus));
            setup.gitaly_addresses = servers.addresses;
            let options = RestoreOptions {
                id,
                // gitaly-backup has no point-in-time restore.
                at: None,
                run: RunOptions {
                    limits,
                    local_storages_only: args.common.local_storages_only,
                },
                remove_all_repositories: flags.remove_all_repositories,
                // gitaly-backup removes a repository whose latest lookup
                // found no backup (spec §4.6).
                remove_when_no_backup: true,
            };
            crate::cli::restore(setup, options, log, metrics, cancel)
                .await
                .context("restore")
        }
        // `translate` only ever reads create or restore.
        _ => Err(UsageError("gitaly mode runs create or restore".into()).into()),
    }
}

/// Rails up to 16.4 passes `-layout pointer -incremental -id <full
/// backup's id>` (spec §8.1): the increment would go into the full
/// backup's own directory. gitbak writes increments under their own id, so
/// each job whose repository already has a manifest under that id fails
/// saying this Rails version is the reason (`cmd::create`).
pub(super) fn rails_16_4_increment(flags: &GitalyFlags, id_given: bool) -> bool {
    flags.incremental && flags.layout == Some(Layout::Pointer) && id_given
}

fn warn_layout(log: &dyn Progress, layout: Option<Layout>) {
    let name = match layout {
        None | Some(Layout::Manifest) => return,
        Some(Layout::Pointer) => "pointer",
        Some(Layout::Legacy) => "legacy",
    };
    log.run_warning(
        &format!("-layout {name} ignored: gitbak writes the manifest layout"),
        &[],
    );
}
