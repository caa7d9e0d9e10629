//! One step's files: the bundle, the refs file and the hooks archive,
//! written side by side (or bundle first on write-once storage), and taken
//! back together when one of them fails.

use crate::git::refs::RefsSnapshot;
use crate::layout::manifest::{FileDigest, Step};
use crate::layout::{self, StepKeys};
use crate::storage::digest::digest_of;
use crate::storage::{Key, StorageError, StorageExt, WriteMode};

use super::bundle::{upload_bundle, BundleSpec};
use super::{Context, CreateError, Target};

/// Step `number` of this id's backup; `previous_ref_path` names the refs
/// file of the step before it (increments only).
pub(super) fn new_step(target: &Target, number: usize, previous_ref_path: String) -> Step {
    let number = u32::try_from(number).unwrap_or(u32::MAX);
    let keys = layout::step_keys(&target.storage_name, &target.path, &target.id, number);
    Step {
        bundle_path: keys.bundle.to_string(),
        ref_path: keys.refs.to_string(),
        previous_ref_path,
        custom_hooks_path: keys.custom_hooks.to_string(),
    }
}

/// Writes a step's files (the bundle when there is one, the refs file,
/// the hooks archive when there are hooks) and returns their digests.
pub(super) async fn write_step(
    ctx: &Context,
    target: &Target,
    step: &Step,
    refs: &RefsSnapshot,
    hooks: Option<Vec<u8>>,
    bundle: Option<BundleSpec>,
) -> Result<Vec<FileDigest>, CreateError> {
    let keys = StepKeys {
        bundle: Key::new(step.bundle_path.clone())?,
        refs: Key::new(step.ref_path.clone())?,
        custom_hooks: Key::new(step.custom_hooks_path.clone())?,
    };
    let bundle = async {
        match &bundle {
            None => Ok(None),
            Some(spec) => upload_bundle(ctx, target, &keys.bundle, spec)
                .await
                .map(Some),
        }
    };
    let refs_file = put_small(ctx, target, &keys.refs, refs.bytes.clone());
    let hooks = async {
        match hooks {
            Some(bytes) => put_small(ctx, target, &keys.custom_hooks, bytes)
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let (bundle, refs_file, hooks) = if ctx.immutable {
        // Write-once storage cannot take a file back: the bundle, the one
        // that can fail on git, goes first, and the others only after it.
        let bundle = bundle.await?;
        (Ok(bundle), refs_file.await, hooks.await)
    } else {
        // The small files land (and wait for their fsyncs) while git packs.
        tokio::join!(bundle, refs_file, hooks)
    };
    if bundle.is_err() || refs_file.is_err() || hooks.is_err() {
        // Take back what this attempt wrote, so that a rerun with the same
        // id starts clean even if the repository changes before it.
        let written = [
            refs_file.as_ref().ok(),
            hooks.as_ref().ok().and_then(Option::as_ref),
        ];
        for file in written.into_iter().flatten().filter(|file| file.created) {
            if let Ok(key) = Key::new(file.digest.path.clone()) {
                let _ = ctx.storage.delete(&key).await;
            }
        }
    }
    let (bundle, refs_file, hooks) = (bundle?, refs_file?, hooks?);
    crate::failpoint::hit("create-before-manifest");
    Ok(bundle
        .into_iter()
        .chain(Some(refs_file.digest))
        .chain(hooks.map(|hooks| hooks.digest))
        .collect())
}

/// A small file of a step, and whether this attempt created it (rather
/// than finding it from an interrupted run).
pub(super) struct Written {
    pub digest: FileDigest,
    pub created: bool,
}

/// Writes a small file create-only; one left by an interrupted run of the
/// same id is accepted only if its bytes are the same.
pub(super) async fn put_small(
    ctx: &Context,
    target: &Target,
    key: &Key,
    bytes: Vec<u8>,
) -> Result<Written, CreateError> {
    let digest = digest_of(&bytes);
    let created = match ctx
        .storage
        .put_bytes(key, bytes.clone(), WriteMode::CreateOnly)
        .await
    {
        Ok(_) => true,
        Err(StorageError::AlreadyExists { key }) => {
            let existing = ctx.storage.get_bytes(&Key::new(key.clone())?).await?;
            if existing != bytes {
                return Err(CreateError::Orphan {
                    key,
                    id: target.id.to_string(),
                });
            }
            false
        }
        Err(error) => return Err(error.into()),
    };
    Ok(Written {
        digest: FileDigest {
            path: key.to_string(),
            size: digest.size,
            sha256: digest.sha256,
        },
        created,
    })
}
