//! Running a translated gitaly-mode command line: the same create and
//! restore as gitbak's own front end, with gitaly-backup's log lines and
//! its rules for what gitbak cannot do yet (`-incremental`) or does
//! differently (`-layout`).

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::{GitalyArgs, GitalyFlags, GitalyServers, Layout};
use crate::cli::output::JsonLog;
use crate::cli::Command;
use crate::cmd::create::CreateOptions;
use crate::cmd::restore::RestoreOptions;
use crate::cmd::RunOptions;
use crate::exit::{Status, UsageError};
use crate::job::progress::Progress;
use crate::layout::BackupId;

/// Runs a translated command line: the same create and restore as gitbak's
/// own front end, with gitaly-backup's log lines and rules.
pub async fn run(translated: GitalyArgs, cancel: CancellationToken) -> anyhow::Result<Status> {
    let GitalyArgs { cli, flags } = translated;
    let servers = GitalyServers::from_env_value(std::env::var("GITALY_SERVERS").ok().as_deref())?;
    let log = Arc::new(JsonLog::gitaly_stdout());
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
            refuse_incremental(&flags, args.id.is_some())?;
            warn_layout(log.as_ref(), flags.layout);
            let mut setup = args.common.setup(limits.parallel.min(cpus));
            setup.gitaly_addresses = servers.addresses;
            let options = CreateOptions {
                id,
                run: RunOptions {
                    limits,
                    local_storages_only: args.common.local_storages_only,
                },
                incremental: flags.incremental,
            };
            crate::cli::create(setup, options, args.discover, log, cancel)
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
            crate::cli::restore(setup, options, log, cancel)
                .await
                .context("restore")
        }
        Command::Generate { .. } => {
            Err(UsageError("gitaly mode runs create or restore".into()).into())
        }
    }
}

/// `-incremental` is not implemented yet: a clear error, never a silent
/// full backup. Rails up to 16.4 passes `-layout pointer -incremental -id
/// <full backup's id>`; those runs go ahead so each job can say whether its
/// repository's full backup is the id passed (`cmd::create`).
pub(super) fn refuse_incremental(flags: &GitalyFlags, id_given: bool) -> Result<(), UsageError> {
    if !flags.incremental || (flags.layout == Some(Layout::Pointer) && id_given) {
        return Ok(());
    }
    Err(UsageError(
        "create: incremental backups are not supported by gitbak yet; \
         run a full backup (gitlab-backup create without INCREMENTAL=yes)"
            .into(),
    ))
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
