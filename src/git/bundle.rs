//! Git bundles, out and in, without `git bundle`.
//!
//! Out: gitbak writes the bundle header from the refs snapshot and streams
//! `git pack-objects` after it. `git bundle create` is quadratic in the
//! number of refs before git 2.50 (peers.md §3.3), and GitLab repositories
//! carry tens of thousands. In: the header is parsed here and the pack is
//! piped into `git index-pack --stdin`, so a bundle streams from storage
//! into the repository without a local copy.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt};

use super::refs::{RefLine, RefsSnapshot};
use super::{Git, GitError, GitReader, ObjectFormat};

/// Longest header line accepted: a ref name is at most a few KiB.
const MAX_HEADER_LINE: usize = 64 << 10;

/// The bundle header (`# v2 git bundle` or v3 for SHA-256) for a full
/// bundle of `refs`, byte-identical to what `git bundle create --all` writes.
pub fn full_bundle_header(format: ObjectFormat, refs: &RefsSnapshot) -> Vec<u8> {
    let mut header = signature(format).to_vec();
    header.extend_from_slice(&refs.bytes);
    if !refs.bytes.is_empty() && !refs.bytes.ends_with(b"\n") {
        header.push(b'\n');
    }
    header.push(b'\n');
    header
}

/// The header of an increment: `prerequisites` (commits the restoring
/// repository must already have) as `-<oid>` lines, then `refs`. With
/// neither, the 17-byte header-only bundle gitaly-backup writes for an
/// increment without changes (spec §4.2), which git reads as "0 refs,
/// complete history".
pub fn increment_bundle_header(
    format: ObjectFormat,
    prerequisites: &[String],
    refs: &[&RefLine],
) -> Vec<u8> {
    let mut header = signature(format).to_vec();
    for prerequisite in prerequisites {
        header.extend_from_slice(format!("-{prerequisite}\n").as_bytes());
    }
    for line in refs {
        header.extend_from_slice(format!("{} {}\n", line.object_id, line.name).as_bytes());
    }
    header.push(b'\n');
    header
}

fn signature(format: ObjectFormat) -> &'static [u8] {
    match format {
        ObjectFormat::Sha1 => b"# v2 git bundle\n",
        ObjectFormat::Sha256 => b"# v3 git bundle\n@object-format=sha256\n",
    }
}

impl Git {
    fn pack_objects_args(&self) -> [String; 8] {
        [
            "-c".into(),
            format!("pack.threads={}", self.pack_threads()),
            "pack-objects".into(),
            "--stdout".into(),
            "--thin".into(),
            "--delta-base-offset".into(),
            "--revs".into(),
            "-q".into(),
        ]
    }

    /// Streams a pack of everything reachable from `tips` (objects from
    /// alternates included, so the bundle stands alone). A tip written
    /// `^<oid>` excludes what that object reaches: an increment's pack.
    pub fn pack_objects(&self, repository: &Path, tips: &[&str]) -> Result<GitReader, GitError> {
        let args = self.pack_objects_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, feeder) =
            self.spawn_with_input(repository, &args, super::lines(tips), Stdio::piped())?;
        GitReader::new(self, child, "pack-objects".into(), Some(feeder))
    }

    /// Writes the same pack straight into `out` at its current offset, with
    /// no pipe in between; returns when git has exited.
    pub async fn pack_objects_into(
        &self,
        repository: &Path,
        tips: &[&str],
        out: std::fs::File,
    ) -> Result<(), GitError> {
        let args = self.pack_objects_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, feeder) =
            self.spawn_with_input(repository, &args, super::lines(tips), Stdio::from(out))?;
        crate::failpoint::hit("create-pack-objects");
        self.complete(child, feeder, "pack-objects").await.map(drop)
    }
}

/// What a bundle's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleHeader {
    pub object_format: ObjectFormat,
    pub prerequisites: Vec<String>,
    pub refs: Vec<RefLine>,
}

fn invalid(name: &str, detail: impl std::fmt::Display) -> GitError {
    GitError::Invalid(format!("{name} is not a valid git bundle: {detail}"))
}

/// Reads one header line without its newline; `false` at end of stream.
async fn next_header_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    name: &str,
) -> Result<bool, GitError> {
    line.clear();
    let read = AsyncReadExt::take(&mut *reader, MAX_HEADER_LINE as u64)
        .read_until(b'\n', line)
        .await
        .map_err(|error| invalid(name, error))?;
    if read == 0 {
        return Ok(false);
    }
    if line.pop() != Some(b'\n') {
        return Err(invalid(name, "header is truncated"));
    }
    Ok(true)
}

/// Reads the header, leaving `reader` at the first byte of the pack.
pub async fn read_bundle_header<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    name: &str,
) -> Result<BundleHeader, GitError> {
    let mut line = Vec::new();
    if !next_header_line(reader, &mut line, name).await? {
        return Err(invalid(name, "it is empty"));
    }
    let version = match line.as_slice() {
        b"# v2 git bundle" => 2,
        b"# v3 git bundle" => 3,
        _ => return Err(invalid(name, "it does not start with a bundle signature")),
    };
    let mut header = BundleHeader {
        object_format: ObjectFormat::Sha1,
        prerequisites: Vec::new(),
        refs: Vec::new(),
    };
    loop {
        if !next_header_line(reader, &mut line, name).await? {
            return Err(invalid(name, "header is truncated"));
        }
        let text = std::str::from_utf8(&line).map_err(|_| invalid(name, "header is not UTF-8"))?;
        if text.is_empty() {
            break;
        }
        if let Some(capability) = text.strip_prefix('@') {
            if version < 3 {
                return Err(invalid(name, "capability in a v2 bundle"));
            }
            let format = capability
                .strip_prefix("object-format=")
                .and_then(ObjectFormat::parse)
                .ok_or_else(|| invalid(name, format!("unsupported capability @{capability}")))?;
            header.object_format = format;
        } else if let Some(prerequisite) = text.strip_prefix('-') {
            let object_id = prerequisite.split(' ').next().unwrap_or_default();
            header.prerequisites.push(object_id.to_owned());
        } else {
            let (object_id, name_part) = text
                .split_once(' ')
                .ok_or_else(|| invalid(name, format!("bad ref line {text:?}")))?;
            header.refs.push(RefLine {
                object_id: object_id.to_owned(),
                name: name_part.to_owned(),
            });
        }
    }
    let hex_len = header.object_format.hex_len();
    let bad_id = header
        .prerequisites
        .iter()
        .chain(header.refs.iter().map(|r| &r.object_id))
        .find(|id| id.len() != hex_len || !id.bytes().all(|b| b.is_ascii_hexdigit()));
    if let Some(id) = bad_id {
        return Err(invalid(
            name,
            format!("bad object id {id:?} for {}", header.object_format),
        ));
    }
    Ok(header)
}

impl Git {
    /// Indexes the pack that follows a bundle header into `repository`.
    /// `self_contained` (a full bundle) makes git refuse a pack with links
    /// to objects outside it, which also proves its connectivity.
    /// Returns `false` when the bundle has no pack (a header-only bundle).
    pub async fn index_pack<R: AsyncBufRead + Unpin>(
        &self,
        repository: &Path,
        pack: &mut R,
        self_contained: bool,
    ) -> Result<bool, GitError> {
        if pack.fill_buf().await.map_err(index_pack_io)?.is_empty() {
            return Ok(false);
        }
        let mut child = self.spawn_index_pack(repository, self_contained, Stdio::piped())?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| GitError::Invalid("git stdin is not piped".into()))?;
        // As for bundles going out: large pipe, few wake-ups (best effort).
        let _ = rustix::pipe::fcntl_setpipe_size(&stdin, super::PIPE_SIZE);
        let stderr = super::drain_stderr(&mut child);
        let copied = tokio::io::copy_buf(pack, &mut stdin).await;
        drop(stdin);
        let status = self.wait(&mut child, "index-pack").await?;
        let stderr = stderr.await.unwrap_or_default();
        // A read error from storage (a corrupt or truncated body) wins over
        // git's complaint about the pack it caused.
        match copied {
            Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe || status.success() => {
                return Err(GitError::Invalid(error.to_string()));
            }
            _ => {}
        }
        index_pack_status(status, &stderr)?;
        Ok(true)
    }

    /// Indexes a pack that git reads itself from `pack`, a local bundle
    /// file positioned at the pack's first byte: no copy through gitbak.
    pub async fn index_pack_file(
        &self,
        repository: &Path,
        pack: std::fs::File,
        self_contained: bool,
    ) -> Result<(), GitError> {
        let mut child = self.spawn_index_pack(repository, self_contained, Stdio::from(pack))?;
        let stderr = super::drain_stderr(&mut child);
        let status = self.wait(&mut child, "index-pack").await?;
        index_pack_status(status, &stderr.await.unwrap_or_default())
    }

    fn spawn_index_pack(
        &self,
        repository: &Path,
        self_contained: bool,
        stdin: Stdio,
    ) -> Result<tokio::process::Child, GitError> {
        // No pack.threads cap here: resolving deltas is where a restore
        // spends its CPU, and git sizes index-pack's threads to the machine.
        let mut args = vec!["index-pack", "--stdin", "--fix-thin"];
        if self_contained {
            args.push("--check-self-contained-and-connected");
        }
        let mut command = self.command(repository, &args);
        command.stdin(stdin).stdout(Stdio::null());
        self.spawn(&mut command)
            .inspect(|_| crate::failpoint::hit("restore-index-pack"))
    }
}

fn index_pack_io(source: std::io::Error) -> GitError {
    GitError::Io {
        command: "index-pack".into(),
        source,
    }
}

fn index_pack_status(status: std::process::ExitStatus, stderr: &[u8]) -> Result<(), GitError> {
    if status.success() {
        return Ok(());
    }
    Err(GitError::Failed {
        command: "index-pack".into(),
        status,
        stderr_tail: super::stderr_tail(stderr),
    })
}

/// Reads until end of stream, for a consumer that must see the whole body
/// (and its checksum verdict) even when git stopped early.
pub async fn drain<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<u64> {
    tokio::io::copy(reader, &mut tokio::io::sink()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn header_round_trip() {
        let oid = "1".repeat(40);
        let refs = RefsSnapshot::parse(format!("{oid} HEAD\n{oid} refs/heads/main\n").into_bytes())
            .unwrap();
        let mut bytes = full_bundle_header(ObjectFormat::Sha1, &refs);
        assert!(bytes.starts_with(b"# v2 git bundle\n"));
        bytes.extend_from_slice(b"PACK");
        let mut reader = &bytes[..];
        let header = read_bundle_header(&mut reader, "b").await.unwrap();
        assert_eq!(header.refs.len(), 2);
        assert!(header.prerequisites.is_empty());
        assert_eq!(reader, b"PACK");
    }

    #[tokio::test]
    async fn sha256_header_and_garbage() {
        let oid = "2".repeat(64);
        let refs = RefsSnapshot::parse(format!("{oid} refs/heads/main\n").into_bytes()).unwrap();
        let bytes = full_bundle_header(ObjectFormat::Sha256, &refs);
        let header = read_bundle_header(&mut &bytes[..], "b").await.unwrap();
        assert_eq!(header.object_format, ObjectFormat::Sha256);
        for bad in [
            &b""[..],
            b"# v9 git bundle\n",
            b"# v2 git bundle\nabc",
            b"# v3 git bundle\n@filter=blob:none\n\n",
        ] {
            assert!(
                read_bundle_header(&mut &bad[..], "b").await.is_err(),
                "{bad:?}"
            );
        }
        let prereq = format!(
            "# v2 git bundle\n-{} subject\n{} refs/heads/x\n\n",
            "3".repeat(40),
            "4".repeat(40)
        );
        let header = read_bundle_header(&mut prereq.as_bytes(), "b")
            .await
            .unwrap();
        assert_eq!(header.prerequisites, vec!["3".repeat(40)]);

        let line = RefLine {
            object_id: "5".repeat(40),
            name: "refs/heads/y".into(),
        };
        let bytes = increment_bundle_header(ObjectFormat::Sha1, &["6".repeat(40)], &[&line]);
        let header = read_bundle_header(&mut &bytes[..], "b").await.unwrap();
        assert_eq!(header.prerequisites, vec!["6".repeat(40)]);
        assert_eq!(header.refs, vec![line]);
        assert_eq!(
            increment_bundle_header(ObjectFormat::Sha1, &[], &[]),
            b"# v2 git bundle\n\n"
        );
    }
}
