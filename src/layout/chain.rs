//! Incremental chains: whether a new backup may continue its base's chain,
//! and the manifest that continues it (spec §5.1).
//!
//! Pure: no I/O and no clock. The base is the manifest gitaly-backup 19.0
//! would pick; `cmd::create` finds it and reads the repository.

use super::manifest::{FileDigest, Manifest, Step};

/// Why a backup starts a new chain (step 001 under its own id) instead of
/// continuing its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewChain {
    /// The base recorded a repository that did not exist: there is nothing
    /// to build on. gitaly-backup fails every later increment here (§5.1).
    NonExistentBase,
    /// The base had no refs. gitaly-backup keeps `empty = true` on the
    /// increments, so a restore recreates an empty repository (§5.1).
    EmptyBase,
    /// The base lists no step, or its last step names no refs file.
    NoRefsFile,
    /// The repository's object format is not the base's.
    ObjectFormat,
    /// The chain already has `--max-chain` steps.
    ChainFull,
    /// The increments together are larger than the full bundle: a new full
    /// backup is cheaper to restore than replaying them.
    Outgrown,
}

impl NewChain {
    pub fn reason(self) -> &'static str {
        match self {
            Self::NonExistentBase => "the base backup recorded no repository",
            Self::EmptyBase => "the base backup is of an empty repository",
            Self::NoRefsFile => "the base backup names no refs file",
            Self::ObjectFormat => "the object format changed",
            Self::ChainFull => "the chain reached --max-chain steps",
            Self::Outgrown => "the increments outgrew the full backup",
        }
    }
}

/// Whether the base can be continued at all, before looking at what
/// changed: a base that recorded no repository cannot.
pub fn usable_base<'a>(base: &'a Manifest, object_format: &str) -> Result<&'a Step, NewChain> {
    if base.non_existent {
        return Err(NewChain::NonExistentBase);
    }
    let last = base.steps.last().ok_or(NewChain::NoRefsFile)?;
    if last.ref_path.is_empty() {
        return Err(NewChain::NoRefsFile);
    }
    if base.object_format != object_format {
        return Err(NewChain::ObjectFormat);
    }
    Ok(last)
}

/// Whether a new step may be added to the base's chain. Checked only when
/// the repository changed: an unchanged repository adds no step, so it
/// reuses even a full or empty chain.
pub fn may_extend(base: &Manifest, max_chain: u32) -> Result<(), NewChain> {
    if base.empty {
        return Err(NewChain::EmptyBase);
    }
    if base.steps.len() >= max_chain as usize {
        return Err(NewChain::ChainFull);
    }
    if outgrown(base) {
        return Err(NewChain::Outgrown);
    }
    Ok(())
}

/// The increments' bundles together are larger than the first step's,
/// by the sizes gitbak recorded. A chain whose full backup gitaly-backup
/// wrote has no size for it, and is bounded by `--max-chain` alone.
fn outgrown(base: &Manifest) -> bool {
    let size = |step: &Step| base.digest(&step.bundle_path).map(|file| file.size);
    let Some((full, increments)) = base.steps.split_first() else {
        return false;
    };
    let Some(full) = size(full) else {
        return false;
    };
    increments.iter().filter_map(size).sum::<u64>() > full
}

/// The digests the new manifest carries for the base's steps: every one
/// the base recorded for a file its steps name, and their bundles' sidecars.
pub fn base_files(base: &Manifest) -> Vec<FileDigest> {
    let Some(gitbak) = &base.gitbak else {
        return Vec::new();
    };
    let named = |path: &str| {
        base.steps.iter().any(|step| {
            [&step.bundle_path, &step.ref_path, &step.custom_hooks_path]
                .iter()
                .any(|named| named.as_str() == path)
                || super::sidecar::is_sidecar_of(path, &step.bundle_path)
        })
    };
    gitbak
        .files
        .iter()
        .filter(|file| named(&file.path))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::manifest::GitbakInfo;

    fn step(n: u32) -> Step {
        Step {
            bundle_path: format!("s/r/{n}/00{n}.bundle"),
            ref_path: format!("s/r/{n}/00{n}.refs"),
            previous_ref_path: String::new(),
            custom_hooks_path: format!("s/r/{n}/00{n}.custom_hooks.tar"),
        }
    }

    fn chain(bundle_sizes: &[u64]) -> Manifest {
        let steps: Vec<Step> = (1..=bundle_sizes.len() as u32).map(step).collect();
        let mut files: Vec<FileDigest> = steps
            .iter()
            .zip(bundle_sizes)
            .map(|(step, size)| FileDigest {
                path: step.bundle_path.clone(),
                size: *size,
                sha256: "00".into(),
            })
            .collect();
        files.push(FileDigest {
            path: "elsewhere".into(),
            size: 1,
            sha256: "11".into(),
        });
        Manifest {
            object_format: "sha1".into(),
            steps,
            gitbak: Some(GitbakInfo {
                files,
                ..GitbakInfo::default()
            }),
            ..Manifest::default()
        }
    }

    #[test]
    fn bases_that_cannot_be_continued() {
        let base = chain(&[100]);
        assert_eq!(
            usable_base(&base, "sha1").map(|last| last.ref_path.as_str()),
            Ok("s/r/1/001.refs")
        );
        assert_eq!(
            usable_base(&base, "sha256").err(),
            Some(NewChain::ObjectFormat)
        );
        let gone = Manifest {
            non_existent: true,
            ..base.clone()
        };
        assert_eq!(
            usable_base(&gone, "sha1").err(),
            Some(NewChain::NonExistentBase)
        );
        let mut no_refs = base.clone();
        no_refs.steps[0].ref_path.clear();
        assert_eq!(
            usable_base(&no_refs, "sha1").err(),
            Some(NewChain::NoRefsFile)
        );
        let empty = Manifest {
            empty: true,
            ..base
        };
        assert_eq!(may_extend(&empty, 14), Err(NewChain::EmptyBase));
    }

    #[test]
    fn chains_are_bounded_by_length_and_size() {
        assert_eq!(may_extend(&chain(&[100, 10, 10]), 4), Ok(()));
        assert_eq!(
            may_extend(&chain(&[100, 10, 10, 10]), 4),
            Err(NewChain::ChainFull)
        );
        assert_eq!(may_extend(&chain(&[100, 60, 40]), 14), Ok(()));
        assert_eq!(
            may_extend(&chain(&[100, 60, 41]), 14),
            Err(NewChain::Outgrown)
        );
        // gitaly-backup's manifests record no sizes: length alone.
        let gitaly = Manifest {
            gitbak: None,
            ..chain(&[1, 5, 5])
        };
        assert_eq!(may_extend(&gitaly, 14), Ok(()));
        // A gitaly-backup full backup continued by gitbak: no size for it.
        let mut mixed = chain(&[1, 5, 5]);
        let full = mixed.steps[0].bundle_path.clone();
        if let Some(gitbak) = &mut mixed.gitbak {
            gitbak.files.retain(|file| file.path != full);
        }
        assert_eq!(may_extend(&mixed, 14), Ok(()));
    }

    #[test]
    fn base_files_keep_only_what_the_steps_name() {
        let files = base_files(&chain(&[3, 4]));
        assert_eq!(files.len(), 2);
        assert!(files.iter().all(|file| file.path != "elsewhere"));
        assert!(base_files(&Manifest::default()).is_empty());
    }

    #[test]
    fn base_files_carry_the_sidecars_of_the_steps_bundles() {
        let mut base = chain(&[3, 4]);
        let info = base.gitbak.as_mut().unwrap();
        for path in ["s/r/1/001.idx", "s/r/1/001.bitmap", "s/r/9/009.idx"] {
            info.files.push(FileDigest {
                path: path.into(),
                size: 1,
                sha256: String::new(),
            });
        }
        let paths: Vec<String> = base_files(&base).into_iter().map(|f| f.path).collect();
        assert!(paths.contains(&"s/r/1/001.idx".to_owned()), "{paths:?}");
        assert!(paths.contains(&"s/r/1/001.bitmap".to_owned()), "{paths:?}");
        assert!(!paths.contains(&"s/r/9/009.idx".to_owned()), "{paths:?}");
    }
}
