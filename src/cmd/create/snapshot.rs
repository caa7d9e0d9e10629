//! What create reads of a repository before it decides what to write: the
//! refs, the moment they were read, the identity and the hooks archive.
//!
//! In the common case (an existing files-backend repository) all of it is
//! read from the repository's files in one trip to the blocking pool: at a
//! thousand unchanged repositories, every extra trip is a measurable share
//! of the run (#10). Whatever the file reader leaves to git is asked of git.

use std::path::Path;

use crate::git::refs::{RefsSnapshot, RepositoryIdentity};
use crate::git::refs_files::read_repository;
use crate::node::{hooks, NodeError};

use super::{Context, CreateError, Target};

/// A repository as create found it.
pub(super) enum Snapshot {
    Missing,
    Found {
        refs: RefsSnapshot,
        /// When the refs were read (Unix seconds): the backup's time.
        read_at: i64,
        identity: RepositoryIdentity,
        hooks: Option<Vec<u8>>,
    },
}

pub(super) async fn take(ctx: &Context, target: &Target) -> Result<Snapshot, CreateError> {
    let path = target.repository.clone();
    let now = ctx.now;
    let read = tokio::task::spawn_blocking(move || -> Result<_, CreateError> {
        if !repository_exists(&path)? {
            return Ok(None);
        }
        let from_files = read_repository(&path).map(|read| (read, now()));
        if let Err(reason) = &from_files {
            tracing::debug!(%reason, "refs read by git");
        }
        let hooks = hooks::archive(&path)?;
        Ok(Some((from_files.ok(), hooks)))
    })
    .await
    .map_err(|error| NodeError::Invalid(format!("reading the repository failed: {error}")))??;
    let Some((from_files, hooks)) = read else {
        return Ok(Snapshot::Missing);
    };
    let ((refs, identity), read_at) = match from_files {
        Some(read) => read,
        None => {
            let refs = ctx.git.snapshot_refs_with_git(&target.repository).await?;
            let read_at = (ctx.now)();
            let identity = ctx.git.identity(&target.repository).await?;
            ((refs, identity), read_at)
        }
    };
    Ok(Snapshot::Found {
        refs,
        read_at,
        identity,
        hooks,
    })
}

/// Whether the repository exists; one gitbak may not read is an error that
/// says so, rather than git's "not a git repository".
fn repository_exists(path: &Path) -> Result<bool, CreateError> {
    let denied = |source: std::io::Error| {
        CreateError::Node(NodeError::Invalid(format!(
            "cannot read repository {}: {source}; run gitbak as the user that owns the \
             repositories (usually git) or as root",
            path.display()
        )))
    };
    match std::fs::metadata(path) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(denied(error)),
    }
    for probe in ["HEAD", "objects", "refs"] {
        match std::fs::symlink_metadata(path.join(probe)) {
            Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(denied(error))
            }
            _ => {}
        }
    }
    if let Err(error) = std::fs::File::open(path.join("HEAD")) {
        if error.kind() == std::io::ErrorKind::PermissionDenied {
            return Err(denied(error));
        }
    }
    Ok(true)
}
