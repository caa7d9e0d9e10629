//! Reading jobs from stdin (issue #8, defects 1 and 7): no line is lost
//! however stdin arrives, reading stays a bounded window ahead of the
//! running jobs, an oversized object stops the run at its line, log lines
//! echo only a bounded prefix of input values, and a panicking job names
//! its repository.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{Repo, TestEnv};

const ID: &str = "20240101000000";

/// A job line for a repository of `storage`, ~150 bytes like Rails' own.
fn job_line(storage: &str, n: usize) -> String {
    format!(
        "{{\"storage_name\":\"{storage}\",\"relative_path\":\"@hashed/{:02x}/{:02x}/{n:064}.git\",\"gl_project_path\":\"group/project-{n}\",\"always_create\":true}}\n",
        n % 251,
        n % 241
    )
}

fn relative_path(n: usize) -> String {
    format!("@hashed/{:02x}/{:02x}/{n:064}.git", n % 251, n % 241)
}

/// Writes `bytes` as a slow producer would: pieces of 1–13 bytes, with a
/// short sleep every so often, so gitbak sees lines split at every offset
/// while jobs finish. Stops quietly if gitbak stops reading.
fn trickle(bytes: &[u8], out: &mut dyn Write) {
    let (mut at, mut seed, mut writes) = (0usize, 7u32, 0u32);
    while at < bytes.len() {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let size = 1 + (seed >> 16) as usize % 13;
        let end = (at + size).min(bytes.len());
        if out.write_all(&bytes[at..end]).is_err() {
            return;
        }
        at = end;
        writes += 1;
        if writes % 1_500 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn twenty_thousand_lines_in_odd_pieces_are_all_read() {
    // Defect 1: with --local-storages-only jobs finish while the next line
    // is half read; today's main stopped after 67–199 of these jobs.
    let env = TestEnv::new();
    let root = env.storage_root("default");
    let input: String = (0..20_000).map(|n| job_line("elsewhere", n)).collect();
    assert!(input.len() > 1 << 20);
    let begin = Instant::now();
    let (run, _) = env
        .gitbak(["create", "--local-storages-only", "--id", ID])
        .backup_path()
        .args(["--storage", &format!("default={}", root.display())])
        .run_fed(move |stdin| trickle(input.as_bytes(), stdin));
    eprintln!("20,000 trickled lines: {:?}", begin.elapsed());
    run.assert_success();
    let expected: BTreeSet<String> = (0..20_000).map(relative_path).collect();
    assert_eq!(run.paths_with_msg("skipped create"), expected);
    assert_eq!(run.lines_with_msg("skipped create").len(), 20_000);
    assert!(
        run.log().iter().all(|line| line["level"] != "error"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_resumed_run_fed_in_odd_pieces_backs_up_every_line() {
    // Defect 1, as a resumed backup meets it: the repositories done by the
    // first run finish at once in the second, racing the reader. Missing
    // repositories get a `non_existent` manifest, a few real ones are
    // backed up, under distinct paths.
    let env = TestEnv::new();
    let real: Vec<Repo> = (0..4)
        .map(|n| {
            let fixture = ["empty", "custom-hooks"][n % 2];
            env.fixture_at("default", fixture, &format!("real/{n}.git"), &[])
        })
        .collect();
    let root = env.storage_root("default");
    let mut lines: Vec<String> = (0..1_200).map(|n| job_line("default", n)).collect();
    for (n, repo) in real.iter().enumerate() {
        lines.insert(n * 300 + 7, repo.job_line() + "\n");
    }
    let mut paths: Vec<String> = (0..1_200).map(relative_path).collect();
    paths.extend(real.iter().map(|repo| repo.relative_path.clone()));
    let storage = format!("default={}", root.display());

    // The first run backs up the first half, the second resumes with all.
    let half: String = lines[..lines.len() / 2].concat();
    let all: String = lines.concat();
    assert!(all.len() > 128 << 10);
    let begin = Instant::now();
    let (first, _) = env
        .gitbak(["create", "--id", ID])
        .backup_path()
        .args(["--storage", &storage])
        .run_fed(move |stdin| trickle(half.as_bytes(), stdin));
    first.assert_success();
    let (second, _) = env
        .gitbak(["create", "--id", ID])
        .backup_path()
        .args(["--storage", &storage])
        .run_fed(move |stdin| trickle(all.as_bytes(), stdin));
    eprintln!("two runs over {} lines: {:?}", lines.len(), begin.elapsed());
    second.assert_success();
    let logged: BTreeSet<String> = second
        .paths_with_msg("skipped create")
        .union(&second.paths_with_msg("completed create"))
        .cloned()
        .collect();
    assert_eq!(logged, paths.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(
        second.lines_with_msg("skipped create").len(),
        lines.len() / 2,
        "the first half is already done"
    );
    for path in &paths {
        let manifest = env.backup_file(&format!("manifests/default/{path}/{ID}.toml"));
        assert!(manifest.is_file(), "no manifest for {path}");
    }
    for repo in &real {
        let manifest = std::fs::read_to_string(env.backup_file(&repo.manifest_key(ID))).unwrap();
        assert!(manifest.contains("non_existent = false"), "{manifest}");
    }
    assert!(env.backup_file(&format!("backup_ids/{ID}")).is_file());
}

#[test]
fn a_hundred_thousand_lines_keep_peak_rss_under_64_mib() {
    let env = TestEnv::new();
    let root = env.storage_root("default");
    let input: String = (0..100_000).map(|n| job_line("elsewhere", n)).collect();
    let begin = Instant::now();
    let (run, peak) = env
        .gitbak(["create", "--local-storages-only", "--id", ID])
        .backup_path()
        .args(["--storage", &format!("default={}", root.display())])
        .run_fed(move |stdin| {
            let _ = stdin.write_all(input.as_bytes());
        });
    eprintln!("100,000 lines: peak RSS {peak:?}, {:?}", begin.elapsed());
    run.assert_success();
    assert_eq!(run.lines_with_msg("skipped create").len(), 100_000);
    assert!(peak.own_kib < 64 << 10, "peak RSS {peak:?}");
}

#[test]
fn reading_waits_ten_thousand_jobs_ahead_of_a_slow_one() {
    // Defect 7: one slow repository holds the only slot; gitbak reads
    // 10,000 jobs ahead of it and then stdin waits. Memory stays low with
    // the whole window queued.
    let env = TestEnv::new();
    let slow = env.fixture("custom-hooks");
    let wrapper = env.root().join("slow-git");
    let marker = env.root().join("slept");
    std::fs::write(
        &wrapper,
        format!(
            // Not the version check at start: the first job's git sleeps.
            "#!/bin/sh\nif [ \"$1\" != --version ] && mkdir '{}' 2>/dev/null; then sleep 5; fi\n\
             exec git \"$@\"\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let lines: Vec<String> = (0..30_000).map(|n| job_line("elsewhere", n)).collect();
    let line_length = lines[0].len();
    let mut input = slow.job_line() + "\n";
    input.push_str(&lines.concat());
    // How many lines gitbak had taken 2.5 s in, while the slow job (5 s)
    // still held the only slot.
    let taken = Arc::new(AtomicUsize::new(usize::MAX));
    let sample = taken.clone();
    let (run, peak) = env
        .gitbak([
            "create",
            "--local-storages-only",
            "--parallel",
            "1",
            "--id",
            ID,
        ])
        .backup_path()
        .storages_of(&[&slow])
        .args(["--git", wrapper.to_str().unwrap()])
        .run_fed(move |stdin| {
            let written = Arc::new(AtomicUsize::new(0));
            let counter = written.clone();
            let sampler = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(2_500));
                sample.store(counter.load(Ordering::SeqCst), Ordering::SeqCst);
            });
            for line in input.lines() {
                if stdin.write_all(line.as_bytes()).is_err() || stdin.write_all(b"\n").is_err() {
                    break;
                }
                written.fetch_add(1, Ordering::SeqCst);
            }
            sampler.join().unwrap();
        });
    run.assert_success();
    let taken = taken.load(Ordering::SeqCst);
    eprintln!("window test: {taken} lines taken while blocked, peak RSS {peak:?}");
    run.job_line("completed create", &slow.relative_path);
    assert_eq!(run.lines_with_msg("skipped create").len(), 30_000);
    // The slow job and 10,000 read ahead of it, plus what the pipe (64 KiB)
    // and gitbak's read buffer (8 KiB) hold.
    let buffered = 2 * (72 << 10) / line_length + 10;
    assert!(
        (10_001..=10_001 + buffered).contains(&taken),
        "{taken} lines taken (window 10,000, up to {buffered} buffered)"
    );
    assert!(peak.own_kib < 64 << 10, "peak RSS {peak:?}");
}

#[test]
fn an_object_over_64_kib_stops_the_run_at_its_line() {
    let env = TestEnv::new();
    let (first, after) = (env.fixture("empty"), env.fixture("custom-hooks"));
    let huge = format!(
        "{{\"storage_name\":\"default\",\"relative_path\":\"{}.git\"}}\n",
        "x".repeat(1 << 20)
    );
    let input = format!(
        "{}\n{}{huge}{}\n",
        first.job_line(),
        job_line("elsewhere", 1),
        after.job_line()
    );
    let (run, peak) = env
        .gitbak(["create", "--local-storages-only", "--id", ID])
        .backup_path()
        .storages_of(&[&first])
        .run_fed(move |stdin| trickle(input.as_bytes(), stdin));
    eprintln!("1 MiB object: peak RSS {peak:?}");
    run.assert_code(1);
    let errors: Vec<String> = run
        .log()
        .into_iter()
        .filter(|line| line["level"] == "error")
        // The run's summary (its counts as fields) is an error line too.
        .filter(|line| line.get("written").is_none())
        .map(|line| line["msg"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        errors,
        [
            "create: stdin line 3: the JSON object that starts there is longer than 64 KiB; \
          is this really a job line?"
        ]
    );
    run.job_line("completed create", &first.relative_path);
    run.job_line("skipped create", &relative_path(1));
    assert!(
        run.paths_with_msg("started create").len() == 2,
        "{}",
        run.stdout
    );
    assert!(
        !env.backup_file("backup_ids").exists(),
        "marker written for a run with bad input"
    );
    assert!(run.stdout.lines().all(|line| line.len() < 1024));
    assert!(peak.own_kib < 64 << 10, "peak RSS {peak:?}");
}

#[test]
fn log_lines_echo_a_bounded_prefix_of_input_values() {
    let env = TestEnv::new();
    let root = env.storage_root("default");
    let long_path = format!("group/{}.git", "p".repeat(60_000));
    let long_project = "q".repeat(3_000);
    let input = format!(
        "{}\n",
        serde_json::json!({
            "storage_name": "nowhere",
            "relative_path": long_path,
            "gl_project_path": long_project,
        })
    );
    let run = env
        .gitbak(["create", "--id", ID])
        .backup_path()
        .args(["--storage", &format!("default={}", root.display())])
        .stdin(input)
        .run();
    run.assert_code(1);
    let failed = &run.lines_with_msg("create failed")[0];
    let logged = failed["relative_path"].as_str().unwrap();
    assert_eq!(logged, format!("{}…", &long_path[..512]));
    assert_eq!(
        failed["gl_project_path"].as_str().unwrap(),
        format!("{}…", &long_project[..512])
    );
    assert!(run
        .failure_summary()
        .contains(&format!("{}…", &long_path[..512])));
    for line in run.stdout.lines() {
        assert!(line.len() < 8 << 10, "a log line of {} bytes", line.len());
    }
}

#[test]
fn a_panicking_job_names_its_repository() {
    let env = TestEnv::new();
    let repo = env.fixture("empty");
    let run = env
        .gitbak(["create", "--id", ID])
        .backup_path()
        .storages_of(&[&repo])
        .env("GITBAK_FAILPOINTS", "job-start=panic")
        .jobs(&[&repo])
        .run();
    run.assert_code(1);
    let error = run.job_error("create", &repo.relative_path);
    assert_eq!(
        error,
        "internal error: gitbak panicked while working on it (failpoint job-start); please report this"
    );
    assert_eq!(
        run.failure_summary(),
        format!(
            "create: pipeline: 1 failures encountered:\n - {} (group/empty): {error}",
            repo.relative_path
        )
    );
}

#[test]
fn after_a_signal_queued_jobs_never_start() {
    // SIGTERM as the first job starts (`job-start=term`), with 500 jobs
    // queued behind it: none of them starts, the running one may finish
    // or fail (its git is killed) but is not reported as a failure, and
    // the run exits 130.
    let env = TestEnv::new();
    let repo = env.fixture("custom-hooks");
    let mut input = repo.job_line() + "\n";
    input.extend((0..500).map(|n| job_line("elsewhere", n)));
    let run = env
        .gitbak([
            "create",
            "--local-storages-only",
            "--parallel",
            "1",
            "--id",
            ID,
        ])
        .backup_path()
        .storages_of(&[&repo])
        // The pause after the signal keeps the first job running until the
        // signal is seen, however loaded the machine: without it, a job that
        // ends first hands its slot on before the run knows it must stop.
        .env("GITBAK_FAILPOINTS", "job-start=term+sleep500")
        .stdin(input)
        .run();
    run.assert_code(130);
    // One job started (the scheduler may pick the skipped storage's first
    // job before the local one: it is just as much "the first job").
    assert_eq!(
        run.paths_with_msg("started create").len(),
        1,
        "{}",
        run.stdout
    );
    assert!(
        run.lines_with_msg("create failed").is_empty(),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("pipeline:"), "{}", run.stdout);
    let resume: Vec<serde_json::Value> = run
        .log()
        .into_iter()
        .filter(|line| {
            line["msg"]
                .as_str()
                .unwrap()
                .starts_with("create: interrupted (")
        })
        .collect();
    assert_eq!(resume.len(), 1, "{}", run.stdout);
    assert!(resume[0]["msg"].as_str().unwrap().ends_with(&format!(
        "to resume, run: gitbak create --id {ID} with the same options and job list"
    )));
    assert!(!env.backup_file("backup_ids").exists());
}
