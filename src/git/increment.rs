//! What an increment may leave out: the previous step's tips the
//! repository still has, and the boundary commits a restore must already
//! have, as `git bundle create` lists them (spec §5.2, peers.md §3.2).

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;

use super::{Git, GitError};

impl Git {
    /// The subset of `object_ids` the repository has, sorted: the negative
    /// side of an increment's pack. A tip gone since (force push, then gc)
    /// would make git die with "bad object", and `--ignore-missing` is
    /// refused with `--stdin` by git 2.39, so such tips are left out here,
    /// before git sees them.
    pub async fn present_objects(
        &self,
        repository: &Path,
        object_ids: &[&str],
    ) -> Result<Vec<String>, GitError> {
        let mut unique: Vec<&str> = object_ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let missing: HashSet<String> = self
            .missing_objects(repository, &unique)
            .await?
            .into_iter()
            .collect();
        Ok(unique
            .into_iter()
            .filter(|id| !missing.contains(*id))
            .map(str::to_owned)
            .collect())
    }

    /// The commits an increment of `revisions` (`<oid>` and `^<oid>` lines,
    /// as `pack-objects --revs` reads them) builds on, sorted: the excluded
    /// parents of its new commits, which `git bundle create` lists as
    /// prerequisites. Only the new commits are walked.
    pub async fn boundary_commits(
        &self,
        repository: &Path,
        revisions: &[&str],
    ) -> Result<Vec<String>, GitError> {
        let output = self
            .run_with_input(
                repository,
                &["rev-list", "--boundary", "--stdin"],
                super::lines(revisions),
                Stdio::piped(),
            )
            .await?;
        let mut boundary: Vec<String> = String::from_utf8_lossy(&output)
            .lines()
            .filter_map(|line| line.strip_prefix('-'))
            .map(str::to_owned)
            .collect();
        boundary.sort_unstable();
        boundary.dedup();
        Ok(boundary)
    }
}
