//! A broken chain — a step's bundle or refs file missing, or an increment
//! needing commits the earlier steps do not provide — fails the restore
//! with an error naming the step, and the existing repository stays
//! byte-for-byte as it was (the new one is built beside it).

use super::chain::Chain;
use crate::support::{assert_no_temp_dirs, snapshot, TestEnv};

/// How a test breaks a three-step chain; the error it expects.
type Breakage = fn(&TestEnv, &Chain, &str) -> String;

/// Builds a three-step chain; `side` is a commit step 3's bundle leaves
/// out (when `leave_out_side`) although no earlier step has it.
fn assert_broken_chain_is_refused(name: &str, leave_out_side: bool, breakage: Breakage) {
    let env = TestEnv::new();
    let repo = env.fixture_at("default", "linear", "group/chain.git", &[]);
    let path = repo.path();
    let mut chain = Chain::new(&env, &repo);
    chain.back_up("20240101000000", None);
    env.add_commit(&path, "refs/heads/main", "second.txt");
    chain.back_up("20240102000000", None);
    env.git(&path, ["update-ref", "refs/heads/side", "refs/heads/main"]);
    let side = env.add_commit(&path, "refs/heads/side", "side-1.txt");
    env.add_commit(&path, "refs/heads/side", "side-2.txt");
    let excluded: &[&str] = if leave_out_side { &[&side] } else { &[] };
    chain.back_up_without("20240103000000", None, excluded);
    let expected = breakage(&env, &chain, &side);

    env.diverge(&path);
    let before = snapshot(&path);
    let run = env.restore(&[&repo], &[]);
    run.assert_code(1);
    let error = run.job_error("restore", &repo.relative_path);
    assert_eq!(error, expected, "{name}");
    assert_eq!(snapshot(&path), before, "{name}: the repository changed");
    assert_no_temp_dirs(&repo.storage_root);
}

fn remove(env: &TestEnv, key: &str) {
    std::fs::remove_file(env.backup_file(key)).unwrap();
}

#[test]
fn a_missing_bundle_names_its_step() {
    assert_broken_chain_is_refused("step 2's bundle", false, |env, chain, _| {
        let key = chain.step_key(2, "bundle");
        remove(env, &key);
        format!("broken backup chain: step 2 is missing its file {key}")
    });
}

#[test]
fn a_missing_refs_file_names_its_step() {
    assert_broken_chain_is_refused("step 1's refs", false, |env, chain, _| {
        let key = chain.step_key(1, "refs");
        remove(env, &key);
        format!("broken backup chain: step 1 is missing its file {key}")
    });
    assert_broken_chain_is_refused("step 3's refs", false, |env, chain, _| {
        let key = chain.step_key(3, "refs");
        remove(env, &key);
        format!("broken backup chain: step 3 is missing its file {key}")
    });
}

#[test]
fn an_unsatisfied_prerequisite_names_the_step_and_the_commit() {
    assert_broken_chain_is_refused("prerequisite", true, |_, chain, side| {
        format!(
            "broken backup chain: step 3 ({}) needs commit {side}, which steps 1–2 do not provide",
            chain.step_key(3, "bundle")
        )
    });
}
