//! Damaged source repositories (issue #12): a byte changed at rest in a
//! pack that `pack-objects` would copy unchecked fails that repository,
//! naming the pack, keeps nothing of the step and leaves the earlier
//! backup and the other repositories of the run alone.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::reliability::add_noise;
use crate::support::{files_under, snapshot, Repo, TestEnv};

const EARLIER: &str = "20240101000000";
const ID: &str = "20240202000000";

/// Flips one byte in the middle of the packed object `object` (as git
/// stores it: its zlib stream, which a stored block leaves readable) and
/// returns the pack's path.
pub(crate) fn damage_packed_object(env: &TestEnv, repository: &Path, object: &str) -> PathBuf {
    let pack_dir = repository.join("objects/pack");
    for entry in std::fs::read_dir(&pack_dir).unwrap() {
        let index = entry.unwrap().path();
        if index.extension().is_none_or(|extension| extension != "idx") {
            continue;
        }
        let listing =
            env.git_with_input(repository, ["show-index"], &std::fs::read(&index).unwrap());
        let mut offsets: Vec<(u64, String)> = listing
            .lines()
            .map(|line| {
                let mut fields = line.split(' ');
                let offset = fields.next().unwrap().parse().unwrap();
                (offset, fields.next().unwrap().to_owned())
            })
            .collect();
        offsets.sort();
        let Some(at) = offsets.iter().position(|(_, name)| name == object) else {
            continue;
        };
        let pack = index.with_extension("pack");
        let mut bytes = std::fs::read(&pack).unwrap();
        let end = offsets
            .get(at + 1)
            .map_or(bytes.len() as u64 - 20, |(offset, _)| *offset);
        let middle = (offsets[at].0 + end) / 2;
        bytes[middle as usize] ^= 0x40;
        std::fs::set_permissions(&pack, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&pack, bytes).unwrap();
        return pack;
    }
    panic!("{object} is in no pack of {}", repository.display());
}

/// A repository with a large incompressible blob, all of it in one pack;
/// the blob's name.
pub(crate) fn packed_with_noise(env: &TestEnv, repo: &Repo) -> String {
    add_noise(env, &repo.path(), 256 << 10);
    env.git(&repo.path(), ["repack", "-adq"]);
    env.git(&repo.path(), ["rev-parse", "refs/heads/noise:noise.bin"])
        .trim_end()
        .to_owned()
}

/// The files of backup `id` of `repo`: its step directory and manifest.
fn files_of(env: &TestEnv, repo: &Repo, id: &str) -> Vec<String> {
    let step_dir = repo.step_key(id, "");
    files_under(&env.backups())
        .into_iter()
        .filter(|file| file.starts_with(&step_dir) || *file == repo.manifest_key(id))
        .collect()
}

#[test]
fn a_damaged_pack_fails_its_repository_and_keeps_nothing() {
    let env = TestEnv::new();
    let damaged = env.fixture("branches-and-tags");
    let sound = env.fixture("custom-hooks");
    let noise = packed_with_noise(&env, &damaged);
    env.create(EARLIER, &[&damaged, &sound]).assert_success();
    let earlier = snapshot(&env.backups());
    let pack = damage_packed_object(&env, &damaged.path(), &noise);
    // git alone copies the damaged entry and succeeds: what this guards.
    let run = env.create(ID, &[&damaged, &sound]);
    run.assert_code(1);
    let error = run.job_error("create", &damaged.relative_path);
    assert!(error.contains(&pack.display().to_string()), "{error}");
    assert!(error.contains(&damaged.relative_path), "{error}");
    assert!(error.contains("CRC32"), "{error}");
    assert!(error.contains(&noise), "{error}");
    assert!(!error.contains('\n'), "{error}");
    assert_eq!(files_of(&env, &damaged, ID), Vec::<String>::new());
    assert!(env.backup_file(&sound.manifest_key(ID)).is_file());
    // The damaged repository's earlier backup and +latest.toml as they were.
    let now = snapshot(&env.backups());
    let of_damaged = |path: &&String| path.contains(&damaged.relative_path);
    for path in earlier.keys().filter(of_damaged) {
        assert_eq!(now.get(path), earlier.get(path), "{path} changed");
    }
    assert_eq!(
        now.keys().filter(of_damaged).count(),
        earlier.keys().filter(of_damaged).count()
    );
}

#[test]
fn a_damaged_object_pool_fails_the_forks_that_borrow_from_it() {
    let env = TestEnv::new();
    let fork = env.fixture("fork-alternates");
    let pool = fork.storage_root.join("@pools/11/22/1122aabb.git");
    let commit = env.git(&pool, ["rev-parse", "refs/heads/main"]);
    let pack = damage_packed_object(&env, &pool, commit.trim_end());
    let run = env.create(ID, &[&fork]);
    run.assert_code(1);
    let error = run.job_error("create", &fork.relative_path);
    assert!(error.contains(&pack.display().to_string()), "{error}");
    assert_eq!(files_of(&env, &fork, ID), Vec::<String>::new());
}

#[test]
fn a_damaged_index_checksum_fails_naming_the_index() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    env.git(&repo.path(), ["repack", "-adq"]);
    let index = std::fs::read_dir(repo.path().join("objects/pack"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|extension| extension == "idx"))
        .unwrap();
    let mut bytes = std::fs::read(&index).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::set_permissions(&index, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&index, bytes).unwrap();
    let run = env.create(ID, &[&repo]);
    run.assert_code(1);
    let error = run.job_error("create", &repo.relative_path);
    assert!(error.contains(&index.display().to_string()), "{error}");
    assert!(error.contains("checksum"), "{error}");
    assert_eq!(files_of(&env, &repo, ID), Vec::<String>::new());
}

/// Past the packs opened before git starts (128), the rest are opened as
/// the check reaches them: a damaged one among them is still found.
#[test]
fn a_damaged_pack_among_many_is_found() {
    let env = TestEnv::new();
    let repo = env.fixture("branches-and-tags");
    env.git(&repo.path(), ["repack", "-adq"]);
    let pack_dir = repo.path().join("objects/pack");
    let mut last = String::new();
    for n in 0..140 {
        let blob = env.git_with_input(
            &repo.path(),
            ["hash-object", "-w", "--stdin"],
            format!("blob number {n}\n").as_bytes(),
        );
        let prefix = pack_dir.join("pack");
        let name = env.git_with_input(
            &repo.path(),
            ["pack-objects", "-q", prefix.to_str().unwrap()],
            blob.as_bytes(),
        );
        last = last.max(name.trim_end().to_owned());
    }
    // Damage the last of them by name: it is among the packs opened late.
    let listing = env.git_with_input(
        &repo.path(),
        ["show-index"],
        &std::fs::read(pack_dir.join(format!("pack-{last}.idx"))).unwrap(),
    );
    let object = listing.split(' ').nth(1).unwrap().to_owned();
    // Reachable, so that git would copy it.
    let tree = env.git_with_input(
        &repo.path(),
        ["mktree"],
        format!("100644 blob {object}\tlate.txt\n").as_bytes(),
    );
    let commit = env.git(&repo.path(), ["commit-tree", tree.trim_end(), "-m", "late"]);
    env.git(
        &repo.path(),
        ["update-ref", "refs/heads/late", commit.trim_end()],
    );
    let pack = damage_packed_object(&env, &repo.path(), &object);
    assert!(pack.ends_with(format!("pack-{last}.pack")));
    let run = env.create(ID, &[&repo]);
    run.assert_code(1);
    let error = run.job_error("create", &repo.relative_path);
    assert!(error.contains(&pack.display().to_string()), "{error}");
}
