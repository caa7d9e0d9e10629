//! The file reader racing `git pack-refs --all`, as Gitaly's housekeeping
//! runs it beside a backup: loose refs are read before `packed-refs`, so a
//! ref moved from one to the other mid-read is never lost (the argument is
//! in `src/git/refs_files.rs`). Read the other way round, this test loses
//! refs within seconds.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use gitbak::git::refs_files::read_refs;

use crate::support::TestEnv;

/// Refs packed before the race starts.
const BASE: usize = 5000;
/// New loose refs per round, packed (and pruned) by that round's pack-refs.
const PER_ROUND: usize = 1000;

/// The names created by `round` (0 is the base set).
fn names(round: usize) -> Vec<String> {
    match round {
        0 => (0..BASE)
            .map(|index| format!("refs/keep-around/{index:05}"))
            .collect(),
        _ => (0..PER_ROUND)
            .map(|index| format!("refs/merge-requests/{round}{index:04}/head"))
            .collect(),
    }
}

#[test]
fn refs_stay_visible_while_pack_refs_runs() {
    let env = TestEnv::new();
    let (repository, commits) = super::scratch(&env, "race", "sha1", 2);
    let create = |round: usize| {
        let input: String = names(round)
            .iter()
            .map(|name| format!("create {name} {}\n", commits[round % 2]))
            .collect();
        env.git_with_input(&repository, ["update-ref", "--stdin"], input.as_bytes());
    };
    create(0);
    env.git(&repository, ["pack-refs", "--all"]);
    // Rounds whose refs are all written: every one of them must be seen.
    let created = AtomicUsize::new(1);
    let stop = AtomicBool::new(false);
    let mut reads = 0;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for round in 1..=12 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                create(round);
                created.store(round + 1, Ordering::SeqCst);
                // Nested names: pack-refs also removes their directories.
                env.git(&repository, ["pack-refs", "--all"]);
            }
            stop.store(true, Ordering::SeqCst);
        });
        let mut expected: BTreeSet<String> =
            ["HEAD", "refs/heads/main", "refs/heads/c0", "refs/heads/c1"]
                .map(String::from)
                .into();
        let mut known = 0;
        while !stop.load(Ordering::SeqCst) {
            let rounds = created.load(Ordering::SeqCst);
            for round in known..rounds {
                expected.extend(names(round));
            }
            known = rounds;
            let snapshot = read_refs(&repository).unwrap_or_else(|reason| {
                stop.store(true, Ordering::SeqCst);
                panic!("read {reads}: {reason}")
            });
            let seen: BTreeSet<&str> = snapshot.lines.iter().map(|l| l.name.as_str()).collect();
            let missing: Vec<&String> = expected
                .iter()
                .filter(|name| !seen.contains(name.as_str()))
                .take(5)
                .collect();
            if !missing.is_empty() {
                stop.store(true, Ordering::SeqCst);
                panic!("read {reads}: missing {missing:?}");
            }
            reads += 1;
        }
    });
    assert!(reads > 12, "only {reads} reads");
    eprintln!("{reads} reads");
}
