//! The command line: clap types, their conversion to plain `cmd` options,
//! and the glue that runs a command and prints its outcome. clap never
//! leaves this module. gitaly-backup's command line (gitaly mode) is
//! translated into these same types by `gitaly`.

mod args;
pub mod generate;
pub mod gitaly;
mod help;
pub mod list;
pub mod metrics;
pub mod output;
pub mod prune;
mod session;
mod table;
pub mod verify;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio::io::BufReader;
use tokio_util::sync::CancellationToken;

use crate::cmd;
use crate::cmd::create::{CreateOptions, IncrementalOptions};
use crate::cmd::preflight::{Intent, Peeked};
use crate::cmd::restore::RestoreOptions;
use crate::exit::{Status, UsageError};
use crate::job::progress::CommandName;
use crate::job::scheduler::{JobSource, RunReport};
use crate::job::source::JobReader;
use crate::job::Job;
use crate::layout::BackupId;
use crate::metrics::Recorder;
use output::Log;

pub use args::{CommonArgs, CreateArgs, RestoreArgs, UploadArgs};

/// A command line, read: gitbak's own, or gitaly-backup's (gitaly mode,
/// `gitaly::is_gitaly_mode`), whose output and exit codes follow
/// gitaly-backup's.
#[derive(Debug)]
pub enum Invocation {
    Gitbak(Box<Cli>),
    /// A usage error is reported when run, as gitaly-backup reports it.
    Gitaly(Result<Box<gitaly::GitalyArgs>, UsageError>),
}

impl Invocation {
    /// Reads `args` (`args[0]` is the program). Like clap's `parse`, prints
    /// help or version and exits; gitbak's own usage errors exit 2 here,
    /// gitaly mode's are reported by `run` as gitaly-backup reports them.
    pub fn from_args(args: Vec<OsString>) -> Self {
        if !gitaly::is_gitaly_mode(&args) {
            return Self::Gitbak(Box::new(Cli::parse_from(args)));
        }
        match gitaly::translate(&args) {
            gitaly::Translation::Display(display) => display.exit(),
            gitaly::Translation::Run(translated) => Self::Gitaly(Ok(translated)),
            gitaly::Translation::Usage(error) => Self::Gitaly(Err(error)),
        }
    }

    pub fn is_gitaly_mode(&self) -> bool {
        matches!(self, Self::Gitaly(_))
    }

    /// The diagnostics filter (`GITBAK_LOG`'s default): none in gitaly mode,
    /// whose stderr stays empty as gitaly-backup's does (spec §6.2); else
    /// errors, or more with `-v` / `-vv`.
    pub fn diagnostics(&self) -> &'static str {
        let verbose = match self {
            Self::Gitaly(_) => return "off",
            Self::Gitbak(cli) => match &cli.command {
                Command::Create(args) => args.common.output.verbose,
                Command::Restore(args) => args.common.output.verbose,
                _ => 0,
            },
        };
        match verbose {
            0 => "error",
            1 => "warn,gitbak=info",
            _ => "info,gitbak=debug",
        }
    }
}

/// Fast, safe backups of GitLab repositories, compatible with gitaly-backup.
#[derive(Debug, Parser)]
#[command(name = "gitbak", version, about, after_help = help::GITBAK)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up the repositories named on stdin (or every repository, with --discover).
    #[command(after_help = help::CREATE)]
    Create(CreateArgs),
    /// Restore the repositories named on stdin from their latest backup, or from --id.
    #[command(after_help = help::RESTORE)]
    Restore(RestoreArgs),
    /// Show the backups a location holds, or one repository's history.
    #[command(after_help = list::EXAMPLES)]
    List(list::ListArgs),
    /// Remove the backups a retention policy does not keep, and the files no backup needs.
    #[command(after_help = prune::EXAMPLES)]
    Prune(prune::PruneArgs),
    /// Check that backups are whole and restore: every file there, with its recorded size and SHA-256.
    #[command(after_help = verify::EXAMPLES)]
    Verify(verify::VerifyArgs),
    /// Print shell completions for SHELL to stdout.
    #[command(after_help = help::COMPLETIONS)]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write shell completions and man pages into a directory.
    #[command(hide = true)]
    Generate {
        /// Directory that receives completions/ and man/.
        out_dir: PathBuf,
    },
}

fn parse_id(id: &str) -> Result<BackupId, UsageError> {
    BackupId::parse(id).map_err(|error| UsageError(format!("--id: {error}")))
}

/// Runs the command line read by `Invocation::from_args`.
pub async fn run(invocation: Invocation) -> anyhow::Result<Status> {
    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone());
    let cli = match invocation {
        Invocation::Gitbak(cli) => cli,
        Invocation::Gitaly(translated) => {
            let translated = *translated?;
            let recorder = metrics::recorder(&translated.cli.command);
            let result = gitaly::run(translated, recorder.clone(), cancel).await;
            metrics::finish(recorder, &result, true);
            return result;
        }
    };
    let recorder = metrics::recorder(&cli.command);
    let result = run_command(cli.command, recorder.clone(), cancel).await;
    metrics::finish(recorder, &result, false);
    result
}

/// One of gitbak's own commands; `recorder` counts what it does for
/// `--metrics-file`.
async fn run_command(
    command: Command,
    recorder: Option<Arc<Recorder>>,
    cancel: CancellationToken,
) -> anyhow::Result<Status> {
    match command {
        Command::Create(args) => {
            let run = args.common.run_options()?;
            let id = match &args.id {
                Some(id) => parse_id(id)?,
                None => BackupId::from_unix_seconds(cmd::unix_now()),
            };
            let setup = args.setup(run.limits.parallel);
            let options = CreateOptions {
                id,
                run,
                incremental: args.incremental.then_some(IncrementalOptions {
                    max_chain: args.max_chain,
                    existing_id_fails: false,
                }),
                lock_timeout: args.lock_timeout,
                storages_up_front: Vec::new(),
            };
            session::create(
                &args.common.output,
                setup,
                options,
                args.discover,
                recorder,
                cancel,
            )
            .await
        }
        Command::Restore(args) => {
            let run = args.common.run_options()?;
            let id = args.id.as_deref().map(parse_id).transpose()?;
            let setup = args.common.setup(run.limits.parallel);
            let options = RestoreOptions {
                id,
                at: args.at,
                run,
                remove_all_repositories: Vec::new(),
                remove_when_no_backup: false,
            };
            session::restore(
                &args.common.output,
                setup,
                options,
                args.all,
                recorder,
                cancel,
            )
            .await
        }
        Command::List(args) => list::run(args, cancel).await,
        Command::Prune(args) => prune::run(args, cancel).await,
        Command::Verify(args) => verify::run(args, cancel, recorder).await,
        Command::Completions { shell } => {
            generate::print_completions(shell)?;
            Ok(Status::Success)
        }
        Command::Generate { out_dir } => {
            generate::write_all(&out_dir)?;
            Ok(Status::Success)
        }
    }
}

/// Prints the error that ended the run where its front end's users look:
/// gitbak's on stderr, gitaly mode's as gitaly-backup's JSON error line on
/// stdout (Rails copies stdout; stderr stays empty). The exit code.
pub fn report_error(gitaly_mode: bool, error: &anyhow::Error) -> i32 {
    if gitaly_mode {
        Log::gitaly_stdout().line("error", &format!("{error:#}"), Default::default());
        crate::exit::code_for_gitaly_error(error)
    } else {
        eprintln!("gitbak: {error:#}");
        crate::exit::code_for_error(error)
    }
}

/// gitaly mode's `create`, with gitaly-backup's log lines.
async fn create(
    setup: cmd::Setup,
    options: CreateOptions,
    discover: bool,
    log: Arc<Log>,
    metrics: Option<Arc<Recorder>>,
    cancel: CancellationToken,
) -> anyhow::Result<Status> {
    let ctx = cmd::Context::open(setup, metrics::observed(log.clone(), metrics), cancel).await?;
    let report = run_create(&ctx, options, discover).await?;
    if let Err(error) = &report.marker {
        log.line(
            "error",
            &format!("create: write backup id marker: {error}"),
            Default::default(),
        );
    }
    log.summary(CommandName::Create, &report.run);
    Ok(status_of(&report.run, report.marker.is_err()))
}

/// A create over stdin's jobs, or `--discover`'s.
async fn run_create(
    ctx: &cmd::Context,
    mut options: CreateOptions,
    discover: bool,
) -> anyhow::Result<cmd::create::CreateReport> {
    Ok(if discover {
        let jobs = discovered_jobs(ctx)?;
        // Locked at the start: a second run is refused before any work.
        options.storages_up_front = ctx
            .roots
            .iter()
            .filter_map(|(name, _)| crate::layout::StorageName::parse(name).ok())
            .collect();
        let jobs = preflight(ctx, Intent::Create, jobs.into_iter()).await?;
        cmd::create::run(ctx, options, jobs).await
    } else {
        let jobs = preflight(ctx, Intent::Create, stdin_jobs()).await?;
        cmd::create::run(ctx, options, jobs).await
    })
}

/// gitaly mode's `restore`, with gitaly-backup's log lines.
async fn restore(
    setup: cmd::Setup,
    options: RestoreOptions,
    log: Arc<Log>,
    metrics: Option<Arc<Recorder>>,
    cancel: CancellationToken,
) -> anyhow::Result<Status> {
    let ctx = cmd::Context::open(setup, metrics::observed(log.clone(), metrics), cancel).await?;
    let Some(report) = run_restore(&ctx, options, false, &log).await? else {
        return Ok(Status::Interrupted);
    };
    log.removals(&report.removed);
    log.summary(CommandName::Restore, &report.run);
    Ok(status_of(&report.run, false))
}

/// A restore over stdin's jobs, or `--all`'s, after the start-up checks;
/// `None` when interrupted before a job could start.
async fn run_restore(
    ctx: &cmd::Context,
    options: RestoreOptions,
    all: bool,
    log: &Log,
) -> anyhow::Result<Option<cmd::restore::RestoreReport>> {
    // gitaly-backup fails each repository of an unknown -id (spec §4.6).
    let id = options
        .id
        .as_ref()
        .filter(|_| !options.remove_when_no_backup);
    Ok(Some(if all {
        if ctx.roots.is_empty() {
            return Err(UsageError(
                "--all needs storages: pass --storage NAME=DIR or --gitaly-config FILE".into(),
            )
            .into());
        }
        preflight(ctx, Intent::Restore { id: None }, Vec::new().into_iter()).await?;
        let Some(jobs) = restore_all_jobs(ctx, &options, log).await? else {
            return Ok(None);
        };
        cmd::restore::run(ctx, options, jobs.into_iter()).await?
    } else {
        let jobs = preflight(ctx, Intent::Restore { id }, stdin_jobs()).await?;
        cmd::restore::run(ctx, options, jobs).await?
    }))
}

/// Jobs from stdin: read through an 8 KiB buffer, at most 64 KiB of one
/// object at a time, never more than `job::source::READ_AHEAD` jobs ahead.
fn stdin_jobs() -> impl JobSource {
    JobReader::new(BufReader::new(tokio::io::stdin()))
}

/// The start-up checks (`cmd::preflight`), as a usage error: one line,
/// exit 2 (gitaly mode: its error line, exit 1), no job started.
async fn preflight<S: JobSource>(
    ctx: &cmd::Context,
    intent: Intent<'_>,
    jobs: S,
) -> anyhow::Result<Peeked<S>> {
    cmd::preflight::check(ctx, intent, jobs)
        .await
        .map_err(|error| UsageError(error.to_string()).into())
}

/// `restore --all`: the repositories from the catalogue, with a line for
/// each storage left out and for backups no job can name.
async fn restore_all_jobs(
    ctx: &cmd::Context,
    options: &RestoreOptions,
    log: &Log,
) -> anyhow::Result<Option<Vec<Job>>> {
    let Some(all) = cmd::restore::all::jobs(ctx, options.id.as_ref(), options.at).await? else {
        return Ok(None);
    };
    for (storage, repositories) in &all.skipped_storages {
        log.line(
            "warning",
            &format!(
                "restore --all: skipping {repositories} repositories of storage {storage:?}, \
                 which is not configured on this node; run gitbak on the node that has it, \
                 or add --storage {storage}=DIR"
            ),
            Default::default(),
        );
    }
    if all.read_only > 0 {
        log.line(
            "warning",
            &format!(
                "restore --all: skipping {} backups in the pointer or legacy layout, which \
                 record no storage; restore them with a job list on stdin",
                all.read_only
            ),
            Default::default(),
        );
    }
    if all.jobs.is_empty() {
        return Err(UsageError(match (&options.id, options.at) {
            (Some(id), _) => format!(
                "restore --all: no repository of a configured storage has a backup with id {id}; \
                 `gitbak list` shows the ids"
            ),
            (None, Some(at)) => format!(
                "restore --all: no repository of a configured storage has a backup taken at or \
                 before {at}; `gitbak list` shows the backups"
            ),
            (None, None) => "restore --all: the location holds no backup of a repository on a \
                 configured storage; check --path and --storage"
                .into(),
        })
        .into());
    }
    Ok(Some(all.jobs))
}

fn discovered_jobs(ctx: &cmd::Context) -> anyhow::Result<Vec<Job>> {
    if ctx.roots.is_empty() {
        return Err(UsageError(
            "--discover needs storages: pass --storage NAME=DIR or --gitaly-config FILE".into(),
        )
        .into());
    }
    let mut jobs = Vec::new();
    for (name, root) in ctx.roots.iter() {
        for relative_path in crate::node::discover(root)? {
            jobs.push(Job {
                storage_name: name.clone(),
                relative_path,
                ..Job::default()
            });
        }
    }
    Ok(jobs)
}

fn status_of(report: &RunReport, other_failure: bool) -> Status {
    if report.interrupted {
        Status::Interrupted
    } else if report.failures.is_empty() && report.input_error.is_none() && !other_failure {
        Status::Success
    } else {
        Status::Failure
    }
}

/// SIGINT and SIGTERM cancel the run: running git processes are killed,
/// temporary files removed, and nothing half-written is left visible.
fn spawn_signal_handler(cancel: CancellationToken) {
    tokio::spawn(async move {
        let Ok(mut terminate) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        cancel.cancel();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn negative_parallelism_is_a_usage_error() {
        let cli = Cli::parse_from(["gitbak", "create", "--path", "/x", "--parallel", "-1"]);
        let Command::Create(args) = cli.command else {
            panic!("not create")
        };
        assert!(args.common.run_options().is_err());
        let cli = Cli::parse_from([
            "gitbak",
            "restore",
            "--parallel-storage",
            "0",
            "--storage",
            "a=/b",
        ]);
        let Command::Restore(args) = cli.command else {
            panic!("not restore")
        };
        let options = args.common.run_options().unwrap();
        assert_eq!(options.limits.parallel_storage, 2);
        assert_eq!(
            args.common.storages,
            [("a".to_owned(), PathBuf::from("/b"))]
        );
    }
}
