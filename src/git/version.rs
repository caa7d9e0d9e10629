//! The git version gitbak needs, checked once when a run starts: an older
//! git would fail every repository half way, with an error about an
//! unknown option instead of the reason.

use std::fmt;

use super::{stderr_tail, Git, GitError};

/// The oldest git gitbak runs: 2.45 is the first with the `--ref-format`
/// options (`git init --ref-format`, `git rev-parse --show-ref-format`)
/// that restores and reftable repositories need.
pub const MINIMUM: GitVersion = GitVersion {
    major: 2,
    minor: 45,
    patch: 0,
};

/// A git release, as `git --version` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GitVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl GitVersion {
    /// Reads `git version 2.47.3` and its vendor spellings
    /// (`2.39.2 (Apple Git-143)`, `2.45.0.windows.1`, `2.46.0.rc0`).
    pub fn parse(output: &str) -> Option<Self> {
        let version = output.trim().strip_prefix("git version ")?;
        let mut numbers = version
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|part| part.parse::<u32>().ok());
        let major = numbers.next()??;
        let minor = numbers.next()??;
        // A release candidate such as `2.46.0-rc0` still has its patch.
        let patch = numbers.next().flatten().unwrap_or(0);
        Some(Self {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for GitVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Git {
    /// Runs `git --version` and refuses a git older than `MINIMUM`, naming
    /// the version found and the program, so the fix (a newer git, or
    /// `--git` pointing at one) is clear before any repository is touched.
    pub async fn check_version(&self) -> Result<GitVersion, GitError> {
        let command = "--version";
        let child = self.spawn(&mut self.command_without_repository([command]))?;
        let output = self.finish(child, command).await?;
        if !output.status.success() {
            return Err(GitError::Failed {
                command: command.to_owned(),
                status: output.status,
                stderr_tail: stderr_tail(&output.stderr),
            });
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let found = GitVersion::parse(&text).ok_or_else(|| GitError::Unexpected {
            command: command.to_owned(),
            detail: format!("{:?} is not `git version X.Y.Z`", text.trim()),
        })?;
        if found < MINIMUM {
            return Err(GitError::TooOld {
                program: self.program.display().to_string(),
                found,
                minimum: MINIMUM,
            });
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare() {
        for (output, want) in [
            ("git version 2.47.3\n", Some((2, 47, 3))),
            ("git version 2.39.2 (Apple Git-143)", Some((2, 39, 2))),
            ("git version 2.45.0.windows.1", Some((2, 45, 0))),
            ("git version 2.46.0.rc0", Some((2, 46, 0))),
            ("git version 3.0", Some((3, 0, 0))),
            ("git version 2.50.1.gitlab.1", Some((2, 50, 1))),
            ("hub version 2.14.2", None),
            ("git version two", None),
            ("", None),
        ] {
            let parsed = GitVersion::parse(output)
                .map(|version| (version.major, version.minor, version.patch));
            assert_eq!(parsed, want, "{output:?}");
        }
        let version = |text| GitVersion::parse(text).unwrap();
        assert!(version("git version 2.44.9") < MINIMUM);
        assert!(version("git version 2.45.0") >= MINIMUM);
        assert!(version("git version 3.0.0") >= MINIMUM);
        assert_eq!(MINIMUM.to_string(), "2.45.0");
    }
}
