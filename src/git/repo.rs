//! Building a repository from backup data: init, refs, HEAD, checks.
//!
//! Works on a fresh repository in a temporary directory; the caller swaps
//! it into place only after every check here passed.

use std::path::Path;
use std::process::Stdio;

use super::refs::RefLine;
use super::{Git, GitError, ObjectFormat, RefFormat};

/// Whether `name` is a reference name git accepts under `refs/` (the rules
/// of `git check-ref-format`), so a crafted refs file cannot write outside
/// the repository's ref store.
pub fn is_valid_ref_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("refs/") else {
        return false;
    };
    !rest.is_empty()
        && !name.contains("..")
        && !name.contains("@{")
        && !name.ends_with('/')
        && !name.ends_with('.')
        && !name
            .bytes()
            .any(|b| b < 0x20 || b == 0x7f || b" ~^:?*[\\".contains(&b))
        && name
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && !part.ends_with(".lock"))
}

impl Git {
    /// `git init --bare` with the given formats and no template (no sample
    /// hooks). `head` names a branch for HEAD (`refs/heads/...`) where it
    /// is one, which saves a `symbolic-ref` afterwards; returns whether it
    /// was used.
    pub async fn init_bare(
        &self,
        path: &Path,
        object_format: ObjectFormat,
        ref_format: RefFormat,
        head: Option<&str>,
    ) -> Result<bool, GitError> {
        let branch = head
            .filter(|head| is_valid_ref_name(head))
            .and_then(|head| head.strip_prefix("refs/heads/"));
        let mut args: Vec<std::ffi::OsString> = vec![
            "init".into(),
            "--bare".into(),
            "--quiet".into(),
            "--template=".into(),
            format!("--object-format={object_format}").into(),
            format!("--ref-format={}", ref_format.name()).into(),
        ];
        if let Some(branch) = branch {
            args.push(format!("--initial-branch={branch}").into());
        }
        args.push(path.as_os_str().to_owned());
        let child = self.spawn(&mut self.command_without_repository(args))?;
        let output = self.finish(child, "init").await?;
        if !output.status.success() {
            return Err(GitError::Failed {
                command: "init".into(),
                status: output.status,
                stderr_tail: super::stderr_tail(&output.stderr),
            });
        }
        Ok(branch.is_some())
    }

    /// Writes `refs` (sorted, HEAD excluded) into a fresh repository in one
    /// step: `packed-refs` directly for the files backend (one file instead
    /// of one lock and rename per ref), one `update-ref` transaction for
    /// reftable.
    pub async fn write_refs(
        &self,
        repository: &Path,
        ref_format: RefFormat,
        refs: &[RefLine],
    ) -> Result<(), GitError> {
        if let Some(bad) = refs.iter().find(|line| !is_valid_ref_name(&line.name)) {
            return Err(GitError::Invalid(format!(
                "refs file names an invalid reference {:?}",
                bad.name
            )));
        }
        match ref_format {
            RefFormat::Files => {
                let mut sorted: Vec<&RefLine> = refs.iter().collect();
                sorted.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
                sorted.dedup_by(|a, b| a.name == b.name);
                let mut packed = b"# pack-refs with: sorted \n".to_vec();
                for line in sorted {
                    packed.extend_from_slice(
                        format!("{} {}\n", line.object_id, line.name).as_bytes(),
                    );
                }
                let path = repository.join("packed-refs");
                tokio::fs::write(&path, packed)
                    .await
                    .map_err(|source| GitError::Io {
                        command: "write packed-refs".into(),
                        source,
                    })
            }
            RefFormat::Reftable => {
                let mut input = Vec::new();
                for line in refs {
                    input.extend_from_slice(
                        format!("update {} {}\n", line.name, line.object_id).as_bytes(),
                    );
                }
                self.run_with_input(
                    repository,
                    &["update-ref", "--stdin"],
                    input,
                    Stdio::piped(),
                )
                .await
                .map(drop)
            }
        }
    }

    /// Points HEAD at `target` symbolically (the branch may be unborn).
    pub async fn set_head_symbolic(&self, repository: &Path, target: &str) -> Result<(), GitError> {
        if !is_valid_ref_name(target) {
            return Err(GitError::Invalid(format!(
                "head_reference {target:?} is not a valid reference name"
            )));
        }
        self.output(repository, &["symbolic-ref", "HEAD", target], &[])
            .await
            .map(drop)
    }

    /// Detaches HEAD at `object_id`.
    pub async fn set_head_detached(
        &self,
        repository: &Path,
        object_id: &str,
    ) -> Result<(), GitError> {
        self.output(
            repository,
            &["update-ref", "--no-deref", "HEAD", object_id],
            &[],
        )
        .await
        .map(drop)
    }

    /// The subset of `object_ids` the repository does not have.
    pub async fn missing_objects(
        &self,
        repository: &Path,
        object_ids: &[&str],
    ) -> Result<Vec<String>, GitError> {
        if object_ids.is_empty() {
            return Ok(Vec::new());
        }
        let input = super::lines(object_ids);
        let output = self
            .run_with_input(
                repository,
                &["cat-file", "--batch-check=%(objectname)"],
                input,
                Stdio::piped(),
            )
            .await?;
        Ok(String::from_utf8_lossy(&output)
            .lines()
            .filter_map(|line| line.strip_suffix(" missing"))
            .map(str::to_owned)
            .collect())
    }

    /// Every object reachable from every ref is present.
    pub async fn check_connectivity(&self, repository: &Path) -> Result<(), GitError> {
        self.output(
            repository,
            &[
                "fsck",
                "--connectivity-only",
                "--no-dangling",
                "--no-progress",
            ],
            &[],
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names_follow_git_rules() {
        for good in [
            "refs/heads/main",
            "refs/keep-around/abc",
            "refs/merge-requests/1/head",
            "refs/tags/v1.0",
        ] {
            assert!(is_valid_ref_name(good), "{good}");
        }
        for bad in [
            "HEAD",
            "refs/",
            "refs/heads/../x",
            "refs/heads/.x",
            "refs/heads/a.lock",
            "refs/heads/a b",
            "refs//x",
            "refs/heads/x/",
            "heads/main",
            "refs/a@{1}",
        ] {
            assert!(!is_valid_ref_name(bad), "{bad}");
        }
    }
}
