//! `TestEnv`: one temporary directory per test holding storage roots, a
//! backup location and a private HOME, with helpers that build fixture
//! repositories, run the real `gitbak` binary and run git.
//!
//! Everything runs hermetically (see `command::hermetic`): no system or
//! global git config, fixed identities and dates, no Gitaly config.

mod command;
mod repository;
mod snapshot;

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};

pub use command::{Peak, Run};
pub use repository::{Repo, RepoState};
pub use snapshot::{assert_no_temp_dirs, files_under, modified_times, sha256_hex, snapshot, Entry};

/// A temporary world for one test; removed on drop.
pub struct TestEnv {
    temp: tempfile::TempDir,
}

impl TestEnv {
    pub fn new() -> Self {
        let temp = tempfile::Builder::new()
            .prefix("gitbak-test-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(temp.path().join("home")).unwrap();
        Self { temp }
    }

    pub fn root(&self) -> &Path {
        self.temp.path()
    }

    fn home(&self) -> PathBuf {
        self.root().join("home")
    }

    /// The root directory of a storage (created if needed). Roots of
    /// different names never overlap, so "a fresh second storage root" is
    /// just another name.
    pub fn storage_root(&self, name: &str) -> PathBuf {
        let root = self.root().join("storages").join(name);
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    /// The backup location passed as `--path` (gitbak creates it).
    pub fn backups(&self) -> PathBuf {
        self.root().join("backups")
    }

    /// A file or directory of the backup location, by its storage key.
    pub fn backup_file(&self, key: &str) -> PathBuf {
        self.backups().join(key)
    }

    /// Builds `fixtures/repos/make-<name>.sh` in storage `default` at
    /// `fixtures/<name>.git`.
    pub fn fixture(&self, name: &str) -> Repo {
        self.fixture_at("default", name, &format!("fixtures/{name}.git"), &[])
    }

    /// Builds `make-<name>.sh` in the storage root named `root_name` (also
    /// used as the storage name) at `relative_path`, with extra environment
    /// variables for the script (e.g. `REFS`).
    pub fn fixture_at(
        &self,
        root_name: &str,
        name: &str,
        relative_path: &str,
        vars: &[(&str, &str)],
    ) -> Repo {
        let repo = Repo::new(root_name, self.storage_root(root_name), relative_path);
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/repos/make-{name}.sh"));
        let mut command = command::hermetic("bash", &self.home());
        command
            .arg(&script)
            .arg(&repo.storage_root)
            .arg(relative_path);
        for (key, value) in vars {
            command.env(key, value);
        }
        command::run(&mut command, b"").assert_success();
        repo
    }

    /// `gitbak <args>`; add stdin and run with the returned builder.
    pub fn gitbak<I, S>(&self, args: I) -> Gitbak<'_>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Gitbak {
            env: self,
            program: gitbak_binary(),
            args: args
                .into_iter()
                .map(|arg| arg.as_ref().to_owned())
                .collect(),
            stdin: Vec::new(),
            vars: Vec::new(),
            user: None,
        }
    }

    /// gitbak as GitLab runs it: through a symlink named `gitaly-backup`
    /// (as `backup_gitaly_backup_path` points at), which is gitaly mode.
    pub fn gitaly_backup<I, S>(&self, args: I) -> Gitbak<'_>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let link = self.root().join("bin").join("gitaly-backup");
        if !link.exists() {
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(gitbak_binary(), &link).unwrap();
        }
        Gitbak {
            program: link,
            ..self.gitbak(args)
        }
    }

    /// `gitbak create --path <backups> --storage …(of repos) --id <id>`,
    /// with one job line per repository.
    pub fn create(&self, id: &str, repos: &[&Repo]) -> Run {
        self.gitbak(["create", "--id", id])
            .backup_path()
            .storages_of(repos)
            .jobs(repos)
            .run()
    }

    /// `gitbak restore --path <backups> --storage …(of repos) [extra]`,
    /// with one job line per repository.
    pub fn restore(&self, repos: &[&Repo], extra: &[&str]) -> Run {
        self.gitbak(["restore"])
            .args(extra)
            .backup_path()
            .storages_of(repos)
            .jobs(repos)
            .run()
    }

    /// `git --git-dir <repository> <args>`, which must succeed; its stdout.
    pub fn git<I, S>(&self, repository: &Path, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.git_with_input(repository, args, b"")
    }

    /// Like `git`, feeding `input` to git's stdin.
    pub fn git_with_input<I, S>(&self, repository: &Path, args: I, input: &[u8]) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.git_run(repository, args, input)
            .assert_success()
            .stdout
            .clone()
    }

    /// `git --git-dir <repository> <args>` whatever its exit status.
    pub fn git_run<I, S>(&self, repository: &Path, args: I, input: &[u8]) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = command::hermetic("git", &self.home());
        command.arg("--git-dir").arg(repository).args(args);
        command::run(&mut command, input)
    }

    /// Any other program (tar, git init) in the hermetic environment.
    pub fn program<I, S>(&self, program: &str, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = command::hermetic(program, &self.home());
        command.args(args);
        command::run(&mut command, b"")
    }

    /// A new empty bare repository outside every storage, for checking
    /// bundles with git itself.
    pub fn scratch_repository(&self, name: &str, object_format: &str) -> PathBuf {
        let path = self.root().join("scratch").join(name);
        let format = format!("--object-format={object_format}");
        self.program(
            "git",
            ["init", "--bare", "-q", &format, path.to_str().unwrap()],
        )
        .assert_success();
        path
    }
}

/// The gitbak under test: cargo's build of this crate, or the binary
/// `GITBAK_TEST_BINARY` names (`.ci/run` runs the round trips again with
/// the static release binary of `.ci/build-static`).
pub fn gitbak_binary() -> PathBuf {
    std::env::var_os("GITBAK_TEST_BINARY").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_gitbak")),
        PathBuf::from,
    )
}

/// A `gitbak` invocation being built.
pub struct Gitbak<'a> {
    env: &'a TestEnv,
    /// The binary, or a link to it under another name.
    program: PathBuf,
    args: Vec<OsString>,
    stdin: Vec<u8>,
    vars: Vec<(String, String)>,
    user: Option<(u32, u32)>,
}

impl Gitbak<'_> {
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// `--path <backups>`.
    pub fn backup_path(self) -> Self {
        let path = self.env.backups();
        self.args([OsStr::new("--path"), path.as_os_str()])
    }

    /// One `--storage NAME=DIR` per distinct storage of `repos`.
    pub fn storages_of(self, repos: &[&Repo]) -> Self {
        let storages: BTreeSet<String> = repos.iter().map(|repo| repo.storage_arg()).collect();
        let mut this = self;
        for storage in storages {
            this = this.args(["--storage", &storage]);
        }
        this
    }

    /// An environment variable for gitbak (credentials of an emulator).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Several environment variables at once.
    pub fn envs(self, vars: &[(&str, &str)]) -> Self {
        vars.iter()
            .fold(self, |this, (name, value)| this.env(name, value))
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = input.into();
        self
    }

    /// Stdin of one job line per repository.
    pub fn jobs(self, repos: &[&Repo]) -> Self {
        let lines: String = repos.iter().map(|repo| repo.job_line() + "\n").collect();
        self.stdin(lines)
    }

    /// Runs gitbak as another user (the test must run as root).
    pub fn with_user(mut self, uid: u32, gid: u32) -> Self {
        self.user = Some((uid, gid));
        self
    }

    /// Runs gitbak while `producer` writes its stdin (see
    /// `command::run_fed`); the run and gitbak's peak memory.
    pub fn run_fed(self, producer: impl FnOnce(&mut dyn Write) + Send + 'static) -> (Run, Peak) {
        command::run_fed(&mut self.command(), producer)
    }

    pub fn run(self) -> Run {
        command::run(&mut self.command(), &self.stdin)
    }

    /// Runs gitbak in a pseudo-terminal, through util-linux's `script`:
    /// stdout and stderr go to the terminal (the run's `stdout` is what the
    /// terminal showed, `\r\n` line ends and escape sequences included);
    /// stdin is the builder's stdin, or the terminal with `tty_stdin`.
    pub fn run_in_terminal(self, tty_stdin: bool) -> Run {
        let quote = |text: &OsStr| format!("'{}'", text.to_str().unwrap().replace('\'', "'\\''"));
        let mut line = quote(self.program.as_os_str());
        for arg in &self.args {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        if !tty_stdin {
            let input = self.env.root().join("terminal-stdin");
            std::fs::write(&input, &self.stdin).unwrap();
            line.push_str(" < ");
            line.push_str(&quote(input.as_os_str()));
        }
        let mut command = command::hermetic("script", &self.env.home());
        command
            .args(["--quiet", "--return", "--command"])
            .arg(&line)
            .arg("/dev/null")
            // A terminal of a known size: the display fits its lines to it.
            .env("COLUMNS", "120")
            .env("LINES", "40")
            .env("TERM", "xterm");
        command.envs(self.vars.iter().map(|(name, value)| (name, value)));
        command::run(&mut command, b"")
    }

    /// Starts gitbak with piped stdin, stdout and stderr, for a test that
    /// acts while it runs (a signal); stdin is the builder's, then closed.
    pub fn spawn(self) -> std::process::Child {
        let mut command = self.command();
        command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = self.stdin.clone();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        child
    }

    fn command(&self) -> std::process::Command {
        let mut command = command::hermetic(&self.program, &self.env.home());
        command.args(&self.args);
        if let Some((uid, gid)) = self.user {
            std::os::unix::process::CommandExt::uid(&mut command, uid);
            std::os::unix::process::CommandExt::gid(&mut command, gid);
        }
        command.envs(self.vars.iter().map(|(name, value)| (name, value)));
        command
    }
}
