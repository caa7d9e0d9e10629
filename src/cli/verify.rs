//! `gitbak verify`: clap types, their conversion to `cmd::verify` options,
//! the table or JSON printed on stdout, and the exit status (0 sound,
//! 3 something broken).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::list::{parse_repository, LocationArgs};
use super::output::progress::CatalogDisplay;
use super::table::{human_bytes, Table};
use crate::cmd::verify::{Selection, VerifyError, VerifyOptions, VerifyReport};
use crate::exit::Status;
use crate::layout::catalog::Repository;
use crate::layout::time::{parse_point_in_time, Timestamp};
use crate::layout::BackupId;
use crate::metrics::Recorder;

pub const EXAMPLES: &str = "Examples:
  # Every repository's latest backup: files there, sizes and SHA-256 right:
  gitbak verify --path /var/opt/gitlab/backups/repositories
  # A nightly spot check: 20 repositories at random, restored in $TMPDIR:
  gitbak verify --path 's3://backups?region=eu-west-1' --sample 20 --deep
  # One backup run, as JSON:
  gitbak verify --path /backups/gitlab --id 20240101000000 --json

Exit status:
0 every backup checked is sound, 3 some backup is broken (the table names
each, and why), 1 the check itself failed, 2 usage error, 130 interrupted.";

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub location: LocationArgs,
    /// Verify the backups of this id (every repository that has one) instead of each repository's latest.
    #[arg(long, value_name = "ID", value_parser = parse_backup_id)]
    pub id: Option<BackupId>,
    /// Verify each repository's newest backup taken at or before TIME (RFC 3339, or YYYYMMDDhhmmss in UTC), as restore --at picks it.
    #[arg(long, value_name = "TIME", conflicts_with = "id", value_parser = parse_point_in_time)]
    pub at: Option<Timestamp>,
    /// Verify only this repository: STORAGE:PATH, as in a job line (default:@hashed/6b/86/6b86...git).
    #[arg(long, value_name = "STORAGE:PATH", value_parser = parse_repository)]
    pub repository: Option<Repository>,
    /// Also restore each backup into a scratch directory under $TMPDIR (removed after), proving its bundles, chain and refs.
    #[arg(long)]
    pub deep: bool,
    /// Verify N repositories picked at random (after --id, --at and --repository).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub sample: Option<u32>,
    /// Print JSON (schema in the README) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The git --deep runs (2.45 or newer).
    #[arg(long, env = "GITBAK_GIT", default_value = "git", value_name = "PATH")]
    pub git: PathBuf,
    #[command(flatten)]
    pub metrics: super::metrics::MetricsArgs,
}

fn parse_backup_id(text: &str) -> Result<BackupId, String> {
    BackupId::parse(text).map_err(|error| error.to_string())
}

impl From<&VerifyArgs> for VerifyOptions {
    fn from(args: &VerifyArgs) -> Self {
        let selection = match (&args.id, args.at) {
            (Some(id), _) => Selection::Id(id.clone()),
            (None, Some(at)) => Selection::At(at),
            (None, None) => Selection::Latest,
        };
        VerifyOptions {
            selection,
            repository: args.repository.clone(),
            sample: args.sample.map(|count| count as usize),
            seed: fresh_seed(),
            deep: args.deep,
        }
    }
}

/// A different pick each run: the clock's nanoseconds and the pid.
fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

pub async fn run(
    args: VerifyArgs,
    cancel: CancellationToken,
    metrics: Option<Arc<Recorder>>,
) -> anyhow::Result<Status> {
    let display = CatalogDisplay::start();
    let ctx = args
        .location
        .open_with_git(args.git.clone(), display.clone(), cancel)
        .await?;
    display.reading(format!("verifying the backups of {}", ctx.location));
    let report = crate::cmd::verify::run(&ctx, VerifyOptions::from(&args), display.as_ref()).await;
    display.clear();
    let report = match report {
        Err(VerifyError::Interrupted) => return Ok(Status::Interrupted),
        report => report?,
    };
    if let Some(metrics) = &metrics {
        metrics.set_verify(&report);
    }
    super::table::print_report(&report, args.json, render)?;
    Ok(if report.sound {
        Status::Success
    } else {
        Status::Broken
    })
}

/// The human output: every problem, one row each, then the totals.
pub fn render(report: &VerifyReport) -> String {
    let mut out = String::new();
    let counts = &report.counts;
    if !report.sound {
        let mut table = Table::new(&["REPOSITORY", "BACKUP", "PROBLEM", "STEP#", "DETAIL"]);
        for backup in report.backups.iter().filter(|backup| !backup.is_sound()) {
            for problem in &backup.problems {
                let detail = match &problem.file {
                    Some(file) => format!("{file}: {}", problem.detail),
                    None => problem.detail.clone(),
                };
                table.row(vec![
                    format!("{}:{}", backup.storage, backup.relative_path),
                    backup.backup_id.clone().unwrap_or_else(|| "+latest".into()),
                    problem.kind.name().into(),
                    problem
                        .step
                        .map(|step| step.to_string())
                        .unwrap_or_default(),
                    detail,
                ]);
            }
        }
        out.push_str(&table.render(""));
        out.push('\n');
    }
    let deep = if counts.deep_restores > 0 {
        format!(", {} restored in a scratch directory", counts.deep_restores)
    } else {
        String::new()
    };
    out.push_str(&format!(
        "Checked {} repositories ({} backups): {} files, {} ({} hashed){deep}.\n",
        counts.repositories,
        counts.backups,
        counts.files,
        human_bytes(counts.bytes),
        human_bytes(counts.bytes_hashed),
    ));
    if report.sound {
        out.push_str("All sound.\n");
    } else {
        out.push_str(&format!(
            "Broken: {} repositories ({} backups, {} files).\n",
            counts.broken_repositories, counts.broken_backups, counts.broken_files
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::verify::{BackupCheck, Problem, ProblemKind, VerifyCounts};

    #[test]
    fn the_table_names_each_problem_and_the_totals() {
        let backup = BackupCheck {
            storage: "default".into(),
            relative_path: "g/p.git".into(),
            backup_id: Some("20260102000000".into()),
            manifest: "manifests/default/g/p.git/20260102000000.toml".into(),
            kind: "incremental",
            steps: 2,
            files: 3,
            bytes: 2048,
            bytes_hashed: 2048,
            restored: false,
            problems: vec![Problem {
                kind: ProblemKind::BrokenChain,
                file: Some("default/g/p.git/20260101000000/001.bundle".into()),
                step: Some(1),
                detail: "step 1 of 2 is missing its file".into(),
            }],
        };
        let report = VerifyReport {
            sound: false,
            counts: VerifyCounts {
                backups: 1,
                repositories: 1,
                files: 3,
                bytes: 2048,
                bytes_hashed: 2048,
                broken_backups: 1,
                broken_repositories: 1,
                broken_files: 1,
                ..VerifyCounts::default()
            },
            backups: vec![backup],
        };
        assert_eq!(
            render(&report),
            "REPOSITORY       BACKUP          PROBLEM       STEP  DETAIL\n\
             default:g/p.git  20260102000000  broken chain     1  \
             default/g/p.git/20260101000000/001.bundle: step 1 of 2 is missing its file\n\
             \n\
             Checked 1 repositories (1 backups): 3 files, 2.0 KiB (2.0 KiB hashed).\n\
             Broken: 1 repositories (1 backups, 1 files).\n"
        );
    }
}
