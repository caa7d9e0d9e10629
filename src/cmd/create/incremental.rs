//! `create --incremental`: which step a repository's backup writes, if any
//! (spec §5).
//!
//! The base is found as gitaly-backup 19.0 finds it: the latest backup id
//! marker, read once per run, then the repository's newest manifest. An
//! unchanged repository costs two digests compared with what the base
//! recorded, and no storage read unless the base was written by
//! gitaly-backup (which records no digests). Anything that makes the base
//! unfit to build on starts a new full chain: a full backup is always
//! correct, only larger.

use std::collections::HashSet;

use crate::git::bundle::increment_bundle_header;
use crate::git::refs::{RefLine, RefsSnapshot, RepositoryIdentity};
use crate::layout::chain::{self, NewChain};
use crate::layout::manifest::{Manifest, Step};
use crate::layout::BackupId;
use crate::storage::digest::digest_of;
use crate::storage::{Key, StorageExt};

use super::bundle::BundleSpec;
use super::{Context, CreateError, IncrementalOptions, Target};
use crate::cmd::backups::{self, FindError};

/// What this run writes for one repository.
pub(super) enum Plan {
    /// Step 001 under this id: no base, or one that cannot be built on.
    Full,
    /// Nothing but HEAD changed: the base's steps, and no new one.
    Reuse(Manifest),
    /// A new step after the base's; `previous` is the base's last refs file.
    Increment {
        base: Manifest,
        previous: RefsSnapshot,
    },
}

/// The repository as just read.
pub(super) struct Current<'a> {
    pub refs: &'a RefsSnapshot,
    pub identity: &'a RepositoryIdentity,
    pub hooks: Option<&'a [u8]>,
}

/// The newest `backup_ids/` marker, read once per run (spec §3.5); as in
/// gitaly-backup, a failure only means each repository is looked up alone.
pub(super) async fn latest_backup_id(ctx: &Context) -> Option<BackupId> {
    match backups::latest_backup_id(ctx.storage.as_ref()).await {
        Ok(id) => id,
        Err(error) => {
            let error = error.to_string();
            ctx.progress.run_warning(
                "read latest backup ID failed, will fallback to individual repository lookups",
                &[("error", error.as_str())],
            );
            None
        }
    }
}

/// What to write, given the base `find_base` found.
pub(super) async fn plan(
    ctx: &Context,
    target: &Target,
    options: &IncrementalOptions,
    base: Option<Manifest>,
    current: &Current<'_>,
) -> Result<Plan, CreateError> {
    let Some(base) = base else {
        return Ok(Plan::Full);
    };
    let last = match chain::usable_base(&base, current.identity.object_format.name()) {
        Ok(last) => last.clone(),
        Err(reason) => return Ok(new_chain(target, reason)),
    };
    let mut previous = None;
    let refs_unchanged = match base.digest(&last.ref_path) {
        Some(file) if file.sha256 == digest_of(&current.refs.bytes).sha256 => true,
        _ => {
            let Some(read) = read_previous_refs(ctx, &base, &last).await? else {
                return Ok(new_chain(target, NewChain::NoRefsFile));
            };
            let unchanged = only_head_moved(&read, current);
            previous = Some(read);
            unchanged
        }
    };
    if refs_unchanged && hooks_unchanged(ctx, &base, &last, current.hooks).await? {
        return Ok(Plan::Reuse(base));
    }
    if let Err(reason) = chain::may_extend(&base, options.max_chain) {
        return Ok(new_chain(target, reason));
    }
    if current.refs.is_empty() {
        // An empty repository's full backup is a 0-byte refs file.
        tracing::debug!(repository = %target.path, "new full backup: the repository is empty");
        return Ok(Plan::Full);
    }
    let previous = match previous {
        Some(previous) => previous,
        None => match read_previous_refs(ctx, &base, &last).await? {
            Some(previous) => previous,
            None => return Ok(new_chain(target, NewChain::NoRefsFile)),
        },
    };
    Ok(Plan::Increment { base, previous })
}

fn new_chain(target: &Target, reason: NewChain) -> Plan {
    tracing::debug!(repository = %target.path, reason = reason.reason(), "new full backup");
    Plan::Full
}

/// The latest backup in the manifest layout, `None` when there is none to
/// build on. A damaged manifest is not built on either: a new full backup
/// is the safe answer. Pointer and legacy backups are not continued.
pub(super) async fn find_base(
    ctx: &Context,
    target: &Target,
    latest_id: Option<&BackupId>,
) -> Result<Option<Manifest>, CreateError> {
    let storage = ctx.storage.as_ref();
    match backups::find_latest_manifest(storage, &target.storage_name, &target.path, latest_id)
        .await
    {
        Ok(found) if found.key.as_str().ends_with(".toml") => Ok(Some(found.manifest)),
        Ok(_) | Err(FindError::NoBackup { .. } | FindError::NoSuchBackup { .. }) => Ok(None),
        Err(error @ (FindError::BadManifest { .. } | FindError::BadPointer(_))) => {
            tracing::warn!(repository = %target.path, %error, "new full backup: the latest backup is unreadable");
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// The base's last refs file; `None` when it is missing, or differs from
/// the digest gitbak recorded for it (then it cannot be trusted as what
/// earlier steps hold).
async fn read_previous_refs(
    ctx: &Context,
    base: &Manifest,
    last: &Step,
) -> Result<Option<RefsSnapshot>, CreateError> {
    let key = Key::new(last.ref_path.clone())?;
    let bytes = match ctx.storage.get_bytes(&key).await {
        Ok(bytes) => bytes,
        Err(error) if error.is_not_found() => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    if let Some(recorded) = base.digest(&last.ref_path) {
        if recorded.sha256 != digest_of(&bytes).sha256 {
            return Ok(None);
        }
    }
    Ok(RefsSnapshot::parse(bytes).ok())
}

/// The refs are the base's but for the HEAD line, and HEAD is symbolic:
/// a restore takes HEAD from the manifest's `head_reference`, which the
/// new manifest records, so no step is needed. A detached HEAD lives in
/// the refs file's HEAD line only.
fn only_head_moved(previous: &RefsSnapshot, current: &Current<'_>) -> bool {
    current.identity.head_reference.is_some()
        && previous.without_head().eq(current.refs.without_head())
}

/// The hooks archive is the one the base's last step restores. gitbak's
/// base records its digest (none recorded: there were no hooks);
/// gitaly-backup's base is read.
async fn hooks_unchanged(
    ctx: &Context,
    base: &Manifest,
    last: &Step,
    hooks: Option<&[u8]>,
) -> Result<bool, CreateError> {
    let current = hooks.map(|bytes| digest_of(bytes).sha256);
    let recorded = match (&base.gitbak, last.custom_hooks_path.is_empty()) {
        (_, true) => None,
        (Some(_), false) => base
            .digest(&last.custom_hooks_path)
            .map(|file| file.sha256.clone()),
        (None, false) => {
            let key = Key::new(last.custom_hooks_path.clone())?;
            match ctx.storage.get_bytes(&key).await {
                Ok(bytes) => Some(digest_of(&bytes).sha256),
                Err(error) if error.is_not_found() => None,
                Err(error) => return Err(error.into()),
            }
        }
    };
    Ok(current == recorded)
}

/// The increment's bundle: the refs whose objects are new since the
/// previous step, over the boundary commits the earlier steps provide (as
/// `git bundle create` lists them), and a pack of what those refs reach
/// that the previous tips still in the repository do not. When no ref
/// points at a new object, the 17-byte header-only bundle, without git.
pub(super) async fn bundle_spec(
    ctx: &Context,
    target: &Target,
    identity: &RepositoryIdentity,
    refs: &RefsSnapshot,
    previous: &RefsSnapshot,
) -> Result<BundleSpec, CreateError> {
    let previous_ids: HashSet<&str> = previous
        .lines
        .iter()
        .map(|line| line.object_id.as_str())
        .collect();
    let new_refs: Vec<&RefLine> = refs
        .lines
        .iter()
        .filter(|line| !previous_ids.contains(line.object_id.as_str()))
        .collect();
    if new_refs.is_empty() {
        return Ok(BundleSpec {
            object_format: identity.object_format,
            header: increment_bundle_header(identity.object_format, &[], &[]),
            revisions: Vec::new(),
        });
    }
    let previous_ids: Vec<&str> = previous_ids.into_iter().collect();
    let present = ctx
        .git
        .present_objects(&target.repository, &previous_ids)
        .await?;
    let mut revisions: Vec<String> = new_refs.iter().map(|line| line.object_id.clone()).collect();
    revisions.sort_unstable();
    revisions.dedup();
    revisions.extend(present.iter().map(|id| format!("^{id}")));
    let lines: Vec<&str> = revisions.iter().map(String::as_str).collect();
    let prerequisites = ctx.git.boundary_commits(&target.repository, &lines).await?;
    Ok(BundleSpec {
        object_format: identity.object_format,
        header: increment_bundle_header(identity.object_format, &prerequisites, &new_refs),
        revisions,
    })
}
