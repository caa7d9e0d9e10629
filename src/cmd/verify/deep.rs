//! `verify --deep`: one backup restored into a scratch directory under the
//! system temp dir (`$TMPDIR/gitbak-verify`) by restore's own code, then its refs
//! compared with the last refs file. The scratch directory is removed
//! before the next backup starts, on failure and on interrupt too
//! (`restore::trial_restore`). At most `DEEP_RESTORES_IN_FLIGHT` run at
//! once: git's index-pack already uses every core.

use std::collections::BTreeMap;

use tokio::sync::Semaphore;

use super::{Problem, ProblemKind};
use crate::cmd::restore::trial_restore;
use crate::cmd::Context;
use crate::git::refs::{parse_ref_lines, RefLine};
use crate::job::Job;
use crate::layout::catalog::Repository;
use crate::layout::manifest::Manifest;
use crate::storage::{Key, StorageExt};

/// Trial restores at once, over the whole run.
const DEEP_RESTORES_IN_FLIGHT: usize = 1;

/// Differences between restored and recorded refs shown in one problem.
const REFS_SHOWN: usize = 3;

/// `$TMPDIR/gitbak-verify`, private, cleared of what killed runs of this
/// host left there (`node::leftovers`: a SIGKILL skips the removal), so
/// the next verify cleans up after the last.
fn prepare_scratch() -> Result<std::path::PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let scratch = std::env::temp_dir().join("gitbak-verify");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&scratch)
        .map_err(|error| format!("cannot create {}: {error}", scratch.display()))?;
    let swept = crate::node::leftovers::sweep(&scratch, "").map_err(|error| error.to_string())?;
    if let Some(failure) = swept.failed.first() {
        return Err(format!(
            "cannot clean up after an interrupted verify: {failure}"
        ));
    }
    Ok(scratch)
}

/// Shared by every backup of one run.
pub(super) fn slots() -> Semaphore {
    Semaphore::new(DEEP_RESTORES_IN_FLIGHT)
}

/// The problems a trial restore of `manifest` finds; none when it
/// restores and its refs are the refs file's.
pub(super) async fn restore(
    ctx: &Context,
    slots: &Semaphore,
    repository: &Repository,
    manifest: &Manifest,
) -> Vec<Problem> {
    let Ok(_slot) = slots.acquire().await else {
        return Vec::new();
    };
    let job = Job {
        storage_name: repository.storage.to_string(),
        relative_path: repository.path.to_string(),
        ..Job::default()
    };
    let prepared = ctx
        .run_to_end(prepare_scratch)
        .await
        .unwrap_or_else(|error| Err(error.to_string()));
    let scratch = match prepared {
        Ok(scratch) => scratch,
        Err(detail) => {
            return vec![Problem {
                kind: ProblemKind::DeepRestore,
                file: None,
                step: None,
                detail,
            }]
        }
    };
    let restored = match trial_restore(ctx, &job, manifest, &scratch).await {
        Ok(refs) => refs,
        Err(reason) => {
            return vec![Problem {
                kind: ProblemKind::DeepRestore,
                file: None,
                step: None,
                detail: reason,
            }]
        }
    };
    let Some(refs_path) = manifest
        .steps
        .last()
        .map(|step| step.ref_path.as_str())
        .filter(|path| !path.is_empty())
    else {
        // Legacy backups without a refs file: the bundle's refs are all.
        return Vec::new();
    };
    let recorded = match read_refs(ctx, refs_path).await {
        Ok(recorded) => recorded,
        Err(detail) => {
            return vec![Problem {
                kind: ProblemKind::ReadError,
                file: Some(refs_path.to_owned()),
                step: Some(manifest.steps.len()),
                detail,
            }]
        }
    };
    compare_refs(&restored.lines, &recorded)
        .map(|detail| Problem {
            kind: ProblemKind::RefsMismatch,
            file: Some(refs_path.to_owned()),
            step: Some(manifest.steps.len()),
            detail,
        })
        .into_iter()
        .collect()
}

async fn read_refs(ctx: &Context, path: &str) -> Result<Vec<RefLine>, String> {
    let key = Key::new(path.to_owned()).map_err(|error| error.to_string())?;
    let bytes = ctx
        .storage
        .get_bytes(&key)
        .await
        .map_err(|error| error.to_string())?;
    parse_ref_lines(&bytes).map_err(|error| error.to_string())
}

/// `None` when the restored refs (HEAD aside: restore points it by name)
/// are the recorded ones; else the first differences, in one line.
fn compare_refs(restored: &[RefLine], recorded: &[RefLine]) -> Option<String> {
    let map = |lines: &[RefLine]| -> BTreeMap<String, String> {
        lines
            .iter()
            .filter(|line| line.name != "HEAD")
            .map(|line| (line.name.clone(), line.object_id.clone()))
            .collect()
    };
    let (restored, recorded) = (map(restored), map(recorded));
    let names: std::collections::BTreeSet<&String> =
        restored.keys().chain(recorded.keys()).collect();
    let differences: Vec<String> = names
        .into_iter()
        .filter_map(|name| match (restored.get(name), recorded.get(name)) {
            (Some(a), Some(b)) if a == b => None,
            (Some(a), Some(b)) => Some(format!("{name} restored at {a}, recorded at {b}")),
            (Some(_), None) => Some(format!("{name} restored, not recorded")),
            (None, Some(_)) => Some(format!("{name} recorded, not restored")),
            (None, None) => None,
        })
        .collect();
    if differences.is_empty() {
        return None;
    }
    let mut detail = differences[..differences.len().min(REFS_SHOWN)].join("; ");
    if differences.len() > REFS_SHOWN {
        detail.push_str(&format!("; {} more", differences.len() - REFS_SHOWN));
    }
    Some(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(object_id: &str, name: &str) -> RefLine {
        RefLine {
            object_id: object_id.into(),
            name: name.into(),
        }
    }

    #[test]
    fn refs_compare_by_name_without_head() {
        let recorded = [line("a", "HEAD"), line("a", "refs/heads/main")];
        assert_eq!(compare_refs(&recorded[1..], &recorded), None);
        let restored = [line("b", "refs/heads/main"), line("c", "refs/tags/v1")];
        assert_eq!(
            compare_refs(&restored, &recorded).unwrap(),
            "refs/heads/main restored at b, recorded at a; refs/tags/v1 restored, not recorded"
        );
    }
}
