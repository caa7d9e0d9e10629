//! A repository's object and ref formats, read from its `config` file
//! without running git.
//!
//! Only the plain shape that `git init` and Gitaly write is understood:
//! `[core] repositoryformatversion` and the `[extensions]` git itself
//! sets. Anything else that could change what git concludes (includes,
//! other extensions, quoting, continued lines, version 0 with v1-only
//! extensions) is `Unsupported`, and the caller asks git instead. Never
//! writes, never touches backup storage.

use std::io::Read;
use std::path::Path;

use super::{ObjectFormat, RefFormat};

/// Why gitbak does not read something itself: the caller asks git.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

pub(crate) fn unsupported(reason: impl Into<String>) -> Unsupported {
    Unsupported(reason.into())
}

/// Larger files are not the plain shapes this module reads.
const CONFIG_LIMIT: u64 = 64 * 1024;

/// The object and ref formats git would see in `repository`.
pub fn read_formats(repository: &Path) -> Result<(ObjectFormat, RefFormat), Unsupported> {
    let bytes = read_small_file(&repository.join("config"), CONFIG_LIMIT)?
        .ok_or_else(|| unsupported("no config file"))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| unsupported("config is not UTF-8"))?;
    parse_formats(text)
}

/// A regular file's bytes, `None` when it does not exist; a symlink, a
/// directory, a file over `limit` bytes or a read error is `Unsupported`.
pub(crate) fn read_small_file(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, Unsupported> {
    let odd = |what: &str| unsupported(format!("{}: {what}", path.display()));
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(odd("not a regular file")),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(odd(&error.to_string())),
    }
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        // Removed since the stat: a concurrent update or `pack-refs`.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(odd(&error.to_string())),
    };
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| odd(&error.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(odd("too large"));
    }
    Ok(Some(bytes))
}

fn parse_formats(text: &str) -> Result<(ObjectFormat, RefFormat), Unsupported> {
    let mut section = String::new();
    let mut version = 0u32;
    let mut object_format = None;
    let mut ref_format = None;
    for raw in text.lines() {
        // A continued line could hide a section header inside a value.
        if raw.trim_end().ends_with('\\') {
            return Err(unsupported("config has a continued line"));
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            section = parse_section(header)?;
            continue;
        }
        if section != "core" && section != "extensions" {
            continue;
        }
        let (key, value) = parse_entry(line)?;
        let value = match (section.as_str(), key.as_str(), value) {
            ("core", "repositoryformatversion", None) | ("extensions", _, None) => {
                return Err(unsupported(format!("{section}.{key} has no value")));
            }
            (_, _, value) => value.unwrap_or_default(),
        };
        match (section.as_str(), key.as_str()) {
            ("core", "repositoryformatversion") => {
                version = match value {
                    "0" => 0,
                    "1" => 1,
                    _ => return Err(unsupported("unknown repositoryformatversion")),
                };
            }
            ("core", _) => {}
            ("extensions", "objectformat") => {
                object_format = Some(
                    ObjectFormat::parse(value)
                        .ok_or_else(|| unsupported("unknown extensions.objectformat"))?,
                );
            }
            ("extensions", "refstorage") => {
                ref_format = Some(
                    RefFormat::parse(value)
                        .ok_or_else(|| unsupported("unknown extensions.refstorage"))?,
                );
            }
            (_, other) => return Err(unsupported(format!("extensions.{other} is set"))),
        }
    }
    // git refuses v1-only extensions in a version 0 repository.
    if version == 0 && (object_format.is_some() || ref_format.is_some()) {
        return Err(unsupported("extensions in a version 0 repository"));
    }
    Ok((
        object_format.unwrap_or(ObjectFormat::Sha1),
        ref_format.unwrap_or(RefFormat::Files),
    ))
}

/// The lowercased name of a `[section]` header (after its `[`), with any
/// `"subsection"` kept so that it never equals `core` or `extensions`.
/// Includes could bring extensions from elsewhere, and entries on the
/// header's line are a shape git never writes.
fn parse_section(header: &str) -> Result<String, Unsupported> {
    let odd = || unsupported("config has an unusual section header");
    let inside = header.strip_suffix(']').ok_or_else(odd)?;
    let (name, subsection) = match inside.split_once(' ') {
        Some((name, subsection)) => (name, Some(subsection)),
        None => (inside, None),
    };
    let name = name.to_ascii_lowercase();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(odd());
    }
    if name.starts_with("include") {
        return Err(unsupported("config includes other files"));
    }
    match subsection {
        Some(_) if name == "core" || name == "extensions" => Err(odd()),
        Some(subsection) => Ok(format!("{name} {subsection}")),
        None => Ok(name),
    }
}

/// `key = value` (or a bare `key`, a boolean) in a section this module
/// reads; the key lowercased.
fn parse_entry(line: &str) -> Result<(String, Option<&str>), Unsupported> {
    let (key, value) = match line.split_once('=') {
        Some((key, value)) => (key.trim(), Some(value)),
        None => (line, None),
    };
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(unsupported("config has an unusual key"));
    }
    // Comments after the value are cut; quotes and escapes are left to git.
    let value = value.map(|value| value.split(['#', ';']).next().unwrap_or_default().trim());
    if value.is_some_and(|value| value.contains(['"', '\\'])) {
        return Err(unsupported("config value is quoted"));
    }
    Ok((key.to_ascii_lowercase(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_plain_configs() {
        for (config, want) in [
            (
                "[core]\n\trepositoryformatversion = 0\n\tbare = true\n",
                (ObjectFormat::Sha1, RefFormat::Files),
            ),
            ("", (ObjectFormat::Sha1, RefFormat::Files)),
            (
                "[core]\n\trepositoryformatversion = 1\n[extensions]\n\tobjectformat = sha256\n",
                (ObjectFormat::Sha256, RefFormat::Files),
            ),
            (
                "[Core]\nRepositoryFormatVersion=1 ; why\n[extensions]\nrefStorage = reftable\n",
                (ObjectFormat::Sha1, RefFormat::Reftable),
            ),
            (
                "[core]\nbare\n[gitlab]\n\tfullpath = a/b\n[remote \"x\"]\nurl = y\n",
                (ObjectFormat::Sha1, RefFormat::Files),
            ),
        ] {
            assert_eq!(parse_formats(config), Ok(want), "{config:?}");
        }
    }

    #[test]
    fn unusual_configs_are_left_to_git() {
        for config in [
            "[core]\n\trepositoryformatversion = 2\n",
            "[core]\n\trepositoryformatversion = 1\n[extensions]\n\tobjectformat = sha3\n",
            "[core]\n\trepositoryformatversion = 1\n[extensions]\n\tworktreeConfig = true\n",
            "[extensions]\n\tobjectformat = sha256\n",
            "[include]\n\tpath = other\n",
            "[includeIf \"gitdir:/x\"]\n\tpath = other\n",
            "[core] repositoryformatversion = 1\n",
            "[core]\n\trepositoryformatversion = \"1\"\n",
            "[gitlab]\n\tx = a\\\n[extensions]\n",
            "[core]\n\trepositoryformatversion\n",
        ] {
            assert!(parse_formats(config).is_err(), "{config:?}");
        }
    }
}
