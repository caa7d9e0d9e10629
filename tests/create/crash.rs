//! `gitbak create` killed (as by kill -9) or signalled at each window
//! between its writes, through the `failpoints` feature: an earlier backup
//! is never touched, every manifest on storage names complete files, no git
//! process outlives gitbak, and a rerun with the same id completes and
//! leaves no temporary file behind.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{files_under, sha256_hex, snapshot, Repo, RepoState, Run, TestEnv};

const EARLIER: &str = "20240101000000";
const ID: &str = "20240202000000";

/// A git that, asked for `pack-objects`, becomes a long `sleep` whose
/// argv[0] is `marker`: a process that only dies with gitbak if gitbak
/// makes it (`exec` keeps the parent-death signal).
fn slow_pack_git(env: &TestEnv, marker: &str) -> String {
    let wrapper = env.root().join("slow-pack-git");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/bash\nfor a in \"$@\"; do [ \"$a\" = pack-objects ] && exec -a '{marker}' sleep 30; done\nexec git \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    wrapper.to_str().unwrap().to_owned()
}

/// Processes whose command line mentions `needle`, waiting up to two
/// seconds for dying ones to go.
pub(crate) fn processes_mentioning(needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let is_pid = entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()));
            if !is_pid {
                continue;
            }
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            // Zombies have an empty command line; they run nothing.
            if text.contains(needle) {
                found.push(text);
            }
        }
        if found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every manifest on the backup location names files that exist with the
/// size and SHA-256 it records.
fn assert_manifests_name_complete_files(env: &TestEnv) {
    for relative in files_under(&env.backups()) {
        if !(relative.starts_with("manifests/") && relative.ends_with(".toml")) {
            continue;
        }
        let text = std::fs::read_to_string(env.backups().join(&relative)).unwrap();
        let manifest: toml::Table = text.parse().unwrap();
        let Some(files) = manifest
            .get("gitbak")
            .and_then(|gitbak| gitbak.get("files"))
            .and_then(|files| files.as_array())
        else {
            continue;
        };
        for file in files {
            let path = file["path"].as_str().unwrap();
            let bytes = std::fs::read(env.backup_file(path))
                .unwrap_or_else(|error| panic!("{relative} names {path}: {error}"));
            assert_eq!(
                bytes.len() as i64,
                file["size"].as_integer().unwrap(),
                "{path}"
            );
            assert_eq!(
                sha256_hex(&bytes),
                file["sha256"].as_str().unwrap(),
                "{path}"
            );
        }
    }
}

fn temporaries(env: &TestEnv) -> Vec<String> {
    files_under(&env.backups())
        .into_iter()
        .filter(|relative| relative.ends_with(".gitbak.tmp"))
        .collect()
}

struct Scene {
    env: TestEnv,
    repos: Vec<Repo>,
    earlier: std::collections::BTreeMap<String, crate::support::Entry>,
}

/// Two repositories backed up once under `EARLIER`, then changed.
fn scene() -> Scene {
    let env = TestEnv::new();
    let repos = vec![env.fixture("custom-hooks"), env.fixture("linear")];
    let refs: Vec<&Repo> = repos.iter().collect();
    env.create(EARLIER, &refs).assert_success();
    let earlier = snapshot(&env.backups());
    for repo in &repos {
        env.diverge(&repo.path());
    }
    Scene {
        env,
        repos,
        earlier,
    }
}

impl Scene {
    fn refs(&self) -> Vec<&Repo> {
        self.repos.iter().collect()
    }

    fn create(&self, failpoints: &str, git: Option<&str>) -> Run {
        let mut run = self
            .env
            .gitbak(["create", "--id", ID, "--parallel", "1"])
            .backup_path()
            .storages_of(&self.refs())
            .jobs(&self.refs())
            .env("GITBAK_FAILPOINTS", failpoints);
        if let Some(git) = git {
            run = run.args(["--git", git]);
        }
        run.run()
    }

    /// What must hold right after the crash, and after a clean rerun.
    fn assert_recovers(&self, context: &str) {
        let env = &self.env;
        let now = snapshot(&env.backups());
        for (path, entry) in &self.earlier {
            if path.ends_with("+latest.toml") {
                continue; // a copy, rewritten by design
            }
            assert_eq!(
                now.get(path),
                Some(entry),
                "{context}: earlier backup file {path} changed"
            );
        }
        assert_manifests_name_complete_files(env);
        let leftover = processes_mentioning(&env.root().to_string_lossy());
        assert!(
            leftover.is_empty(),
            "{context}: processes outlived gitbak: {leftover:?}"
        );

        let rerun = self.create("", None);
        rerun.assert_success();
        assert_eq!(
            temporaries(env),
            Vec::<String>::new(),
            "{context}: left after the rerun"
        );
        assert!(
            env.backup_file(&format!("backup_ids/{ID}")).exists(),
            "{context}: marker"
        );
        for repo in &self.repos {
            let manifest = std::fs::read(env.backup_file(&repo.manifest_key(ID))).unwrap();
            let latest = env
                .backup_file(&repo.manifest_key(ID))
                .with_file_name("+latest.toml");
            assert_eq!(
                std::fs::read(latest).unwrap(),
                manifest,
                "{context}: +latest.toml"
            );
            let restored = repo.on_root(env.storage_root(&format!("restored-{}", ID)));
            env.restore(&[&restored], &["--id", ID]).assert_success();
            RepoState::capture(env, &repo.path())
                .assert_same(&RepoState::capture(env, &restored.path()), context);
            std::fs::remove_dir_all(restored.path()).unwrap();
        }
    }
}

#[test]
fn killed_at_any_window_the_rerun_completes() {
    for window in [
        "create-bundle-written",
        "create-before-manifest",
        "syncfs",
        "create-before-latest",
        "create-before-marker",
    ] {
        let scene = scene();
        let run = scene.create(&format!("{window}=kill"), None);
        assert_eq!(
            run.code, -1,
            "{window}: gitbak was not killed\n{}",
            run.stdout
        );
        match window {
            "create-bundle-written" => assert!(
                !temporaries(&scene.env).is_empty(),
                "the kill came before the bundle's temporary file"
            ),
            "syncfs" => {
                // Killed waiting for the shared sync of the first
                // repository's manifests: written under temporary names
                // only, none visible.
                assert!(
                    temporaries(&scene.env)
                        .iter()
                        .any(|name| name.contains(".toml~")),
                    "the kill came before the manifests' temporary files"
                );
                for repo in &scene.repos {
                    assert!(!scene.env.backup_file(&repo.manifest_key(ID)).exists());
                }
            }
            "create-before-latest" => {
                // The id's manifest landed, +latest.toml still names the
                // earlier backup (for whichever repository got there first).
                let repo = scene
                    .repos
                    .iter()
                    .find(|repo| scene.env.backup_file(&repo.manifest_key(ID)).exists())
                    .expect("no manifest written before the kill");
                let manifest =
                    std::fs::read(scene.env.backup_file(&repo.manifest_key(ID))).unwrap();
                let latest = scene
                    .env
                    .backup_file(&repo.manifest_key(ID))
                    .with_file_name("+latest.toml");
                assert_ne!(std::fs::read(latest).unwrap(), manifest);
            }
            _ => {}
        }
        scene.assert_recovers(window);
    }
}

#[test]
fn git_dies_with_gitbak() {
    let scene = scene();
    let marker = format!("gitbak-orphan-check {}", scene.env.root().display());
    let git = slow_pack_git(&scene.env, &marker);
    let run = scene.create("create-pack-objects=sleep300+kill", Some(&git));
    assert_eq!(run.code, -1, "gitbak was not killed\n{}", run.stdout);
    assert_eq!(
        processes_mentioning(&marker),
        Vec::<String>::new(),
        "pack-objects outlived gitbak"
    );
    scene.assert_recovers("kill during pack-objects");
}

#[test]
fn a_signal_while_git_packs_stops_it_and_leaves_nothing() {
    let scene = scene();
    let marker = format!("gitbak-orphan-check {}", scene.env.root().display());
    let git = slow_pack_git(&scene.env, &marker);
    let started = Instant::now();
    let run = scene.create("create-pack-objects=term", Some(&git));
    run.assert_code(130);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the interrupt waited for git ({:?})",
        started.elapsed()
    );
    assert_eq!(processes_mentioning(&marker), Vec::<String>::new());
    assert_eq!(temporaries(&scene.env), Vec::<String>::new());
    for repo in &scene.repos {
        assert!(!scene.env.backup_file(&repo.manifest_key(ID)).exists());
    }
    assert!(!Path::new(&scene.env.backup_file(&format!("backup_ids/{ID}"))).exists());
    scene.assert_recovers("SIGTERM during pack-objects");
}

/// A resumed run repairs `+latest.toml` only while this id's manifest is
/// the repository's newest: a newer backup's copy is never replaced.
#[test]
fn resumed_run_never_replaces_a_newer_latest() {
    let scene = scene();
    let env = &scene.env;
    let run = scene.create("create-before-latest=kill", None);
    assert_eq!(run.code, -1);
    // Make sure the newer backup's manifest is newer by modification time.
    std::thread::sleep(Duration::from_millis(1100));
    let newer = "20240303000000";
    let newer_time = std::time::SystemTime::now();
    env.create(newer, &scene.refs()).assert_success();
    scene.create("", None).assert_success();
    // One repository was killed between its manifest and its copy
    // (`--parallel 1`: the other one never started, and this rerun backs
    // it up from scratch, which rightly makes it the newest).
    let killed: Vec<&Repo> = scene
        .repos
        .iter()
        .filter(|repo| {
            let manifest = env.backup_file(&repo.manifest_key(ID));
            manifest.exists() && manifest.metadata().unwrap().modified().unwrap() < newer_time
        })
        .collect();
    assert_eq!(killed.len(), 1);
    for repo in killed {
        let latest = env
            .backup_file(&repo.manifest_key(ID))
            .with_file_name("+latest.toml");
        assert_eq!(
            std::fs::read(latest).unwrap(),
            std::fs::read(env.backup_file(&repo.manifest_key(newer))).unwrap(),
            "+latest.toml went back to an older backup"
        );
    }
}
