//! Running programs hermetically and reading what they printed, including
//! gitbak's JSON log lines (spec §6.2).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// A command with a cleared environment: only PATH survives, HOME is the
/// test's own, git reads no system or global config, commits get fixed
/// names and dates.
pub fn hermetic(program: impl AsRef<OsStr>, home: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ADVICE", "0")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@tests.invalid")
        .env("GIT_AUTHOR_DATE", "1800000000 +0000")
        .env("GIT_COMMITTER_NAME", "Test Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@tests.invalid")
        .env("GIT_COMMITTER_DATE", "1800000000 +0000")
        // An empty Gitaly config instead of /var/opt/gitlab/gitaly/config.toml:
        // on a machine running Gitaly, its storages must never leak into a
        // test (think `--discover`). Every test passes --storage and --path.
        .env("GITBAK_GITALY_CONFIG", "/dev/null");
    command
}

/// Runs `command` to completion with `input` on stdin.
pub fn run(command: &mut Command, input: &[u8]) -> Run {
    let input = input.to_vec();
    // A write error means the child stopped reading; its exit status says why.
    run_fed(command, move |stdin| {
        let _ = stdin.write_all(&input);
    })
    .0
}

/// Peak memory of a child, in KiB.
#[derive(Debug, Clone, Copy)]
pub struct Peak {
    /// The child's own peak RSS (VmHWM, its git children excluded), sampled
    /// every 5 ms while it ran. Not `wait4`'s ru_maxrss: that one also
    /// counts the test process's pages the child shared until its exec.
    pub own_kib: u64,
}

/// Runs `command` while `producer` writes its stdin on a thread of its own
/// (stdin closes when `producer` returns; a write error means the child
/// stopped reading, which the producer may ignore), measuring its peak RSS.
pub fn run_fed(
    command: &mut Command,
    producer: impl FnOnce(&mut dyn Write) + Send + 'static,
) -> (Run, Peak) {
    use std::io::Read;
    let description = format!("{command:?}");
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {description}: {error}"));
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || producer(&mut stdin));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        let status_file = format!("/proc/{pid}/status");
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let text = std::fs::read_to_string(&status_file).unwrap_or_default();
                let hwm = text
                    .lines()
                    .find_map(|line| line.strip_prefix("VmHWM:"))
                    .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok());
                peak = peak.max(hwm.unwrap_or(0));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            peak
        })
    };
    let status = child.wait().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let own_kib = sampler.join().unwrap();
    feeder.join().unwrap();
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    let code = status.code().unwrap_or(-1);
    let run = Run {
        description,
        code,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stdout_bytes: stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    (run, Peak { own_kib })
}

/// How a program ended and what it printed.
pub struct Run {
    pub description: String,
    pub code: i32,
    pub stdout: String,
    /// stdout unaltered, for binary output.
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "{} exited {} (expected {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.description, self.code, self.stdout, self.stderr
        );
        self
    }

    pub fn assert_success(&self) -> &Self {
        self.assert_code(0)
    }

    /// Every stdout line as JSON; gitbak prints nothing else there.
    pub fn log(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("stdout line is not JSON ({error}): {line:?}"))
            })
            .collect()
    }

    /// Log lines whose `msg` is `msg`.
    pub fn lines_with_msg(&self, msg: &str) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|line| line["msg"] == msg)
            .collect()
    }

    /// The relative paths of the jobs logged with `msg`.
    pub fn paths_with_msg(&self, msg: &str) -> BTreeSet<String> {
        self.lines_with_msg(msg)
            .iter()
            .map(|line| line["relative_path"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The one line logged with `msg` for `relative_path`.
    pub fn job_line(&self, msg: &str, relative_path: &str) -> Value {
        let lines: Vec<Value> = self
            .lines_with_msg(msg)
            .into_iter()
            .filter(|line| line["relative_path"] == relative_path)
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one {msg:?} line for {relative_path}; stdout:\n{}",
            self.stdout
        );
        lines.into_iter().next().unwrap()
    }

    /// The `error` of the failed job at `relative_path`.
    pub fn job_error(&self, command: &str, relative_path: &str) -> String {
        let line = self.job_line(&format!("{command} failed"), relative_path);
        assert_eq!(line["level"], "error");
        line["error"].as_str().unwrap().to_owned()
    }

    /// The closing `<command>: pipeline: N failures encountered:` message.
    pub fn failure_summary(&self) -> String {
        let summaries: Vec<String> = self
            .log()
            .into_iter()
            .filter_map(|line| {
                line["msg"]
                    .as_str()
                    .filter(|msg| msg.contains(": pipeline: "))
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(
            summaries.len(),
            1,
            "expected one failure summary; stdout:\n{}",
            self.stdout
        );
        summaries.into_iter().next().unwrap()
    }
}
