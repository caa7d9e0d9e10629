//! HEAD for a backup that does not name it: gitaly-backup before 16.6
//! wrote manifests without `head_reference`, and the pointer and legacy
//! layouts never recorded HEAD. A restore must not leave such a repository
//! with a detached HEAD, which GitLab shows as a project without a default
//! branch.
//!
//! Pure: the choice is made from the restored refs and the HEAD commit the
//! bundles listed, the way Gitaly's FetchBundle `update_head` makes it.

use crate::git::refs::RefLine;

/// The branch HEAD should name: among the branches pointing at
/// `head_commit`, `refs/heads/main`, else `refs/heads/master`, else the
/// first by name. `None` when no branch points there.
pub(super) fn infer_head(refs: &[RefLine], head_commit: &str) -> Option<String> {
    let mut branches: Vec<&str> = refs
        .iter()
        .filter(|line| line.name.starts_with("refs/heads/") && line.object_id == head_commit)
        .map(|line| line.name.as_str())
        .collect();
    branches.sort_unstable();
    ["refs/heads/main", "refs/heads/master"]
        .into_iter()
        .find(|preferred| branches.contains(preferred))
        .or_else(|| branches.first().copied())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(object_id: &str, name: &str) -> RefLine {
        RefLine {
            object_id: object_id.into(),
            name: name.into(),
        }
    }

    #[test]
    fn prefers_main_then_master_then_the_first_by_name() {
        let refs = [
            line("b", "refs/heads/zeta"),
            line("a", "refs/heads/topic"),
            line("a", "refs/heads/master"),
            line("a", "refs/heads/alpha"),
            line("a", "refs/tags/v1"),
            line("a", "refs/heads/main"),
            line("c", "refs/heads/other"),
        ];
        for (without, commit, want) in [
            (None, "a", Some("refs/heads/main")),
            (Some("refs/heads/main"), "a", Some("refs/heads/master")),
            (Some("refs/heads/master"), "a", Some("refs/heads/main")),
            (Some("refs/heads/none"), "b", Some("refs/heads/zeta")),
            (None, "d", None),
        ] {
            let refs: Vec<RefLine> = refs
                .iter()
                .filter(|line| Some(line.name.as_str()) != without)
                .cloned()
                .collect();
            assert_eq!(
                infer_head(&refs, commit).as_deref(),
                want,
                "{without:?} {commit}"
            );
        }
        let only_tags = [line("a", "refs/tags/v1")];
        assert_eq!(infer_head(&only_tags, "a"), None);
        let neither = [line("a", "refs/heads/topic"), line("a", "refs/heads/b")];
        assert_eq!(infer_head(&neither, "a").as_deref(), Some("refs/heads/b"));
    }
}
