//! TOML manifests: parse and render, byte-compatible with gitaly-backup.
//!
//! No I/O. The rendered file starts with exactly the bytes gitaly-backup 19.0
//! writes (spec §3.4); gitbak's own keys follow in a trailing `[gitbak]`
//! table, which gitaly's decoder ignores.

use serde::Deserialize;

/// One backup of one repository: the chain of steps needed to restore it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub empty: bool,
    pub non_existent: bool,
    /// `sha1`, `sha256`, or empty for a non-existent repository.
    pub object_format: String,
    /// Symbolic target of HEAD, possibly an unborn branch.
    pub head_reference: Option<String>,
    pub steps: Vec<Step>,
    /// Absent in manifests written by gitaly-backup.
    pub gitbak: Option<GitbakInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Step {
    #[serde(default)]
    pub bundle_path: String,
    #[serde(default)]
    pub ref_path: String,
    #[serde(default)]
    pub previous_ref_path: String,
    #[serde(default)]
    pub custom_hooks_path: String,
}

/// What gitbak records beyond gitaly's schema.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct GitbakInfo {
    #[serde(default)]
    pub version: String,
    /// When gitbak read the repository's refs (RFC 3339, UTC): the moment
    /// of the state this backup restores, not when its files were written.
    /// For a repository that did not exist, when that was found.
    #[serde(default)]
    pub created_at: String,
    /// `files` or `reftable`; empty when the repository did not exist.
    #[serde(default)]
    pub ref_format: String,
    #[serde(default)]
    pub files: Vec<FileDigest>,
}

/// Size and SHA-256 of one file a step names, checked on every read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FileDigest {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
#[error("manifest is not valid TOML: {0}")]
pub struct ManifestError(#[from] toml::de::Error);

#[derive(Deserialize)]
struct RawManifest {
    #[serde(default)]
    empty: bool,
    #[serde(default)]
    non_existent: bool,
    #[serde(default)]
    object_format: String,
    #[serde(default)]
    head_reference: String,
    #[serde(default)]
    steps: Vec<Step>,
    gitbak: Option<GitbakInfo>,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text)?;
        Ok(Self {
            empty: raw.empty,
            non_existent: raw.non_existent,
            object_format: raw.object_format,
            head_reference: Some(raw.head_reference).filter(|head| !head.is_empty()),
            steps: raw.steps,
            gitbak: raw.gitbak,
        })
    }

    /// The digest gitbak recorded for `path`, if any.
    pub fn digest(&self, path: &str) -> Option<&FileDigest> {
        self.gitbak
            .as_ref()?
            .files
            .iter()
            .find(|file| file.path == path)
    }

    /// Renders in gitaly's key order; keys gitaly omits when empty are omitted.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("empty = {}\n", self.empty));
        out.push_str(&format!("non_existent = {}\n", self.non_existent));
        out.push_str(&format!(
            "object_format = {}\n",
            toml_string(&self.object_format)
        ));
        if let Some(head) = &self.head_reference {
            out.push_str(&format!("head_reference = {}\n", toml_string(head)));
        }
        for step in &self.steps {
            out.push_str("\n[[steps]]\n");
            for (name, value) in [
                ("bundle_path", &step.bundle_path),
                ("ref_path", &step.ref_path),
                ("previous_ref_path", &step.previous_ref_path),
                ("custom_hooks_path", &step.custom_hooks_path),
            ] {
                if !value.is_empty() {
                    out.push_str(&format!("{name} = {}\n", toml_string(value)));
                }
            }
        }
        if let Some(gitbak) = &self.gitbak {
            out.push_str("\n[gitbak]\n");
            out.push_str(&format!("version = {}\n", toml_string(&gitbak.version)));
            out.push_str(&format!(
                "created_at = {}\n",
                toml_string(&gitbak.created_at)
            ));
            out.push_str(&format!(
                "ref_format = {}\n",
                toml_string(&gitbak.ref_format)
            ));
            for file in &gitbak.files {
                out.push_str("\n[[gitbak.files]]\n");
                out.push_str(&format!("path = {}\n", toml_string(&file.path)));
                out.push_str(&format!("size = {}\n", file.size));
                out.push_str(&format!("sha256 = {}\n", toml_string(&file.sha256)));
            }
        }
        out
    }
}

/// A literal string (`'…'`) when TOML allows one, as gitaly's encoder
/// writes; otherwise a basic string with escapes.
fn toml_string(value: &str) -> String {
    let literal_ok = !value
        .chars()
        .any(|c| c == '\'' || (c.is_control() && c != '\t'));
    if literal_ok {
        return format!("'{value}'");
    }
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GITALY_FULL: &str = "empty = false
non_existent = false
object_format = 'sha1'
head_reference = 'refs/heads/main'

[[steps]]
bundle_path = 'default/@hashed/4e/c9/4ec9.git/20210930065413/001.bundle'
ref_path = 'default/@hashed/4e/c9/4ec9.git/20210930065413/001.refs'
custom_hooks_path = 'default/@hashed/4e/c9/4ec9.git/20210930065413/001.custom_hooks.tar'
";

    #[test]
    fn gitaly_manifest_round_trips_byte_for_byte() {
        let manifest = Manifest::parse(GITALY_FULL).unwrap();
        assert_eq!(manifest.head_reference.as_deref(), Some("refs/heads/main"));
        assert_eq!(manifest.steps.len(), 1);
        assert!(manifest.gitbak.is_none());
        assert_eq!(manifest.render(), GITALY_FULL);
    }

    #[test]
    fn old_manifests_and_unknown_keys_are_read() {
        let text = "object_format = \"sha256\"\nhead_references = 'x'\n\n[[steps]]\nbundle_path = 'a'\nref_path = 'b'\nprevious_ref_path = 'c'\n";
        let manifest = Manifest::parse(text).unwrap();
        assert!(!manifest.empty);
        assert_eq!(manifest.object_format, "sha256");
        assert_eq!(manifest.head_reference, None);
        assert_eq!(manifest.steps[0].previous_ref_path, "c");
        assert_eq!(manifest.steps[0].custom_hooks_path, "");
    }

    #[test]
    fn strings_needing_escapes_use_basic_strings() {
        assert_eq!(toml_string("refs/heads/it's"), "\"refs/heads/it's\"");
        assert_eq!(toml_string("a\"b"), "'a\"b'");
        let manifest = Manifest {
            head_reference: Some("refs/heads/o'neil".into()),
            ..Manifest::default()
        };
        let parsed = Manifest::parse(&manifest.render()).unwrap();
        assert_eq!(parsed.head_reference.as_deref(), Some("refs/heads/o'neil"));
    }

    #[test]
    fn gitbak_table_round_trips() {
        let manifest = Manifest {
            object_format: "sha1".into(),
            steps: vec![Step {
                ref_path: "r".into(),
                ..Step::default()
            }],
            gitbak: Some(GitbakInfo {
                version: "0.1.0".into(),
                created_at: "2026-01-01T00:00:00Z".into(),
                ref_format: "reftable".into(),
                files: vec![FileDigest {
                    path: "r".into(),
                    size: 0,
                    sha256: "e3b0".into(),
                }],
            }),
            ..Manifest::default()
        };
        let text = manifest.render();
        assert_eq!(Manifest::parse(&text).unwrap(), manifest);
        assert_eq!(manifest.digest("r").map(|d| d.size), Some(0));
    }
}
