//! What gitbak shows an operator (outside gitaly mode): the progress
//! display in a real pseudo-terminal and its absence elsewhere, text and
//! JSON log lines, the summary, an empty job list, nothing piped in, and
//! an interrupted create that says how to resume.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Repo, TestEnv};

const ID: &str = "20240101000000";

/// `count` repositories built from one fixture, in storage `default`.
fn repositories(env: &TestEnv, count: usize) -> Vec<Repo> {
    let first = env.fixture_at("default", "linear", "group/r0.git", &[]);
    let mut repos = vec![first.clone()];
    for n in 1..count {
        let repo = Repo::new(
            "default",
            first.storage_root.clone(),
            &format!("group/r{n}.git"),
        );
        let run = env.program(
            "cp",
            [
                "-a",
                first.path().to_str().unwrap(),
                repo.path().to_str().unwrap(),
            ],
        );
        run.assert_success();
        repos.push(repo);
    }
    repos
}

fn refs(repos: &[Repo]) -> Vec<&Repo> {
    repos.iter().collect()
}

#[test]
fn a_terminal_shows_progress_that_updates_and_is_cleared_and_a_pipe_shows_none() {
    let env = TestEnv::new();
    let repos = repositories(&env, 12);
    let run = env
        .gitbak(["create", "--parallel", "1", "--id", ID])
        .backup_path()
        .storages_of(&refs(&repos))
        .jobs(&refs(&repos))
        .run_in_terminal(false);
    run.assert_success();
    let screen = run.stdout.replace("\r\n", "\n");
    // It appears, and updates: several counts of repositories done.
    let shown = (0..=12)
        .filter(|done| screen.contains(&format!(" {done}/12 repositories,")))
        .count();
    assert!(shown >= 2, "no progress updates shown:\n{screen}");
    assert!(screen.contains("running: group/r"), "{screen}");
    // Log lines are text on a terminal, whole lines between redraws.
    assert!(!screen.contains("{\""), "JSON on a terminal:\n{screen}");
    for repo in &repos {
        let completed = format!(
            "INFO  {} ({}): completed create\n",
            repo.relative_path,
            repo.gl_project_path()
        );
        assert!(
            screen.contains(&completed),
            "{completed:?} not in\n{screen}"
        );
    }
    // Cleared before the summary, which ends the output.
    let summary = screen
        .rfind("INFO  create: 12 repositories in ")
        .unwrap_or_else(|| panic!("no summary:\n{screen}"));
    let last_bar = screen.rfind("/12 repositories,").unwrap();
    assert!(last_bar < summary, "{screen}");
    assert!(
        screen[last_bar..summary].contains("\x1b[2K"),
        "display not cleared before the summary:\n{screen}"
    );
    let after = &screen[summary..];
    assert!(after.contains(": 12 backed up; "), "{after:?}");
    assert!(
        !after.contains('\x1b'),
        "drawn again after the summary: {after:?}"
    );

    // The same run without a terminal: no display, JSON lines only.
    let run = env
        .gitbak(["create", "--parallel", "1", "--id", "20240101000001"])
        .backup_path()
        .storages_of(&refs(&repos))
        .jobs(&refs(&repos))
        .run();
    run.assert_success();
    assert_eq!(run.stderr, "", "stderr of a run without a terminal");
    assert!(!run.stdout.contains("repositories,"), "{}", run.stdout);
    assert_eq!(run.lines_with_msg("completed create").len(), 12);
}

#[test]
fn nothing_piped_in_at_a_terminal_says_how_to_feed_jobs_instead_of_waiting() {
    let env = TestEnv::new();
    let repo = env.fixture("linear");
    for command in ["create", "restore"] {
        let run = env
            .gitbak([command])
            .backup_path()
            .storages_of(&[&repo])
            .run_in_terminal(true);
        run.assert_code(2);
        assert!(run.stdout.contains("pipe them in"), "{}", run.stdout);
        assert!(run.stdout.contains("relative_path"), "{}", run.stdout);
        if command == "create" {
            assert!(run.stdout.contains("--discover"), "{}", run.stdout);
        }
    }
}

#[test]
fn an_empty_job_list_is_an_error_unless_allowed_and_never_in_gitaly_mode() {
    let env = TestEnv::new();
    let repo = env.fixture("linear");
    for command in ["create", "restore"] {
        let run = env
            .gitbak([command])
            .backup_path()
            .storages_of(&[&repo])
            .run();
        run.assert_code(2);
        let errors: Vec<Value> = run
            .log()
            .into_iter()
            .filter(|line| line["level"] == "error")
            .collect();
        assert_eq!(errors.len(), 1, "{}", run.stdout);
        let message = errors[0]["msg"].as_str().unwrap();
        assert!(
            message.contains("job list was empty") && message.contains("--allow-empty"),
            "{message}"
        );
        env.gitbak([command, "--allow-empty"])
            .backup_path()
            .storages_of(&[&repo])
            .run()
            .assert_success();
        env.gitbak([command])
            .backup_path()
            .storages_of(&[&repo])
            .env("GITBAK_ALLOW_EMPTY", "1")
            .run()
            .assert_success();
    }
    // Rails sends an empty list when its filters match nothing.
    let backups = env.backups();
    let run = env
        .gitaly_backup(["create", "-path", backups.to_str().unwrap(), "-id", ID])
        .env("GITBAK_STORAGE", &repo.storage_arg())
        .run();
    run.assert_success();
    assert_eq!(run.stdout, "", "gitaly-backup prints nothing for no jobs");
}

#[test]
fn text_and_json_logs_carry_the_same_run_and_summary() {
    let env = TestEnv::new();
    let repos = repositories(&env, 2);
    let typo = Repo::new("default", repos[0].storage_root.clone(), "group/typo.git");
    let mut jobs = refs(&repos);
    jobs.push(&typo);
    let run = env
        .gitbak(["create", "--id", ID, "--log-format", "text"])
        .backup_path()
        .storages_of(&refs(&repos))
        .jobs(&jobs)
        .run();
    run.assert_success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    // Continuation lines of a message (its list) are indented.
    for line in lines.iter().filter(|line| !line.starts_with(" - ")) {
        let (clock, rest) = line.split_at(9);
        assert!(
            clock.len() == 9 && clock.as_bytes()[2] == b':' && clock.as_bytes()[5] == b':',
            "{line}"
        );
        assert!(
            ["INFO  ", "WARN  ", "ERROR "]
                .iter()
                .any(|level| rest.starts_with(level)),
            "{line}"
        );
    }
    let backups = env.backups();
    assert_eq!(
        &lines[0][9..],
        format!("INFO  create: backup {ID} to {}", backups.display())
    );
    assert!(run
        .stdout
        .contains("INFO  group/typo.git (group/typo): completed create\n"));
    assert!(
        run.stdout
            .contains("create: 3 repositories in 0:00: 2 backed up, 1 non-existent; ")
            || run.stdout.contains(": 2 backed up, 1 non-existent; "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("WARN  create: 1 repository not found (a typo in relative_path?), recorded as non-existent:\n - group/typo.git (storage default)\n"),
        "{}",
        run.stdout
    );
    // Recorded as gitaly-backup records it.
    assert!(env
        .backup_file(&format!("manifests/default/group/typo.git/{ID}.toml"))
        .exists());

    // JSON, the default without a terminal: the same run, machine-readable.
    let run = env
        .gitbak(["create", "--id", "20240101000001"])
        .backup_path()
        .storages_of(&refs(&repos))
        .jobs(&jobs)
        .run();
    run.assert_success();
    let log = run.log();
    assert_eq!(log[0]["backup_id"], "20240101000001");
    assert_eq!(log[0]["location"], backups.to_str().unwrap());
    let summary = log
        .iter()
        .find(|line| {
            line["msg"]
                .as_str()
                .unwrap()
                .starts_with("create: 3 repositories")
        })
        .unwrap_or_else(|| panic!("no summary:\n{}", run.stdout));
    assert_eq!(summary["level"], "info");
    assert_eq!(summary["written"], 2);
    assert_eq!(summary["non_existent"], 1);
    assert_eq!(summary["failed"], 0);
    assert!(summary["bytes"].as_u64().unwrap() > 0);

    // A restore's summary: restored, and the non-existent one named.
    let run = env
        .gitbak(["restore", "--id", ID, "--log-format", "text"])
        .backup_path()
        .storages_of(&refs(&repos))
        .jobs(&jobs)
        .run();
    run.assert_success();
    assert!(
        run.stdout.contains(": 2 restored, 1 non-existent; "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "WARN  restore: 1 repository did not exist when backed up, nothing restored:\n - group/typo.git (storage default)\n"
        ),
        "{}",
        run.stdout
    );

    // -q: a successful run prints nothing.
    let run = env
        .gitbak(["create", "--id", "20240101000002", "-q"])
        .backup_path()
        .storages_of(&refs(&repos))
        .jobs(&refs(&repos))
        .run();
    run.assert_success();
    assert_eq!(run.stdout, "");
}

#[test]
fn an_interrupted_create_closes_each_running_repository_and_says_how_to_resume() {
    let env = TestEnv::new();
    let repos = repositories(&env, 12);
    // git that takes its time, so jobs are running when the signal comes.
    let slow_git = env.root().join("slow-git");
    std::fs::write(
        &slow_git,
        "#!/bin/sh\ncase \"$*\" in *version*) ;; *) sleep 0.3 ;; esac\nexec git \"$@\"\n",
    )
    .unwrap();
    env.program("chmod", ["755", slow_git.to_str().unwrap()])
        .assert_success();
    let mut child = env
        .gitbak(["create", "--parallel", "2", "--id", ID, "--git"])
        .args([&slow_git])
        .backup_path()
        .storages_of(&refs(&repos))
        .jobs(&refs(&repos))
        .spawn();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let mut signalled = None;
    let begin = Instant::now();
    for line in stdout.lines() {
        let line: Value = serde_json::from_str(&line.unwrap()).unwrap();
        lines.push(line);
        let completed = lines
            .iter()
            .filter(|line| line["msg"] == "completed create")
            .count();
        // On a start after two completions: that job is surely running
        // (its git sleeps), however the machine schedules the rest.
        let started_now = lines
            .last()
            .is_some_and(|line| line["msg"] == "started create");
        if signalled.is_none() && completed >= 2 && started_now {
            let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
            rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
            signalled = Some(lines.len());
        }
        assert!(begin.elapsed() < Duration::from_secs(120), "no end");
    }
    let status = child.wait().unwrap();
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(signalled.is_some(), "ended before the signal:\n{text}");
    let msg = |line: &Value| line["msg"].as_str().unwrap().to_owned();
    let path = |line: &Value| line["relative_path"].as_str().unwrap_or("").to_owned();
    let started: Vec<String> = lines
        .iter()
        .filter(|line| msg(line) == "started create")
        .map(path)
        .collect();
    assert!(started.len() < repos.len(), "nothing stopped:\n{text}");
    // Each repository that started has exactly one closing line.
    for repo in &started {
        let closing = lines
            .iter()
            .filter(|line| path(line) == *repo)
            .filter(|line| msg(line) != "started create")
            .map(msg)
            .collect::<Vec<_>>();
        assert!(
            closing == ["completed create"] || closing == ["create interrupted"],
            "{repo}: {closing:?}\n{text}"
        );
    }
    assert!(
        lines.iter().all(|line| msg(line) != "create failed"),
        "{text}"
    );
    let interrupted: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| msg(line) == "create interrupted")
        .map(|(index, _)| index)
        .collect();
    assert!(!interrupted.is_empty(), "no running repository:\n{text}");
    // Nothing starts once the run knows it must stop.
    assert!(
        lines[interrupted[0]..]
            .iter()
            .all(|line| msg(line) != "started create"),
        "{text}"
    );
    let summary = lines
        .iter()
        .find(|line| msg(line).starts_with("create: ") && line.get("interrupted").is_some())
        .unwrap_or_else(|| panic!("no summary:\n{text}"));
    assert_eq!(summary["interrupted"], interrupted.len(), "{text}");
    assert_eq!(summary["level"], "error");
    let resume = lines.last().map(msg).unwrap();
    assert!(
        resume.contains(&format!("gitbak create --id {ID} ")),
        "{resume}"
    );

    // The rerun the message asks for completes the backup.
    let run = env
        .gitbak(["create", "--id", ID])
        .backup_path()
        .storages_of(&refs(&repos))
        .jobs(&refs(&repos))
        .run();
    run.assert_success();
    for repo in &repos {
        let name = &repo.relative_path;
        assert!(
            env.backup_file(&format!("manifests/default/{name}/{ID}.toml"))
                .exists(),
            "{name}"
        );
    }
}

#[test]
fn verify_at_a_terminal_counts_backups_and_clears_before_its_report() {
    let env = TestEnv::new();
    let repos = repositories(&env, 6);
    env.gitbak(["create", "--id", ID])
        .backup_path()
        .storages_of(&refs(&repos))
        .jobs(&refs(&repos))
        .run()
        .assert_success();
    // --deep: slow enough (a restore each) for the bar to be drawn.
    let run = env
        .gitbak(["verify", "--deep"])
        .backup_path()
        .run_in_terminal(false);
    run.assert_success();
    let screen = run.stdout.replace("\r\n", "\n");
    assert!(screen.contains("verifying the backups of "), "{screen}");
    assert!(
        (0..6).any(|done| screen.contains(&format!(" {done}/6 "))),
        "no count of backups:\n{screen}"
    );
    // Cleared before the report, which ends the output.
    let report = screen
        .rfind("All sound.")
        .unwrap_or_else(|| panic!("no report:\n{screen}"));
    assert!(
        screen[..report].rfind("\x1b[2K").is_some(),
        "display not cleared before the report:\n{screen}"
    );
}

#[test]
fn list_and_prune_at_a_terminal_count_the_manifests_they_read() {
    let env = TestEnv::new();
    let repos = repositories(&env, 40);
    env.gitbak(["create", "--id", ID])
        .backup_path()
        .storages_of(&refs(&repos))
        .jobs(&refs(&repos))
        .run()
        .assert_success();
    for command in [
        &["list"][..],
        &["prune", "--keep-last", "1", "--dry-run"][..],
    ] {
        let run = env.gitbak(command).backup_path().run_in_terminal(false);
        run.assert_success();
        let screen = run.stdout.replace("\r\n", "\n");
        // Drawn at least once (the steady tick), counting toward the 80
        // manifests (40 per-id and 40 +latest.toml), and cleared before
        // the output.
        assert!(
            screen.contains("reading the backups of ") || screen.contains("opening the backup"),
            "{command:?}: no display:\n{screen}"
        );
        if let Some(at) = screen.find(" manifests read: ") {
            // "N/M manifests read", M at most the 80 manifests there are.
            let count = screen[..at].rsplit(' ').next().unwrap();
            let listed: usize = count
                .split('/')
                .nth(1)
                .unwrap()
                .trim_end_matches('+')
                .parse()
                .unwrap();
            assert!(listed <= 80, "{count}");
        }
        let last_clear = screen.rfind("\x1b[2K").unwrap_or(0);
        assert!(
            !screen[last_clear..].contains("manifests read"),
            "{command:?}: the display is left on screen:\n{screen}"
        );
    }
}
