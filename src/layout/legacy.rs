//! The layouts gitaly-backup wrote before manifests (spec §3.2, §3.3),
//! read-only: their keys, their `LATEST` pointer files, and the manifest a
//! restore follows for each, so the rest of restore knows one shape only.
//!
//! Both layouts drop the relative path's `.git` suffix and carry no storage
//! name. Neither records the object format (sha1 then) nor HEAD (the
//! restore infers it from the bundle). GitLab 18.10 dropped reading them;
//! an administrator restoring a years-old backup onto a new node needs
//! them. Pure: no I/O.

use super::manifest::{Manifest, Step};
use super::{BackupId, RelativePath};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LegacyError {
    #[error("{key}: {detail}")]
    BadPointer { key: String, detail: String },
}

/// Name of the pointer files: in the repository's directory, the latest
/// full backup's directory; in that directory, its latest step number.
pub const POINTER_NAME: &str = "LATEST";

/// The key prefix both layouts use for a repository: its relative path
/// without `.git`.
pub fn repository_prefix(path: &RelativePath) -> &str {
    path.as_str()
        .strip_suffix(".git")
        .filter(|rest| !rest.is_empty() && !rest.ends_with('/'))
        .unwrap_or(path.as_str())
}

/// `<path>/LATEST`: names the directory of the latest full backup.
pub fn latest_pointer_key(path: &RelativePath) -> String {
    format!("{}/{POINTER_NAME}", repository_prefix(path))
}

/// `<path>/<backup>/LATEST`: names the last step of that backup.
pub fn backup_pointer_key(path: &RelativePath, backup: &BackupId) -> String {
    format!("{}/{backup}/{POINTER_NAME}", repository_prefix(path))
}

/// A pointer file's value: its bytes without one trailing newline
/// (gitaly writes none, but a hand-edited file has one).
fn pointer_text<'a>(key: &str, bytes: &'a [u8]) -> Result<&'a str, LegacyError> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|_| LegacyError::BadPointer {
        key: key.to_owned(),
        detail: "not UTF-8".into(),
    })
}

/// The backup directory `<path>/LATEST` names.
pub fn parse_latest_backup(key: &str, bytes: &[u8]) -> Result<BackupId, LegacyError> {
    let text = pointer_text(key, bytes)?;
    if text.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(LegacyError::BadPointer {
            key: key.to_owned(),
            detail: format!("{text:?} is not a backup directory name"),
        });
    }
    BackupId::parse(text).map_err(|error| LegacyError::BadPointer {
        key: key.to_owned(),
        detail: error.to_string(),
    })
}

/// The step count `<path>/<backup>/LATEST` holds; like gitaly, anything
/// but a positive number is an error, not "no backup".
pub fn parse_step_count(key: &str, bytes: &[u8]) -> Result<u32, LegacyError> {
    let text = pointer_text(key, bytes)?;
    match text.parse::<u32>() {
        Ok(count) if count > 0 => Ok(count),
        _ => Err(LegacyError::BadPointer {
            key: key.to_owned(),
            detail: format!("determine increment ID: {text:?} is not a step number"),
        }),
    }
}

/// The pointer layout's backup `backup` with `steps` steps:
/// `<path>/<backup>/001.bundle` and so on, each increment in the same
/// directory as the full backup it extends.
pub fn pointer_manifest(path: &RelativePath, backup: &BackupId, steps: u32) -> Manifest {
    let base = format!("{}/{backup}", repository_prefix(path));
    let steps = (1..=steps)
        .map(|step| Step {
            bundle_path: format!("{base}/{step:03}.bundle"),
            ref_path: format!("{base}/{step:03}.refs"),
            previous_ref_path: if step > 1 {
                format!("{base}/{:03}.refs", step - 1)
            } else {
                String::new()
            },
            custom_hooks_path: format!("{base}/{step:03}.custom_hooks.tar"),
        })
        .collect();
    old_manifest(steps)
}

/// The legacy layout's one backup: `<path>.bundle`, `<path>.refs` and
/// `<path>/custom_hooks.tar`, overwritten by every run.
pub fn legacy_manifest(path: &RelativePath) -> Manifest {
    let prefix = repository_prefix(path);
    old_manifest(vec![Step {
        bundle_path: format!("{prefix}.bundle"),
        ref_path: format!("{prefix}.refs"),
        previous_ref_path: String::new(),
        custom_hooks_path: format!("{prefix}/custom_hooks.tar"),
    }])
}

fn old_manifest(steps: Vec<Step>) -> Manifest {
    Manifest {
        empty: false,
        non_existent: false,
        object_format: "sha1".into(),
        head_reference: None,
        steps,
        gitbak: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASHED: &str =
        "@hashed/4e/c9/4ec9599fc203d176a301536c2e091a19bc852759b255bd6818810a42c5fed14a";

    fn path(text: &str) -> RelativePath {
        RelativePath::parse(text).unwrap()
    }

    #[test]
    fn keys_drop_the_git_suffix() {
        let hashed = path(&format!("{HASHED}.git"));
        let id = BackupId::parse("20210930065413").unwrap();
        assert_eq!(latest_pointer_key(&hashed), format!("{HASHED}/LATEST"));
        assert_eq!(
            backup_pointer_key(&hashed, &id),
            format!("{HASHED}/20210930065413/LATEST")
        );
        assert_eq!(
            latest_pointer_key(&path("group/site.wiki.git")),
            "group/site.wiki/LATEST"
        );
        assert_eq!(latest_pointer_key(&path("plain")), "plain/LATEST");
        assert_eq!(latest_pointer_key(&path(".git")), ".git/LATEST");
    }

    #[test]
    fn pointer_chain_and_legacy_paths() {
        let hashed = path(&format!("{HASHED}.git"));
        let id = BackupId::parse("20210930065413").unwrap();
        let manifest = pointer_manifest(&hashed, &id, 2);
        let base = format!("{HASHED}/20210930065413");
        assert_eq!(
            manifest.steps,
            [
                Step {
                    bundle_path: format!("{base}/001.bundle"),
                    ref_path: format!("{base}/001.refs"),
                    previous_ref_path: String::new(),
                    custom_hooks_path: format!("{base}/001.custom_hooks.tar"),
                },
                Step {
                    bundle_path: format!("{base}/002.bundle"),
                    ref_path: format!("{base}/002.refs"),
                    previous_ref_path: format!("{base}/001.refs"),
                    custom_hooks_path: format!("{base}/002.custom_hooks.tar"),
                },
            ]
        );
        assert_eq!(manifest.object_format, "sha1");
        assert_eq!(manifest.head_reference, None);
        let legacy = legacy_manifest(&hashed);
        assert_eq!(legacy.steps[0].bundle_path, format!("{HASHED}.bundle"));
        assert_eq!(legacy.steps[0].ref_path, format!("{HASHED}.refs"));
        assert_eq!(
            legacy.steps[0].custom_hooks_path,
            format!("{HASHED}/custom_hooks.tar")
        );
    }

    #[test]
    fn pointer_values() {
        let id = |bytes: &[u8]| parse_latest_backup("k", bytes).map(|id| id.to_string());
        assert_eq!(id(b"20210930065413").as_deref(), Ok("20210930065413"));
        assert_eq!(id(b"20210930065413\n").as_deref(), Ok("20210930065413"));
        assert!(id(b"a/b").is_err() && id(b"").is_err() && id(b"x\n\n").is_err());
        assert_eq!(parse_step_count("k", b"002"), Ok(2));
        assert_eq!(parse_step_count("k", b"3\n"), Ok(3));
        for bad in [&b"abc"[..], b"0", b"-1", b""] {
            let error = parse_step_count("k", bad).unwrap_err().to_string();
            assert!(error.contains("determine increment ID"), "{error}");
        }
    }
}
