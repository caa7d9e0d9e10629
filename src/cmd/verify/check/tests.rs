//! What a backup's manifest makes `verify` check: files needed or not,
//! steps that do not follow each other, and how absence is named.

use super::*;
use crate::layout::manifest::{FileDigest, GitbakInfo, Step};

fn step(id: &str, number: usize, previous: &str) -> Step {
    let base = format!("default/a.git/{id}/{number:03}");
    Step {
        bundle_path: format!("{base}.bundle"),
        ref_path: format!("{base}.refs"),
        previous_ref_path: previous.to_owned(),
        custom_hooks_path: format!("{base}.custom_hooks.tar"),
    }
}

fn needed(files: &[FileCheck]) -> Vec<(String, bool, bool)> {
    files
        .iter()
        .map(|file| {
            let name = file.key.rsplit('/').next().unwrap().to_owned();
            (name, file.required, file.expected.is_some())
        })
        .collect()
}

#[test]
fn what_a_gitaly_chain_needs() {
    let first = step("1", 1, "");
    let manifest = Manifest {
        object_format: "sha1".into(),
        steps: vec![first.clone(), step("2", 2, &first.ref_path)],
        ..Manifest::default()
    };
    // Step 2's refs file is empty: no bundle is needed for it.
    let empty_refs = manifest.steps[1].ref_path.clone();
    let listed = |key: &str| {
        if key == empty_refs {
            Listed::Size(0)
        } else {
            Listed::Size(9)
        }
    };
    let (files, problems) = plan_files(&manifest, listed);
    assert!(problems.is_empty(), "{problems:?}");
    let want = |name: &str, required| (name.to_owned(), required, false);
    assert_eq!(
        needed(&files),
        [
            want("001.bundle", true),
            want("001.refs", true),
            want("001.custom_hooks.tar", false),
            want("002.bundle", false),
            want("002.refs", true),
            want("002.custom_hooks.tar", false),
        ]
    );
}

#[test]
fn recorded_files_are_needed_and_steps_must_follow_each_other() {
    let first = step("1", 1, "");
    let manifest = Manifest {
        object_format: "sha1".into(),
        steps: vec![first.clone(), step("2", 2, "default/a.git/0/001.refs")],
        gitbak: Some(GitbakInfo {
            files: vec![FileDigest {
                path: first.custom_hooks_path.clone(),
                size: 3,
                sha256: "ab".into(),
            }],
            ..GitbakInfo::default()
        }),
        ..Manifest::default()
    };
    let (files, problems) = plan_files(&manifest, |_| Listed::Unknown);
    assert_eq!(files[2].key, first.custom_hooks_path);
    assert!(files[2].required);
    assert_eq!(files[2].expected.as_ref().unwrap().size, 3);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].kind, ProblemKind::BrokenChain);
    assert_eq!(problems[0].step, Some(2));
    assert!(
        problems[0]
            .detail
            .contains("but step 1 is default/a.git/1/001.refs"),
        "{}",
        problems[0].detail
    );
}

#[test]
fn a_missing_earlier_step_breaks_the_chain() {
    let file = |step| FileCheck {
        key: format!("k{step}"),
        step,
        expected: None,
        required: true,
    };
    assert_eq!(missing(&file(1), 3).kind, ProblemKind::BrokenChain);
    assert_eq!(missing(&file(3), 3).kind, ProblemKind::Missing);
    assert_eq!(size_problem(1, 2), Some(ProblemKind::Truncated));
    assert_eq!(size_problem(3, 2), Some(ProblemKind::SizeMismatch));
    assert_eq!(size_problem(2, 2), None);
}
