//! `gitbak list`, and the location options `list` and `prune` share: clap
//! types, their conversion to `cmd` options, and the table or JSON
//! printed on stdout (warnings go to stderr, so `--json` stays clean).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::output::progress::CatalogDisplay;
use super::table::{human_bytes, Table};
use crate::cmd::list::{ListOptions, ListReport};
use crate::cmd::{self, Context, Setup};
use crate::exit::Status;
use crate::layout::catalog::Repository;
use crate::layout::{RelativePath, StorageName};

pub const EXAMPLES: &str = "Examples:
  gitbak list --path /var/opt/gitlab/backups/repositories
  gitbak list --path 's3://backups?region=eu-west-1' --repository default:@hashed/6b/86/6b86...git --json";

/// Where the backups are, for commands that read no repositories.
#[derive(Debug, Args)]
pub struct LocationArgs {
    /// Backup location: a directory, file:///DIR, s3://BUCKET, azblob://CONTAINER or gs://BUCKET. Default: Gitaly's [backup] go_cloud_url.
    #[arg(long, env = "GITBAK_PATH", value_name = "LOCATION")]
    pub path: Option<String>,
    /// Gitaly's config.toml, for [backup] go_cloud_url. Default: /var/opt/gitlab/gitaly/config.toml if present.
    #[arg(long, env = "GITBAK_GITALY_CONFIG", value_name = "FILE")]
    pub gitaly_config: Option<PathBuf>,
    /// Retries of a failed object storage request (timeouts, 5xx, throttling) before giving up.
    #[arg(long, env = "GITBAK_RETRIES", default_value_t = 5, value_name = "N")]
    pub retries: u32,
}

impl LocationArgs {
    /// Opens the location; `display` shows its warnings and the reading.
    pub(super) async fn open(
        &self,
        display: Arc<CatalogDisplay>,
        cancel: CancellationToken,
    ) -> anyhow::Result<Context> {
        self.open_with_git(PathBuf::from("git"), display, cancel)
            .await
    }

    /// `open`, for a command that also runs git (`verify --deep`).
    pub(super) async fn open_with_git(
        &self,
        git: PathBuf,
        display: Arc<CatalogDisplay>,
        cancel: CancellationToken,
    ) -> anyhow::Result<Context> {
        let setup = Setup {
            location: self.path.clone(),
            storages: Vec::new(),
            gitaly_config: self.gitaly_config.clone(),
            git,
            parallel: 1,
            part_size: None,
            upload_concurrency: 1,
            upload_memory: None,
            retries: self.retries,
            immutable: false,
            gitaly_addresses: Default::default(),
        };
        Context::open(setup, display, cancel).await
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub location: LocationArgs,
    /// Show one repository's history instead: STORAGE:PATH, as in a job line (default:@hashed/6b/86/6b86...git).
    #[arg(long, value_name = "STORAGE:PATH", value_parser = parse_repository)]
    pub repository: Option<Repository>,
    /// Print JSON (schema in the README) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `STORAGE:PATH`.
pub fn parse_repository(text: &str) -> Result<Repository, String> {
    let (storage, path) = text.split_once(':').ok_or_else(|| {
        format!("expected STORAGE:PATH, such as default:@hashed/ab/cd/x.git, got {text:?}")
    })?;
    Ok(Repository {
        storage: StorageName::parse(storage).map_err(|error| error.to_string())?,
        path: RelativePath::parse(path).map_err(|error| error.to_string())?,
    })
}

pub async fn run(args: ListArgs, cancel: CancellationToken) -> anyhow::Result<Status> {
    let display = CatalogDisplay::start();
    let ctx = args.location.open(display.clone(), cancel).await?;
    let options = ListOptions {
        repository: args.repository,
    };
    display.reading(format!("reading the backups of {}", ctx.location));
    let report = cmd::list::run(&ctx, options).await;
    display.clear();
    let report = match report {
        Err(cmd::list::ListError::Interrupted) => return Ok(Status::Interrupted),
        report => report?,
    };
    super::table::print_report(&report, args.json, render)?;
    Ok(Status::Success)
}

fn time_or_unknown(time: &Option<String>) -> String {
    time.clone().unwrap_or_else(|| "time unknown".into())
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.into()
}

/// The human table.
pub fn render(report: &ListReport) -> String {
    let mut out = String::new();
    if let Some(history) = &report.repository {
        out.push_str(&format!("{}:{}\n", history.storage, history.relative_path));
        let mut table = Table::new(&[
            "ID",
            "TIME",
            "FINISHED",
            "KIND",
            "CHAIN#",
            "BYTES#",
            "RESTORE BYTES#",
        ]);
        for row in &history.backups {
            table.row(vec![
                row.id.clone(),
                time_or_unknown(&row.time),
                yes_no(row.finished),
                row.kind.into(),
                row.chain_length.to_string(),
                human_bytes(row.bytes),
                human_bytes(row.restore_bytes),
            ]);
        }
        out.push_str(&table.render(""));
    } else if report.backups.is_empty() {
        out.push_str("No backups in the manifest layout.\n");
    } else {
        let mut table = Table::new(&[
            "ID",
            "TIME",
            "FINISHED",
            "REPOSITORIES#",
            "FULL#",
            "INCREMENTAL#",
            "UNCHANGED#",
            "MISSING#",
            "BYTES#",
        ]);
        for row in &report.backups {
            table.row(vec![
                row.id.clone(),
                time_or_unknown(&row.time),
                yes_no(row.finished),
                row.repositories.to_string(),
                row.full.to_string(),
                row.incremental.to_string(),
                row.unchanged.to_string(),
                row.missing.to_string(),
                human_bytes(row.bytes),
            ]);
        }
        out.push_str(&table.render(""));
        let total: u64 = report.backups.iter().map(|row| row.bytes).sum();
        out.push_str(&format!(
            "{} backups, {} in manifests and the files they name\n",
            report.backups.len(),
            human_bytes(total)
        ));
    }
    if !report.read_only.is_empty() {
        out.push_str("\nRead-only backups (pointer and legacy layouts; restore reads them, prune never removes them):\n");
        let mut table = Table::new(&["LAYOUT", "REPOSITORY", "ID", "STEPS#", "BYTES#"]);
        for row in &report.read_only {
            table.row(vec![
                row.layout.into(),
                row.repository_prefix.clone(),
                row.id.clone().unwrap_or_default(),
                row.steps.to_string(),
                human_bytes(row.bytes),
            ]);
        }
        out.push_str(&table.render(""));
    }
    if !report.unreadable.is_empty() {
        out.push_str("\nUnreadable manifests (kept by prune; repair or remove them by hand):\n");
        for row in &report.unreadable {
            out.push_str(&format!("  {}: {}\n", row.manifest, row.error));
        }
    }
    out
}
