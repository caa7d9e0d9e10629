//! Reading a repository's identity and references.
//!
//! The refs snapshot is `git show-ref --head`, byte for byte: it is what
//! gitaly-backup stores as the `.refs` file, and the bundle is built from
//! the same bytes so the two never disagree.

use std::path::Path;

use super::refs_files::read_repository;
use super::{Git, GitError, ObjectFormat, RefFormat};

/// One line of a refs file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefLine {
    pub object_id: String,
    pub name: String,
}

/// The references of a repository at one moment, as `show-ref --head` prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefsSnapshot {
    /// Exactly the bytes of the `.refs` file.
    pub bytes: Vec<u8>,
    pub lines: Vec<RefLine>,
}

impl RefsSnapshot {
    pub fn parse(bytes: Vec<u8>) -> Result<Self, GitError> {
        let lines = parse_ref_lines(&bytes)?;
        Ok(Self { bytes, lines })
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Distinct object ids the references point at.
    pub fn tips(&self) -> Vec<&str> {
        let mut tips: Vec<&str> = self
            .lines
            .iter()
            .map(|line| line.object_id.as_str())
            .collect();
        tips.sort_unstable();
        tips.dedup();
        tips
    }

    /// Every reference but HEAD.
    pub fn without_head(&self) -> impl Iterator<Item = &RefLine> {
        self.lines.iter().filter(|line| line.name != "HEAD")
    }

    pub fn head(&self) -> Option<&RefLine> {
        self.lines.iter().find(|line| line.name == "HEAD")
    }
}

/// Splits `<oid> <name>` lines at the first space, as gitaly's reader does;
/// the last line may lack its newline.
pub fn parse_ref_lines(bytes: &[u8]) -> Result<Vec<RefLine>, GitError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| GitError::Invalid("refs file is not UTF-8".into()))?;
    text.lines()
        .enumerate()
        .map(|(index, line)| {
            let (object_id, name) = line
                .split_once(' ')
                .filter(|(oid, name)| is_hex_object_id(oid) && !name.is_empty())
                .ok_or_else(|| {
                    GitError::Invalid(format!(
                        "refs file line {} is not '<oid> <ref>': {line:?}",
                        index + 1
                    ))
                })?;
            Ok(RefLine {
                object_id: object_id.to_owned(),
                name: name.to_owned(),
            })
        })
        .collect()
}

fn is_hex_object_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64)
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The first two lines of `rev-parse --show-object-format --show-ref-format`.
fn parse_formats<'a>(
    lines: &mut impl Iterator<Item = &'a str>,
) -> Result<(ObjectFormat, RefFormat), GitError> {
    let unexpected = |detail: &str| GitError::Unexpected {
        command: "rev-parse".into(),
        detail: detail.into(),
    };
    let object_format = lines
        .next()
        .and_then(ObjectFormat::parse)
        .ok_or_else(|| unexpected("unknown object format"))?;
    let ref_format = lines
        .next()
        .and_then(RefFormat::parse)
        .ok_or_else(|| unexpected("unknown ref format"))?;
    Ok((object_format, ref_format))
}

/// What a backup records about a repository besides its refs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryIdentity {
    pub object_format: ObjectFormat,
    pub ref_format: RefFormat,
    /// Symbolic target of HEAD; `None` when HEAD is detached.
    pub head_reference: Option<String>,
}

impl Git {
    /// The refs and identity of a repository: read from its files for the
    /// files backend (no git process: an unchanged repository costs a few
    /// file reads, in one trip to the blocking pool), else asked of git.
    /// The bytes are the same either way.
    pub async fn snapshot(
        &self,
        repository: &Path,
    ) -> Result<(RefsSnapshot, RepositoryIdentity), GitError> {
        let path = repository.to_owned();
        match tokio::task::spawn_blocking(move || read_repository(&path)).await {
            Ok(Ok(read)) => return Ok(read),
            Ok(Err(reason)) => tracing::debug!(%reason, "refs read by git"),
            // The reader panicked: git still knows the answer.
            Err(error) => tracing::debug!(%error, "refs read by git"),
        }
        self.snapshot_with_git(repository).await
    }

    /// `git show-ref --head`, then the identity, whatever the repository's
    /// shape: for what the file reader leaves to git.
    pub async fn snapshot_with_git(
        &self,
        repository: &Path,
    ) -> Result<(RefsSnapshot, RepositoryIdentity), GitError> {
        let refs = self.snapshot_refs_with_git(repository).await?;
        let identity = self.identity(repository).await?;
        Ok((refs, identity))
    }

    pub async fn identity(&self, repository: &Path) -> Result<RepositoryIdentity, GitError> {
        // One process for the common case; HEAD's branch is named only when
        // it exists, so an unborn HEAD (exit 128) takes the long way.
        let (code, output) = self
            .output(
                repository,
                &[
                    "rev-parse",
                    "--show-object-format",
                    "--show-ref-format",
                    "--symbolic-full-name",
                    "HEAD",
                ],
                &[128],
            )
            .await?;
        if code == 0 {
            let output = String::from_utf8_lossy(&output);
            let mut lines = output.lines();
            let (object_format, ref_format) = parse_formats(&mut lines)?;
            // A detached HEAD names itself.
            let head_reference = lines
                .next()
                .filter(|head| head.starts_with("refs/"))
                .map(str::to_owned);
            return Ok(RepositoryIdentity {
                object_format,
                ref_format,
                head_reference,
            });
        }
        let (_, formats) = self
            .output(
                repository,
                &["rev-parse", "--show-object-format", "--show-ref-format"],
                &[],
            )
            .await?;
        let (object_format, ref_format) =
            parse_formats(&mut String::from_utf8_lossy(&formats).lines())?;
        let (code, head) = self
            .output(repository, &["symbolic-ref", "-q", "HEAD"], &[1])
            .await?;
        let head_reference = (code == 0)
            .then(|| String::from_utf8_lossy(&head).trim_end().to_owned())
            .filter(|head| !head.is_empty());
        Ok(RepositoryIdentity {
            object_format,
            ref_format,
            head_reference,
        })
    }

    /// `git show-ref --head`, whatever the repository's shape.
    pub async fn snapshot_refs_with_git(
        &self,
        repository: &Path,
    ) -> Result<RefsSnapshot, GitError> {
        // show-ref exits 1 when there is nothing to show.
        let (_, bytes) = self
            .output(repository, &["show-ref", "--head"], &[1])
            .await?;
        RefsSnapshot::parse(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_lines_parse_and_reject_garbage() {
        let oid = "a".repeat(40);
        let snapshot =
            RefsSnapshot::parse(format!("{oid} HEAD\n{oid} refs/heads/main").into_bytes()).unwrap();
        assert_eq!(snapshot.lines.len(), 2);
        assert_eq!(snapshot.tips(), vec![oid.as_str()]);
        assert_eq!(snapshot.without_head().count(), 1);
        assert!(parse_ref_lines(b"nospace\n").is_err());
        assert!(parse_ref_lines(b"xyz refs/heads/a\n").is_err());
        assert!(parse_ref_lines(b"").unwrap().is_empty());
    }
}
