//! The build directory of a restore and what dead runs left beside the
//! repository: cleaning up before a restore starts, and removing a build
//! that failed or was cancelled without racing git or blocking async threads.

use std::path::{Path, PathBuf};

use tokio_util::task::TaskTracker;

use crate::job::progress::{CommandName, Event};
use crate::job::Job;
use crate::node::leftovers;
use crate::node::place::{CreatedDirs, TempDir};

use super::{Context, RestoreError};

/// Cleans the repository's parent of what dead runs on this host left
/// there (`leftovers::sweep`), saying in the job's log what it repaired.
pub(super) async fn sweep_leftovers(
    ctx: &Context,
    job: &Job,
    repository: &Path,
) -> Result<(), RestoreError> {
    let (Some(parent), Some(name)) = (repository.parent(), repository.file_name()) else {
        return Ok(());
    };
    let (parent, name) = (parent.to_path_buf(), name.to_string_lossy().into_owned());
    let swept = ctx
        .run_to_end(move || leftovers::sweep(&parent, &name))
        .await
        .map_err(|error| RestoreError::Backup(error.to_string()))??;
    let warn = |message: &str| {
        ctx.progress
            .job_event(CommandName::Restore, job, Event::Warning { message })
    };
    if let Some(path) = &swept.put_back {
        warn(&format!(
            "moved {} back in place: an interrupted restore had moved it aside",
            path.display()
        ));
    }
    for failure in &swept.failed {
        warn(&format!(
            "cannot clean up after an interrupted restore: {failure}"
        ));
    }
    for removed in &swept.removed {
        tracing::debug!(path = %removed.display(), "removed a leftover of an interrupted restore");
    }
    Ok(())
}

/// The build directory while async code fills it, with the parent
/// directories made for it (or a trial restore's scratch directory,
/// `trial`, which has none).
///
/// Its removal never runs on an async thread, nor while git may still
/// write into it: dropped (an error, or the job's future dropped when the
/// run is cancelled) it hands the removal to a blocking task the run waits
/// for, and that task first waits until no git of this gitbak runs in the
/// directory (a dropped git is killed but not yet reaped). Placement takes
/// the directory out, so nothing removes it while the swap runs.
pub(super) struct Build {
    path: PathBuf,
    parts: Option<(TempDir, CreatedDirs)>,
    unstoppable: TaskTracker,
}

impl Build {
    pub(super) fn new(temp: TempDir, created: CreatedDirs, unstoppable: TaskTracker) -> Self {
        Self {
            path: temp.path().to_path_buf(),
            parts: Some((temp, created)),
            unstoppable,
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn into_parts(mut self) -> (TempDir, CreatedDirs) {
        self.parts
            .take()
            .expect("only into_parts, discard and drop take the parts, each consuming the Build")
    }

    /// Removes the build directory and the parents made for it, and waits
    /// until that is done.
    pub(super) async fn discard(mut self) {
        if let Some(parts) = self.parts.take() {
            let _ = self.unstoppable.spawn_blocking(move || remove(parts)).await;
        }
    }
}

impl Drop for Build {
    fn drop(&mut self) {
        if let Some(parts) = self.parts.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // A runtime shutting down drops the closure unrun; TempDir's
                // own Drop then removes it, on this thread.
                self.unstoppable.spawn_blocking(move || remove(parts));
            } else {
                remove(parts);
            }
        }
    }
}

fn remove((temp, created): (TempDir, CreatedDirs)) {
    let _ = temp.remove();
    created.remove();
}
