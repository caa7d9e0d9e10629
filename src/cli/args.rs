//! The options of `create` and `restore` as clap types: what both share
//! (`CommonArgs`), what only writing a backup needs (`UploadArgs`), and
//! each command's own, so `--help`, completions and man pages show a
//! command only the options it reads. No I/O; `mod.rs` turns these into
//! `cmd` options.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::cmd::{RunOptions, Setup};
use crate::exit::UsageError;
use crate::job::scheduler::Limits;

/// Options every command that works on repositories shares.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly's [backup] go_cloud_url.
    #[arg(long, env = "GITBAK_PATH", value_name = "LOCATION")]
    pub path: Option<String>,
    /// Maximum repositories processed at once (0: number of CPUs).
    #[arg(
        long,
        env = "GITBAK_PARALLEL",
        default_value_t = 0,
        allow_negative_numbers = true,
        value_name = "N"
    )]
    pub parallel: i64,
    /// Maximum repositories processed at once per storage (0: 2).
    #[arg(
        long,
        env = "GITBAK_PARALLEL_STORAGE",
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
    /// The git binary to run (2.45 or newer).
    #[arg(long, env = "GITBAK_GIT", default_value = "git", value_name = "PATH")]
    pub git: PathBuf,
    /// Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up.
    #[arg(long, env = "GITBAK_RETRIES", default_value_t = 5, value_name = "N")]
    pub retries: u32,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub metrics: super::metrics::MetricsArgs,
}

/// How a run reports: the log's format and detail, the progress display,
/// and whether an empty job list is a mistake.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Log lines on stdout as text (for a person) or JSON (for log pipelines). Default: text on a terminal, json otherwise.
    #[arg(long, env = "GITBAK_LOG_FORMAT", value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,
    /// Only warnings and errors (and the summary of a run that failed).
    #[arg(short, long, env = "GITBAK_QUIET", value_parser = clap::builder::BoolishValueParser::new(), conflicts_with = "verbose")]
    pub quiet: bool,
    /// Diagnostics on stderr too (-vv: more); hides the progress display.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress display on a terminal, no progress lines elsewhere.
    #[arg(long, env = "GITBAK_NO_PROGRESS", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_progress: bool,
    /// An empty job list is a success (exit 0) instead of an error (exit 2).
    #[arg(long, env = "GITBAK_ALLOW_EMPTY", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_empty: bool,
}

/// `--log-format`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

/// How `create` writes to object storage; restore reads and ignores them.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Object storage upload part size, e.g. 16MiB (default 16 MiB, or Gitaly's [backup] buffer_size).
    #[arg(long, env = "GITBAK_PART_SIZE", value_name = "SIZE", value_parser = parse_size)]
    pub part_size: Option<usize>,
    /// Parts of one upload in flight at once.
    #[arg(long, env = "GITBAK_UPLOAD_CONCURRENCY", default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub upload_concurrency: u16,
    /// Memory for the part buffers of all uploads together, e.g. 1GiB (default 256 MiB); at least two parts. Uploads wait for room.
    #[arg(long, env = "GITBAK_UPLOAD_MEMORY", value_name = "SIZE", value_parser = parse_bytes)]
    pub upload_memory: Option<usize>,
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
    #[arg(long, env = "GITBAK_DISCOVER", value_parser = clap::builder::BoolishValueParser::new())]
    pub discover: bool,
    /// Continue each repository's latest backup: only what changed since is written, and nothing for an unchanged repository.
    #[arg(long, env = "GITBAK_INCREMENTAL", value_parser = clap::builder::BoolishValueParser::new())]
    pub incremental: bool,
    /// With --incremental: a chain of this many steps starts a new full backup (as do increments larger than the full backup).
    #[arg(long, env = "GITBAK_MAX_CHAIN", default_value_t = 14, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_chain: u32,
    /// Another run's lock on a storage (gitbak-locks/ID/STORAGE) older than DURATION (such as 24h, 2d) is stale and replaced.
    #[arg(long, env = "GITBAK_LOCK_TIMEOUT", default_value = crate::cmd::create::DEFAULT_LOCK_TIMEOUT, value_name = "DURATION", value_parser = crate::retention::Duration::parse)]
    pub lock_timeout: crate::retention::Duration,
    #[command(flatten)]
    pub upload: UploadArgs,
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
    /// Restore every repository the location has a backup of (with --id: a backup under that id; with --at: one taken by then) instead of reading stdin. Storages not configured here are skipped.
    #[arg(long)]
    pub all: bool,
}

fn parse_storage(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, dir)) if !name.is_empty() && !dir.is_empty() => {
            Ok((name.to_owned(), PathBuf::from(dir)))
        }
        _ => Err(format!("expected NAME=DIR, got {text:?}")),
    }
}

/// A part size: bytes as `parse_bytes` reads them, at least 5 MiB.
fn parse_size(text: &str) -> Result<usize, String> {
    let size = parse_bytes(text)?;
    if size < (5 << 20) {
        return Err(format!(
            "{text} is below the 5 MiB minimum part size of object stores"
        ));
    }
    Ok(size)
}

/// Bytes with an optional K/M/G (1000s) or KiB/MiB/GiB (1024s) suffix.
fn parse_bytes(text: &str) -> Result<usize, String> {
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
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text} is too large"))
}

impl CommonArgs {
    pub(super) fn run_options(&self) -> Result<RunOptions, UsageError> {
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

    /// The setup of a command that writes nothing to object storage
    /// (restore): upload tuning at its defaults.
    pub(super) fn setup(&self, parallel: usize) -> Setup {
        let defaults = crate::storage::Tuning::default();
        Setup {
            location: self.path.clone(),
            storages: self.storages.clone(),
            gitaly_config: self.gitaly_config.clone(),
            git: self.git.clone(),
            parallel,
            part_size: None,
            upload_concurrency: defaults.upload_concurrency,
            upload_memory: None,
            retries: self.retries,
            immutable: false,
            gitaly_addresses: Default::default(),
        }
    }
}

impl CreateArgs {
    /// `create`'s setup: the shared options and how to upload.
    pub(super) fn setup(&self, parallel: usize) -> Setup {
        Setup {
            part_size: self.upload.part_size,
            upload_concurrency: usize::from(self.upload.upload_concurrency),
            upload_memory: self.upload.upload_memory,
            immutable: self.upload.immutable,
            ..self.common.setup(parallel)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("8000000"), Ok(8_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("1MiB").is_err());
        assert!(parse_size("16 parsecs").is_err());
        assert_eq!(parse_bytes("1MiB"), Ok(1 << 20));
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
    }
}
