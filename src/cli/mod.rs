//! The command line: clap types, their conversion to plain `cmd` options,
//! and the glue that runs a command and prints its outcome. clap never
//! leaves this module. gitaly-backup's command line (gitaly mode) is
//! translated into these same types by `gitaly`.

pub mod generate;
pub mod gitaly;
pub mod list;
pub mod output;
pub mod prune;
mod table;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use tokio::io::BufReader;
use tokio_util::sync::CancellationToken;

use crate::cmd::create::{CreateOptions, IncrementalOptions};
use crate::cmd::restore::RestoreOptions;
use crate::cmd::{self, RunOptions, Setup};
use crate::exit::{Status, UsageError};
use crate::job::progress::CommandName;
use crate::job::scheduler::{JobSource, Limits, RunReport};
use crate::job::source::JobReader;
use crate::job::Job;
use crate::layout::BackupId;
use output::JsonLog;

const AFTER_HELP: &str = "\
Jobs are read from stdin as JSON lines, as GitLab's backup.rake writes them for gitaly-backup:
  {\"storage_name\":\"default\",\"relative_path\":\"@hashed/6b/86/6b86….git\",\"gl_project_path\":\"group/project\"}

Exit status: 0 all done, 1 some repository failed, 2 usage or configuration error, 130 interrupted.";

/// A command line, read: gitbak's own, or gitaly-backup's (gitaly mode,
/// `gitaly::is_gitaly_mode`), whose output and exit codes follow
/// gitaly-backup's.
#[derive(Debug)]
pub enum Invocation {
    Gitbak(Cli),
    /// A usage error is reported when run, as gitaly-backup reports it.
    Gitaly(Result<Box<gitaly::GitalyArgs>, UsageError>),
}

impl Invocation {
    /// Reads `args` (`args[0]` is the program). Like clap's `parse`, prints
    /// help or version and exits; gitbak's own usage errors exit 2 here,
    /// gitaly mode's are reported by `run` as gitaly-backup reports them.
    pub fn from_args(args: Vec<OsString>) -> Self {
        if !gitaly::is_gitaly_mode(&args) {
            return Self::Gitbak(Cli::parse_from(args));
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
}

/// Fast, safe backups of GitLab repositories, compatible with gitaly-backup.
#[derive(Debug, Parser)]
#[command(name = "gitbak", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up the repositories named on stdin (or every repository, with --discover).
    #[command(after_help = "Examples:
  gitbak create --path /var/opt/gitlab/backups/repositories < jobs.jsonl
  gitbak create --discover --storage default=/var/opt/gitlab/git-data/repositories --path /backups")]
    Create(CreateArgs),
    /// Restore the repositories named on stdin from their latest backup, or from --id.
    #[command(after_help = "Examples:
  gitbak restore --path /var/opt/gitlab/backups/repositories --id 20240101000000 < jobs.jsonl
  gitbak restore --path /var/opt/gitlab/backups/repositories --at 2024-01-01T12:00:00Z < jobs.jsonl

Stop the services that write to repositories first (as for gitlab-backup restore).")]
    Restore(RestoreArgs),
    /// Show the backups a location holds, or one repository's history.
    #[command(after_help = list::EXAMPLES)]
    List(list::ListArgs),
    /// Remove the backups a retention policy does not keep, and the files no backup needs.
    #[command(after_help = prune::EXAMPLES)]
    Prune(prune::PruneArgs),
    /// Write shell completions and man pages into a directory.
    #[command(hide = true)]
    Generate {
        /// Directory that receives completions/ and man/.
        out_dir: PathBuf,
    },
}

/// Options create and restore share.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly's [backup] go_cloud_url.
    #[arg(long, value_name = "LOCATION")]
    pub path: Option<String>,
    /// Maximum repositories processed at once (0: number of CPUs).
    #[arg(
        long,
        default_value_t = 0,
        allow_negative_numbers = true,
        value_name = "N"
    )]
    pub parallel: i64,
    /// Maximum repositories processed at once per storage (0: 2).
    #[arg(
        long,
        default_value_t = 0,
        allow_negative_numbers = true,
        value_name = "N"
    )]
    pub parallel_storage: i64,
    /// Storage root directory; repeatable, or comma-separated; wins over the Gitaly config.
    #[arg(
        long = "storage",
        env = "GITBAK_STORAGE",
        value_name = "NAME=DIR",
        value_parser = parse_storage,
        value_delimiter = ','
    )]
    pub storages: Vec<(String, PathBuf)>,
    /// Gitaly's config.toml, for [[storage]] and [backup]. Default: /var/opt/gitlab/gitaly/config.toml if present.
    #[arg(long, env = "GITBAK_GITALY_CONFIG", value_name = "FILE")]
    pub gitaly_config: Option<PathBuf>,
    /// Skip, with a log line, jobs whose storage is not configured on this node.
    #[arg(long, env = "GITBAK_LOCAL_STORAGES_ONLY", value_parser = clap::builder::BoolishValueParser::new())]
    pub local_storages_only: bool,
    /// The git binary to run.
    #[arg(long, env = "GITBAK_GIT", default_value = "git", value_name = "PATH")]
    pub git: PathBuf,
    /// Object storage upload part size, e.g. 16MiB (default 16 MiB, or Gitaly's [backup] buffer_size).
    #[arg(long, env = "GITBAK_PART_SIZE", value_name = "SIZE", value_parser = parse_size)]
    pub part_size: Option<usize>,
    /// Parts of one upload in flight at once.
    #[arg(long, env = "GITBAK_UPLOAD_CONCURRENCY", default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub upload_concurrency: u16,
    /// Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up.
    #[arg(long, env = "GITBAK_RETRIES", default_value_t = 5, value_name = "N")]
    pub retries: u32,
    /// Write-once buckets (S3 Object Lock, Azure immutability, GCS retention): never overwrite
    /// or delete anything, skip +latest.toml, send request checksums.
    #[arg(long, env = "GITBAK_IMMUTABLE", value_parser = clap::builder::BoolishValueParser::new())]
    pub immutable: bool,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Backup id. Default: the UTC time as YYYYMMDDhhmmss. Rerunning an id resumes it.
    #[arg(long)]
    pub id: Option<String>,
    /// Back up every repository of every configured storage instead of reading stdin.
    #[arg(long)]
    pub discover: bool,
    /// Continue each repository's latest backup: only what changed since is written, and nothing for an unchanged repository.
    #[arg(long)]
    pub incremental: bool,
    /// With --incremental: a chain of this many steps starts a new full backup (as do increments larger than the full backup).
    #[arg(long, env = "GITBAK_MAX_CHAIN", default_value_t = 14, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_chain: u32,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Backup id to restore. Default: the latest backup of each repository.
    #[arg(long)]
    pub id: Option<String>,
    /// Restore each repository's newest backup taken at or before TIME: RFC 3339 (2024-01-01T12:00:00Z, or with an offset) or YYYYMMDDhhmmss in UTC.
    #[arg(long, value_name = "TIME", conflicts_with = "id", value_parser = crate::layout::time::parse_point_in_time)]
    pub at: Option<crate::layout::time::Timestamp>,
}

fn parse_storage(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, dir)) if !name.is_empty() && !dir.is_empty() => {
            Ok((name.to_owned(), PathBuf::from(dir)))
        }
        _ => Err(format!("expected NAME=DIR, got {text:?}")),
    }
}

/// Bytes with an optional K/M/G (1000s) or KiB/MiB/GiB (1024s) suffix.
fn parse_size(text: &str) -> Result<usize, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: usize = number
        .parse()
        .map_err(|_| format!("expected a size such as 16MiB, got {text:?}"))?;
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?}; use KiB, MiB or GiB")),
    };
    let size = number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text} is too large"))?;
    if size < (5 << 20) {
        return Err(format!(
            "{text} is below the 5 MiB minimum part size of object stores"
        ));
    }
    Ok(size)
}

fn parse_id(id: &str) -> Result<BackupId, UsageError> {
    BackupId::parse(id).map_err(|error| UsageError(format!("--id: {error}")))
}

impl CommonArgs {
    fn run_options(&self) -> Result<RunOptions, UsageError> {
        let count = |flag: &str, value: i64, default: usize| match value {
            0 => Ok(default),
            n if n > 0 => Ok(n as usize),
            n => Err(UsageError(format!(
                "--{flag} must be 0 (the default) or more, not {n}"
            ))),
        };
        let cpus = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1);
        Ok(RunOptions {
            limits: Limits {
                parallel: count("parallel", self.parallel, cpus)?,
                parallel_storage: count("parallel-storage", self.parallel_storage, 2)?,
            },
            local_storages_only: self.local_storages_only,
        })
    }

    fn setup(&self, parallel: usize) -> Setup {
        Setup {
            location: self.path.clone(),
            storages: self.storages.clone(),
            gitaly_config: self.gitaly_config.clone(),
            git: self.git.clone(),
            parallel,
            part_size: self.part_size,
            upload_concurrency: usize::from(self.upload_concurrency),
            retries: self.retries,
            immutable: self.immutable,
            gitaly_addresses: Default::default(),
        }
    }
}

/// Runs the command line read by `Invocation::from_args`.
pub async fn run(invocation: Invocation) -> anyhow::Result<Status> {
    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone());
    let cli = match invocation {
        Invocation::Gitbak(cli) => cli,
        Invocation::Gitaly(translated) => return gitaly::run(*translated?, cancel).await,
    };
    match cli.command {
        Command::Create(args) => {
            let run = args.common.run_options()?;
            let id = match &args.id {
                Some(id) => parse_id(id)?,
                None => BackupId::from_unix_seconds(cmd::unix_now()),
            };
            let setup = args.common.setup(run.limits.parallel);
            let options = CreateOptions {
                id,
                run,
                incremental: args.incremental.then_some(IncrementalOptions {
                    max_chain: args.max_chain,
                    existing_id_fails: false,
                }),
            };
            create(
                setup,
                options,
                args.discover,
                Arc::new(JsonLog::stdout()),
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
            restore(setup, options, Arc::new(JsonLog::stdout()), cancel).await
        }
        Command::List(args) => list::run(args, cancel).await,
        Command::Prune(args) => prune::run(args, cancel).await,
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
        JsonLog::gitaly_stdout().line("error", &format!("{error:#}"), Default::default());
        crate::exit::code_for_gitaly_error(error)
    } else {
        eprintln!("gitbak: {error:#}");
        crate::exit::code_for_error(error)
    }
}

/// `create`, whichever front end asked for it.
async fn create(
    setup: cmd::Setup,
    options: CreateOptions,
    discover: bool,
    log: Arc<JsonLog>,
    cancel: CancellationToken,
) -> anyhow::Result<Status> {
    let ctx = cmd::Context::open(setup, log.clone(), cancel).await?;
    let report = if discover {
        let jobs = discovered_jobs(&ctx)?;
        cmd::create::run(&ctx, options, jobs.into_iter()).await
    } else {
        cmd::create::run(&ctx, options, stdin_jobs()).await
    };
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

/// `restore`, whichever front end asked for it.
async fn restore(
    setup: cmd::Setup,
    options: RestoreOptions,
    log: Arc<JsonLog>,
    cancel: CancellationToken,
) -> anyhow::Result<Status> {
    let ctx = cmd::Context::open(setup, log.clone(), cancel).await?;
    let report = cmd::restore::run(&ctx, options, stdin_jobs()).await?;
    log.removals(&report.removed);
    log.summary(CommandName::Restore, &report.run);
    Ok(status_of(&report.run, false))
}

/// Jobs from stdin: read through an 8 KiB buffer, at most 64 KiB of one
/// object at a time, never more than `job::source::READ_AHEAD` jobs ahead.
fn stdin_jobs() -> impl JobSource {
    JobReader::new(BufReader::new(tokio::io::stdin()))
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
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("8000000"), Ok(8_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("1MiB").is_err());
        assert!(parse_size("16 parsecs").is_err());
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
