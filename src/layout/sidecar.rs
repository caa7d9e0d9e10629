//! Sidecars: the pack index files gitbak stores beside a step's bundle.
//!
//! A bundle is a header followed by one pack. When create can vouch for
//! that pack's index (the `.idx` of the very pack it copied, or one it
//! wrote), it stores the index files beside the bundle, so a restore can
//! place the pack and its index straight into the repository instead of
//! re-indexing every object with `git index-pack`:
//!
//! - `<nnn>.idx`: the pack's index (required for the fast restore);
//! - `<nnn>.rev`: its reverse index (optional);
//! - `<nnn>.bitmap`: its reachability bitmap (optional, below a size).
//!
//! The bundle stays the primary artifact: gitaly-backup ignores sidecars
//! (its manifest schema does not name them) and restores from the bundle.
//! gitbak lists each sidecar in the manifest's `[[gitbak.files]]` with its
//! size and SHA-256, which is how list, prune and verify know them and how
//! an unchanged backup carries them forward. A sidecar belongs to the step
//! whose bundle path it shares its stem with. Pure: no I/O.

use super::manifest::{FileDigest, Manifest, Step};

/// One kind of pack index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SidecarKind {
    Idx,
    Rev,
    Bitmap,
}

impl SidecarKind {
    pub const ALL: [SidecarKind; 3] = [SidecarKind::Idx, SidecarKind::Rev, SidecarKind::Bitmap];

    /// The file extension, the same git gives the file in `objects/pack`.
    pub fn extension(self) -> &'static str {
        match self {
            SidecarKind::Idx => "idx",
            SidecarKind::Rev => "rev",
            SidecarKind::Bitmap => "bitmap",
        }
    }
}

/// `<base>.bundle` → `<base>.<extension>`; `None` for a path that is not a
/// bundle's.
pub fn sidecar_path(bundle_path: &str, kind: SidecarKind) -> Option<String> {
    let stem = bundle_path.strip_suffix(".bundle")?;
    if stem.is_empty() || stem.ends_with('/') {
        return None;
    }
    Some(format!("{stem}.{}", kind.extension()))
}

/// Whether `path` is a sidecar of `bundle_path`.
pub fn is_sidecar_of(path: &str, bundle_path: &str) -> bool {
    SidecarKind::ALL
        .into_iter()
        .any(|kind| sidecar_path(bundle_path, kind).is_some_and(|sidecar| sidecar == path))
}

/// The sidecars a manifest records for one step's bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sidecars<'a> {
    pub idx: &'a FileDigest,
    pub rev: Option<&'a FileDigest>,
    pub bitmap: Option<&'a FileDigest>,
}

impl<'a> Sidecars<'a> {
    /// Every recorded sidecar, with its kind.
    pub fn files(&self) -> impl Iterator<Item = (SidecarKind, &'a FileDigest)> {
        [
            (SidecarKind::Idx, Some(self.idx)),
            (SidecarKind::Rev, self.rev),
            (SidecarKind::Bitmap, self.bitmap),
        ]
        .into_iter()
        .filter_map(|(kind, file)| file.map(|file| (kind, file)))
    }
}

impl Manifest {
    /// The sidecars recorded for `step`'s bundle: `None` without an
    /// `.idx` (a `.rev` or `.bitmap` alone is no use to a restore).
    pub fn sidecars(&self, step: &Step) -> Option<Sidecars<'_>> {
        let find = |kind| {
            let path = sidecar_path(&step.bundle_path, kind)?;
            self.digest(&path)
        };
        Some(Sidecars {
            idx: find(SidecarKind::Idx)?,
            rev: find(SidecarKind::Rev),
            bitmap: find(SidecarKind::Bitmap),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::manifest::GitbakInfo;

    fn file(path: &str) -> FileDigest {
        FileDigest {
            path: path.to_owned(),
            size: 1,
            sha256: "00".repeat(32),
        }
    }

    #[test]
    fn sidecars_share_the_bundles_stem() {
        let bundle = "default/@hashed/ab/cd/x.git/20260101/001.bundle";
        assert_eq!(
            sidecar_path(bundle, SidecarKind::Idx).as_deref(),
            Some("default/@hashed/ab/cd/x.git/20260101/001.idx")
        );
        assert_eq!(
            sidecar_path(bundle, SidecarKind::Bitmap).as_deref(),
            Some("default/@hashed/ab/cd/x.git/20260101/001.bitmap")
        );
        assert!(is_sidecar_of("a/001.rev", "a/001.bundle"));
        assert!(!is_sidecar_of("a/002.rev", "a/001.bundle"));
        assert!(!is_sidecar_of("a/001.refs", "a/001.bundle"));
        assert_eq!(sidecar_path("a/001.refs", SidecarKind::Idx), None);
        assert_eq!(sidecar_path("a/.bundle", SidecarKind::Idx), None);
    }

    #[test]
    fn a_step_has_sidecars_only_with_an_idx() {
        let step = Step {
            bundle_path: "s/r/1/001.bundle".into(),
            ref_path: "s/r/1/001.refs".into(),
            ..Step::default()
        };
        let mut manifest = Manifest {
            steps: vec![step.clone()],
            gitbak: Some(GitbakInfo {
                files: vec![file("s/r/1/001.bundle"), file("s/r/1/001.rev")],
                ..GitbakInfo::default()
            }),
            ..Manifest::default()
        };
        assert_eq!(manifest.sidecars(&step), None);
        let info = manifest.gitbak.as_mut().unwrap();
        info.files.push(file("s/r/1/001.idx"));
        let sidecars = manifest.sidecars(&step).expect("an idx is recorded");
        assert_eq!(sidecars.idx.path, "s/r/1/001.idx");
        assert_eq!(sidecars.rev.map(|f| f.path.as_str()), Some("s/r/1/001.rev"));
        assert_eq!(sidecars.bitmap, None);
        let kinds: Vec<_> = sidecars.files().map(|(kind, _)| kind).collect();
        assert_eq!(kinds, [SidecarKind::Idx, SidecarKind::Rev]);
    }
}
