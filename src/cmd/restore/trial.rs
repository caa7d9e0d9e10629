//! A trial restore for `verify --deep`: a backup rebuilt in a scratch
//! directory nothing else uses, through the same steps and checks as a
//! real restore (every file against its recorded digest, each bundle's
//! prerequisites, connectivity, refs settled from the last refs file),
//! then removed. No placement, hooks, ownership or free-space check, and
//! never a live repository.

use std::path::Path;

use crate::git::refs::RefsSnapshot;
use crate::job::Job;
use crate::layout::manifest::Manifest;
use crate::node::place::{CreatedDirs, TempDir};

use super::build::Build;
use super::{formats, Context, Restore, RestoreError};

/// Rebuilds `manifest`'s repository in a new directory under `parent` and
/// returns the refs it ended with (`git show-ref --head`), or why it
/// cannot be rebuilt (one line; a git failure ends with git's last stderr
/// line). The directory is removed before this returns, and also when the
/// future is dropped (an interrupt): the removal then waits, on
/// `ctx.unstoppable`, for the git processes writing into it to exit.
pub async fn trial_restore(
    ctx: &Context,
    job: &Job,
    manifest: &Manifest,
    parent: &Path,
) -> Result<RefsSnapshot, String> {
    let name = job
        .relative_path
        .rsplit('/')
        .next()
        .filter(|name| !name.is_empty())
        .unwrap_or("repository");
    let build = Build::new(
        TempDir::beside(parent, name),
        CreatedDirs::default(),
        ctx.unstoppable.clone(),
    );
    let restore = Restore {
        ctx,
        job,
        manifest,
        repository: build.path().to_path_buf(),
        storage_root: parent.to_path_buf(),
    };
    let built = async {
        let (object_format, ref_format) = formats(manifest)?;
        restore
            .build(build.path(), object_format, ref_format)
            .await?;
        Ok::<_, RestoreError>(ctx.git.snapshot_refs_with_git(build.path()).await?)
    }
    .await;
    build.discard().await;
    built.map_err(|error| error.to_string())
}
