//! Before a manifest is written: the files it takes over from earlier
//! backups (an increment's base steps, or an unchanged repository's whole
//! chain) still exist.
//!
//! `prune` removes a file only once no manifest has named it for its grace
//! period, so this only trips for a create slower than that between
//! choosing its base and writing its manifest, or a prune run with
//! `--grace 0` beside it. Without the check the manifest would name
//! missing files, and a restore of it would fail long after.

use crate::layout::manifest::Manifest;
use crate::layout::{self, StepKeys};
use crate::storage::Key;

use super::{Context, CreateError, Target};

/// Stat requests in flight: one per earlier file, so a chain of 14 steps
/// costs 2 or 3 round trips on object storage.
const CHECKS_IN_FLIGHT: usize = 8;

/// Fails when a file the manifest names from an earlier backup is gone:
/// every file it records a digest for, and every step's refs file (always
/// written, even empty), outside this backup's own directory.
pub(super) async fn check_earlier_files(
    ctx: &Context,
    target: &Target,
    manifest: &Manifest,
) -> Result<(), CreateError> {
    let StepKeys { refs, .. } =
        layout::step_keys(&target.storage_name, &target.path, &target.id, 1);
    let own_directory = refs
        .as_str()
        .rsplit_once('/')
        .map_or(String::new(), |(dir, _)| format!("{dir}/"));
    let recorded = manifest.gitbak.iter().flat_map(|info| &info.files);
    let mut earlier: Vec<&str> = recorded
        .map(|file| file.path.as_str())
        .chain(manifest.steps.iter().map(|step| step.ref_path.as_str()))
        .filter(|path| !path.is_empty() && !path.starts_with(&own_directory))
        .collect();
    earlier.sort_unstable();
    earlier.dedup();
    // In batches rather than a stream: a stream's closure would make the
    // job's future `Send` for one lifetime only.
    for batch in earlier.chunks(CHECKS_IN_FLIGHT) {
        let checks: Vec<_> = batch.iter().map(|path| require(ctx, path)).collect();
        futures::future::try_join_all(checks).await?;
    }
    Ok(())
}

async fn require(ctx: &Context, path: &str) -> Result<(), CreateError> {
    let key = Key::new(path)?;
    match ctx.storage.head(&key).await? {
        Some(_) => Ok(()),
        None => Err(CreateError::EarlierFileGone {
            key: key.to_string(),
        }),
    }
}
