//! `gitbak prune`: clap types, their conversion to `cmd::prune` options,
//! and the exit status; `render` prints the plan and what was done.

mod render;

use std::io::Write;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::list::LocationArgs;
use super::output::progress::CatalogDisplay;
use crate::cmd::prune::{Outcome, PruneError, PruneOptions};
use crate::exit::{Status, UsageError};
use crate::layout::time::{parse_point_in_time, Timestamp};
use crate::retention::{Count, Duration, Policy, RetentionError};

pub const EXAMPLES: &str = "Examples:
  gitbak prune --path /var/opt/gitlab/backups/repositories --keep-daily 7 --keep-weekly 4 --dry-run
  gitbak prune --path 's3://backups?region=eu-west-1' --keep-within 30d --keep-monthly 12

Rules apply per repository and are ORed; each repository's newest backup is always kept.
A file no manifest names is removed only after --grace (recorded under gitbak-prune/).";

/// A `--keep-*` count: a number, or `unlimited`; 0 means not given.
#[derive(Debug, Clone, Copy)]
pub struct KeepCount(Option<Count>);

fn parse_count(text: &str) -> Result<KeepCount, RetentionError> {
    Count::parse(text).map(KeepCount)
}

/// The retention policy, per repository; rules are ORed.
#[derive(Debug, Args)]
pub struct KeepArgs {
    /// Keep each repository's N newest backups.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_last: Option<KeepCount>,
    /// Keep the newest backup of each of the N most recent hours that have one (UTC).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_hourly: Option<KeepCount>,
    /// Keep the newest backup of each of the N most recent days that have one (UTC).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_daily: Option<KeepCount>,
    /// Keep the newest backup of each of the N most recent ISO weeks that have one.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_weekly: Option<KeepCount>,
    /// Keep the newest backup of each of the N most recent months that have one.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_monthly: Option<KeepCount>,
    /// Keep the newest backup of each of the N most recent years that have one.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_yearly: Option<KeepCount>,
    /// Keep every backup taken within DURATION (such as 30d, 1y6m, 2w, 36h) before each repository's newest backup.
    #[arg(long, value_name = "DURATION", value_parser = Duration::parse)]
    pub keep_within: Option<Duration>,
}

impl From<&KeepArgs> for Policy {
    fn from(args: &KeepArgs) -> Self {
        let count = |keep: Option<KeepCount>| keep.and_then(|KeepCount(count)| count);
        Policy {
            last: count(args.keep_last),
            hourly: count(args.keep_hourly),
            daily: count(args.keep_daily),
            weekly: count(args.keep_weekly),
            monthly: count(args.keep_monthly),
            yearly: count(args.keep_yearly),
            within: args.keep_within,
        }
    }
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub location: LocationArgs,
    #[command(flatten)]
    pub keep: KeepArgs,
    /// Print the plan (each backup kept or removed, and why) and remove nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Print JSON (schema in the README) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Evaluate the policy and the grace period as of TIME (RFC 3339, or YYYYMMDDhhmmss in UTC) instead of now.
    #[arg(long, value_name = "TIME", value_parser = parse_point_in_time)]
    pub now: Option<Timestamp>,
    /// Remove a data file only once no manifest has named it for this long (such as 24h, 7d, or 0 when nothing else writes to the location). A day is far longer than any one repository's backup takes between choosing its base and writing its manifest.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = Duration::parse)]
    pub grace: Duration,
}

pub async fn run(args: PruneArgs, cancel: CancellationToken) -> anyhow::Result<Status> {
    let policy = Policy::from(&args.keep);
    policy
        .check()
        .map_err(|error| UsageError(error.to_string()))?;
    let display = CatalogDisplay::start();
    let ctx = args.location.open(display.clone(), cancel).await?;
    let options = PruneOptions {
        policy,
        grace: args.grace,
        now: args.now,
        dry_run: args.dry_run,
        location: args.location.path.clone(),
    };
    display.reading(format!("reading the backups of {}", ctx.location));
    let report = crate::cmd::prune::run(&ctx, options).await;
    display.clear();
    let report = match report {
        Err(PruneError::Interrupted) => return Ok(Status::Interrupted),
        report => report?,
    };
    for warning in &report.warnings {
        eprintln!("gitbak: warning: {warning}");
    }
    let text = if args.json {
        render::json(&report)
    } else {
        render::text(&report)
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    let Some(executed) = &report.executed else {
        return Ok(Status::Success);
    };
    let mut failed = false;
    for deletion in executed.all() {
        if let Outcome::Failed(error) = &deletion.outcome {
            eprintln!("gitbak: cannot remove {}: {error}", deletion.key);
            failed = true;
        }
    }
    if let Some(error) = &executed.record_error {
        eprintln!(
            "gitbak: cannot record the unreferenced files ({error}); they wait one more grace period"
        );
        failed = true;
    }
    Ok(if executed.interrupted {
        Status::Interrupted
    } else if failed {
        Status::Failure
    } else {
        Status::Success
    })
}
