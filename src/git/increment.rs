//! What an increment may leave out: the previous step's tips the
//! repository still has, and the commits among them a restore must
//! already have (spec §5.2, peers.md §3.2).

use std::path::Path;
use std::process::Stdio;

use super::{Git, GitError};

/// The previous step's tips as the repository has them now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreviousTips {
    /// Tips the repository still has: the negative side of the pack. A tip
    /// gone since (force push, then gc) would make git die with "bad
    /// object", and `--ignore-missing` is refused with `--stdin` by git
    /// 2.39, so they are left out here, before git sees them.
    pub present: Vec<String>,
    /// The commits those tips are or peel to, sorted: the bundle's
    /// prerequisites. git checks a prerequisite as a commit, so tags are
    /// peeled and tips that peel to no commit (a tag of a tree) are left
    /// out; they are still excluded from the pack.
    pub prerequisites: Vec<String>,
}

impl Git {
    /// Looks up `object_ids` (each one and what it peels to) in one
    /// `cat-file --batch-check`.
    pub async fn previous_tips(
        &self,
        repository: &Path,
        object_ids: &[&str],
    ) -> Result<PreviousTips, GitError> {
        let mut unique: Vec<&str> = object_ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        if unique.is_empty() {
            return Ok(PreviousTips::default());
        }
        let mut input = Vec::with_capacity(unique.len() * 100);
        for id in &unique {
            input.extend_from_slice(format!("{id}\n{id}^{{commit}}\n").as_bytes());
        }
        let output = self
            .run_with_input(
                repository,
                &["cat-file", "--batch-check=%(objectname)"],
                input,
                Stdio::piped(),
            )
            .await?;
        let output = String::from_utf8_lossy(&output);
        let answers: Vec<&str> = output.lines().collect();
        if answers.len() != unique.len() * 2 {
            return Err(GitError::Invalid(format!(
                "cat-file answered {} lines for {} questions",
                answers.len(),
                unique.len() * 2
            )));
        }
        // A found object is answered with its id alone; anything else
        // ("<name> missing", "<name> ambiguous") has a space.
        let found = |answer: &&str| !answer.contains(' ');
        let mut tips = PreviousTips::default();
        for (id, pair) in unique.iter().zip(answers.chunks(2)) {
            if found(&pair[0]) {
                tips.present.push((*id).to_owned());
                if found(&pair[1]) {
                    tips.prerequisites.push(pair[1].to_owned());
                }
            }
        }
        tips.prerequisites.sort_unstable();
        tips.prerequisites.dedup();
        Ok(tips)
    }
}
