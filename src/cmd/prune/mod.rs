//! `gitbak prune`: remove the backups a retention policy does not keep,
//! then the files no remaining manifest names once they have waited out
//! the grace period, and the markers of runs with nothing left.
//!
//! Plan, then execute: the plan (`plan`) is computed from the catalogue
//! alone and is all a dry run shows; `execute` carries it out. Safe
//! beside a running `create`: a file is removed only after no manifest
//! has named it for `--grace` (recorded in `layout::unreferenced`), which
//! also covers the files an unfinished create has written and not yet
//! named; and create re-checks its base's files before its manifest.

mod execute;
mod leftovers;
pub mod plan;

pub use execute::{Deletion, Executed, Outcome};
pub use plan::{BackupVerdict, PrunePlan, RepositoryPlan, TemporaryOwner, Verdict};

use crate::layout::catalog::Catalog;
use crate::layout::time::Timestamp;
use crate::retention::{Duration, Policy, RetentionError};
use crate::storage::{StorageError, Versioning};

use super::Context;

#[derive(Debug, Clone)]
pub struct PruneOptions {
    pub policy: Policy,
    pub grace: Duration,
    /// `--now`: the instant to evaluate the policy and the grace period
    /// at; default the clock's.
    pub now: Option<Timestamp>,
    pub dry_run: bool,
    /// `--path` as given, to find temporary files on a local location.
    pub location: Option<String>,
}

#[derive(Debug)]
pub struct PruneReport {
    pub catalog: Catalog,
    pub plan: PrunePlan,
    pub grace: Duration,
    /// `None` for a dry run.
    pub executed: Option<Executed>,
    /// Things the user should know that did not stop the prune.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// Before anything was removed.
    #[error("interrupted")]
    Interrupted,
    #[error(transparent)]
    Policy(#[from] RetentionError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("cannot look for temporary files under {root}: {source}")]
    Leftovers {
        root: String,
        source: std::io::Error,
    },
}

pub async fn run(ctx: &Context, options: PruneOptions) -> Result<PruneReport, PruneError> {
    options.policy.check()?;
    let storage = ctx.storage.as_ref();
    let now = options
        .now
        .unwrap_or_else(|| Timestamp::from_unix_seconds((ctx.now)()));
    let mut temporaries = match options.location.as_deref().and_then(leftovers::local_root) {
        Some(root) => {
            let shown = root.display().to_string();
            leftovers::find(root)
                .await
                .map_err(|source| PruneError::Leftovers {
                    root: shown,
                    source,
                })?
        }
        None => Vec::new(),
    };
    let catalog = super::catalog::load_until_cancelled(storage, ctx.progress.as_ref(), &ctx.cancel)
        .await?
        .ok_or(PruneError::Interrupted)?;
    for meta in &catalog.temporaries {
        if temporaries.iter().all(|(found, _)| found.key != meta.key) {
            temporaries.push((meta.clone(), leftovers::owner_of(meta.key.as_str())));
        }
    }
    let (record, record_warning) = execute::load_record(storage).await?;
    let mut warnings: Vec<String> = record_warning.into_iter().collect();
    for entry in catalog.manifests.iter() {
        if let Err(reason) = &entry.content {
            warnings.push(format!(
                "{} is unreadable ({reason}): it is kept, and no file of {} is removed; \
                 repair or remove it by hand",
                entry.key, entry.repository
            ));
        }
    }
    let plan = plan::plan(
        &catalog,
        &options.policy,
        now,
        options.grace,
        &record,
        &temporaries,
    );
    let executed = if options.dry_run {
        None
    } else {
        Some(execute::execute(storage, &ctx.cancel, &catalog, &plan, &record).await)
    };
    if let Ok(Versioning::On | Versioning::Suspended) = storage.versioning().await {
        warnings.push(
            "the bucket keeps versions: deleting leaves old versions or delete markers, which \
             free nothing until the bucket's lifecycle rule expires noncurrent versions; add \
             one (see the README's Object storage section)"
                .into(),
        );
    }
    Ok(PruneReport {
        catalog,
        plan,
        grace: options.grace,
        executed,
        warnings,
    })
}
