//! The `git` binary: the only place gitbak runs it.
//!
//! `Git` builds hermetic commands (no user or system config surprises, any
//! repository owner accepted), runs them, and turns failures into `GitError`
//! with git's last stderr line. Each submodule is one area of git; none of
//! them touches backup storage.

pub mod bundle;
pub mod config_file;
pub mod increment;
pub mod refs;
pub mod refs_files;
pub mod repo;
mod stream;
pub mod version;

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

pub use stream::GitReader;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {command} failed ({status}): {stderr_tail}")]
    Failed {
        command: String,
        status: ExitStatus,
        stderr_tail: String,
    },
    #[error("cannot run git ({program}): {source}; is git installed and on PATH?")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("git {command}: {source}")]
    Io {
        command: String,
        source: std::io::Error,
    },
    #[error("git {command} printed something gitbak cannot read: {detail}")]
    Unexpected { command: String, detail: String },
    #[error("{0}")]
    Invalid(String),
    #[error("git {command} stopped: gitbak was interrupted")]
    Cancelled { command: String },
    #[error(
        "git {found} ({program}) is too old: gitbak needs git {minimum} or newer; \
         install a newer git, or point --git (GITBAK_GIT) at one"
    )]
    TooOld {
        program: String,
        found: version::GitVersion,
        minimum: version::GitVersion,
    },
}

/// Object hash of a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectFormat {
    Sha1,
    Sha256,
}

impl ObjectFormat {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sha1" => Some(Self::Sha1),
            "sha256" => Some(Self::Sha256),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
        }
    }

    pub fn hex_len(self) -> usize {
        match self {
            Self::Sha1 => 40,
            Self::Sha256 => 64,
        }
    }
}

impl fmt::Display for ObjectFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Reference storage backend of a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefFormat {
    Files,
    Reftable,
}

impl RefFormat {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "files" => Some(Self::Files),
            "reftable" => Some(Self::Reftable),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Files => "files",
            Self::Reftable => "reftable",
        }
    }
}

/// Environment variables that would redirect git away from the repository
/// we name, or make it prompt.
const SCRUBBED_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_QUARANTINE_PATH",
    "GIT_REPLACE_REF_BASE",
];

/// How to run git. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Git {
    program: PathBuf,
    /// `pack.threads` for each pack-objects, so parallel jobs share the cores.
    pack_threads: usize,
    /// Cancelled: every running git is killed and reaped, and its caller
    /// gets `GitError::Cancelled`.
    cancel: CancellationToken,
}

impl Git {
    pub fn new(program: PathBuf, pack_threads: usize, cancel: CancellationToken) -> Self {
        Self {
            program: resolve_program(program),
            pack_threads: pack_threads.max(1),
            cancel,
        }
    }

    /// git with a scrubbed environment and piped output, killed on drop
    /// and when gitbak dies.
    fn base_command(&self) -> Command {
        let mut command = Command::new(&self.program);
        die_with_parent(&mut command);
        // A process group of its own: Ctrl-C at a terminal signals the whole
        // foreground group, and a git killed by it before gitbak sees the
        // signal would make its job fail (and the next one start) instead
        // of ending as interrupted. gitbak kills git itself on cancel.
        command.process_group(0);
        for name in SCRUBBED_ENV {
            command.env_remove(name);
        }
        command
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_NO_REPLACE_OBJECTS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// A git command for `repository` (a bare repository's directory).
    pub(crate) fn command<I, S>(&self, repository: &Path, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.base_command();
        // Repositories belong to the Gitaly user; gitbak may run as root.
        command
            .args(["-c", "safe.directory=*", "-c", "core.hooksPath=/dev/null"])
            .arg("--git-dir")
            .arg(repository)
            .args(args);
        command
    }

    /// Spawns a git command in `repository` and writes `input` to its stdin
    /// from a task, so a large input never deadlocks against git's output.
    pub(crate) fn spawn_with_input(
        &self,
        repository: &Path,
        args: &[&str],
        input: Vec<u8>,
        stdout: Stdio,
    ) -> Result<(tokio::process::Child, tokio::task::JoinHandle<()>), GitError> {
        let mut command = self.command(repository, args);
        command.stdin(Stdio::piped()).stdout(stdout);
        let mut child = self.spawn(&mut command)?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| GitError::Invalid("git stdin is not piped".into()))?;
        let feeder = tokio::spawn(async move {
            // A write error means git died; its exit status tells why.
            let _ = tokio::io::AsyncWriteExt::write_all(&mut stdin, &input).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stdin).await;
        });
        Ok((child, feeder))
    }

    /// Runs a git command with `input` on stdin and `stdout` where its
    /// output goes, and returns that output when it was piped.
    pub(crate) async fn run_with_input(
        &self,
        repository: &Path,
        args: &[&str],
        input: Vec<u8>,
        stdout: Stdio,
    ) -> Result<Vec<u8>, GitError> {
        let (child, feeder) = self.spawn_with_input(repository, args, input, stdout)?;
        self.complete(child, feeder, &describe(args)).await
    }

    /// Waits for a child spawned by `spawn_with_input` and its feeder;
    /// its stdout when piped, or a `Failed` error with git's last line.
    pub(crate) async fn complete(
        &self,
        child: Child,
        feeder: tokio::task::JoinHandle<()>,
        command: &str,
    ) -> Result<Vec<u8>, GitError> {
        let output = self.finish(child, command).await;
        let _ = feeder.await;
        let output = output?;
        if !output.status.success() {
            return Err(GitError::Failed {
                command: command.to_owned(),
                status: output.status,
                stderr_tail: stderr_tail(&output.stderr),
            });
        }
        Ok(output.stdout)
    }

    /// Spawns a prepared command.
    pub(crate) fn spawn(&self, command: &mut Command) -> Result<Child, GitError> {
        command.spawn().map_err(|source| self.spawn_error(source))
    }

    /// Waits for a child, or kills and reaps it when the run is cancelled:
    /// once this returns, git no longer writes anywhere, so a caller may
    /// remove what it was writing into. Cancel-safe (`Child::wait` is).
    pub(crate) async fn wait(
        &self,
        child: &mut Child,
        command: &str,
    ) -> Result<ExitStatus, GitError> {
        tokio::select! {
            status = child.wait() => status.map_err(|source| GitError::Io {
                command: command.to_owned(),
                source,
            }),
            () = self.cancel.cancelled() => {
                let _ = child.kill().await;
                Err(GitError::Cancelled { command: command.to_owned() })
            }
        }
    }

    /// Reads a child's piped stdout and stderr to the end while waiting
    /// for it (cancellation as for `wait`).
    pub(crate) async fn finish(
        &self,
        mut child: Child,
        command: &str,
    ) -> Result<std::process::Output, GitError> {
        let stdout = read_to_end(child.stdout.take());
        let stderr = read_stderr_tail(child.stderr.take());
        let (status, stdout, stderr) = tokio::join!(self.wait(&mut child, command), stdout, stderr);
        Ok(std::process::Output {
            status: status?,
            stdout,
            stderr,
        })
    }

    fn spawn_error(&self, source: std::io::Error) -> GitError {
        GitError::Spawn {
            program: self.program.display().to_string(),
            source,
        }
    }

    /// Runs a short git command and returns its stdout; a non-zero exit is
    /// an error unless `allowed` says otherwise.
    pub(crate) async fn output(
        &self,
        repository: &Path,
        args: &[&str],
        allowed_status: &[i32],
    ) -> Result<(i32, Vec<u8>), GitError> {
        let child = self.spawn(&mut self.command(repository, args))?;
        let output = self.finish(child, &describe(args)).await?;
        let code = output.status.code().unwrap_or(-1);
        if output.status.success() || allowed_status.contains(&code) {
            return Ok((code, output.stdout));
        }
        Err(GitError::Failed {
            command: describe(args),
            status: output.status,
            stderr_tail: stderr_tail(&output.stderr),
        })
    }

    /// Runs git without a repository (for `git init`).
    pub(crate) fn command_without_repository<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.base_command();
        command.args(args);
        command
    }

    pub fn pack_threads(&self) -> usize {
        self.pack_threads
    }
}

/// Most of git's stderr kept for an error message: its last line is what
/// the message shows, and a chatty git must not grow gitbak's memory.
const STDERR_KEEP: usize = 8 << 10;

/// Reads a child's stderr to its end, keeping the last `STDERR_KEEP`
/// bytes; a read error ends it early (git's exit status then tells why).
async fn read_stderr_tail(pipe: Option<tokio::process::ChildStderr>) -> Vec<u8> {
    let mut kept = Vec::new();
    if let Some(mut pipe) = pipe {
        let mut chunk = [0u8; 4096];
        while let Ok(read) = pipe.read(&mut chunk).await {
            if read == 0 {
                break;
            }
            kept.extend_from_slice(&chunk[..read]);
            if kept.len() > STDERR_KEEP {
                kept.drain(..kept.len() - STDERR_KEEP);
            }
        }
    }
    kept
}

/// Drains a child's stderr in a task from the moment it is spawned: git
/// blocks once it has written a pipe's worth (64 KiB) of stderr, and would
/// then never finish its other output either.
pub(crate) fn drain_stderr(child: &mut Child) -> tokio::task::JoinHandle<Vec<u8>> {
    tokio::spawn(read_stderr_tail(child.stderr.take()))
}

/// Reads a pipe to its end; a read error ends it early (git's exit status
/// then tells what went wrong).
async fn read_to_end(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes).await;
    }
    bytes
}

/// git dies with gitbak, even by kill -9: an orphaned `pack-objects` would
/// go on filling a temporary file nobody removes. The death signal fires
/// when the spawning *thread* exits; git is spawned only from the runtime's
/// worker threads (never from its blocking pool, whose idle threads exit),
/// and those live as long as gitbak.
fn die_with_parent(command: &mut Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs between fork and exec and makes only two
    // async-signal-safe system calls.
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            // gitbak died before the signal was armed.
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::other("gitbak exited"));
            }
            Ok(())
        });
    }
}

/// Pipe buffer asked for bundle streams: 1 MiB of kernel memory per stream.
const PIPE_SIZE: usize = 1 << 20;

/// The program's path, looked up in PATH once rather than at every spawn
/// (gitbak starts thousands of git processes in a run).
fn resolve_program(program: PathBuf) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    if program.components().count() != 1 {
        return program;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(&program))
            .find(|candidate| {
                std::fs::metadata(candidate)
                    .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
            })
    });
    // Not found: keep the name, so spawning fails with the usual message.
    found.unwrap_or(program)
}

/// One item per line, as git's `--stdin` modes read them.
pub(crate) fn lines<S: AsRef<str>>(items: &[S]) -> Vec<u8> {
    let mut input = Vec::with_capacity(items.len() * 65);
    for item in items {
        input.extend_from_slice(item.as_ref().as_bytes());
        input.push(b'\n');
    }
    input
}

/// The subcommand, for messages: the first argument after any `-c X`.
fn describe(args: &[&str]) -> String {
    let mut rest = args;
    while let ["-c", _, tail @ ..] = rest {
        rest = tail;
    }
    rest.first()
        .filter(|arg| !arg.starts_with('-'))
        .map(|arg| (*arg).to_owned())
        .unwrap_or_default()
}

/// Git's last non-empty stderr line: the one that says what went wrong.
pub(crate) fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty());
    line.unwrap_or("no error message").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_is_the_last_line() {
        assert_eq!(
            stderr_tail(b"warning: x\nfatal: bad object\n\n"),
            "fatal: bad object"
        );
        assert_eq!(stderr_tail(b""), "no error message");
        assert_eq!(describe(&["show-ref", "--head"]), "show-ref");
        assert_eq!(
            describe(&["-c", "pack.threads=1", "pack-objects", "--revs"]),
            "pack-objects"
        );
    }
}
