//! A repository in a storage root, what a test compares about it, and the
//! changes tests make to it after a backup.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::snapshot::{snapshot, Entry};
use super::TestEnv;

/// A repository as a job names it, and where its storage lives.
#[derive(Debug, Clone)]
pub struct Repo {
    pub storage_name: String,
    pub storage_root: PathBuf,
    pub relative_path: String,
}

impl Repo {
    pub fn new(storage_name: &str, storage_root: PathBuf, relative_path: &str) -> Self {
        Self {
            storage_name: storage_name.to_owned(),
            storage_root,
            relative_path: relative_path.to_owned(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.storage_root.join(&self.relative_path)
    }

    /// `group/<name>` for `…/<name>.git`.
    pub fn gl_project_path(&self) -> String {
        let name = self
            .relative_path
            .rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".git");
        format!("group/{name}")
    }

    /// The stdin line Rails would send for this repository.
    pub fn job_line(&self) -> String {
        serde_json::json!({
            "storage_name": self.storage_name,
            "relative_path": self.relative_path,
            "gl_project_path": self.gl_project_path(),
        })
        .to_string()
    }

    /// `NAME=DIR` for `--storage`.
    pub fn storage_arg(&self) -> String {
        format!("{}={}", self.storage_name, self.storage_root.display())
    }

    /// The same storage name and relative path on another storage root:
    /// where a restore to a fresh node puts it.
    pub fn on_root(&self, storage_root: PathBuf) -> Self {
        Self {
            storage_root,
            ..self.clone()
        }
    }

    /// The key prefix of step files of backup `id`.
    pub fn step_key(&self, id: &str, file: &str) -> String {
        format!("{}/{}/{id}/{file}", self.storage_name, self.relative_path)
    }

    pub fn manifest_key(&self, id: &str) -> String {
        format!(
            "manifests/{}/{}/{id}.toml",
            self.storage_name, self.relative_path
        )
    }
}

/// What a restore must reproduce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoState {
    /// `git for-each-ref`: every ref with its object and type.
    pub refs: String,
    /// The symbolic target of HEAD (possibly unborn), or `detached <oid>`.
    pub head: String,
    pub object_format: String,
    pub ref_format: String,
    /// Sorted ids of every object reachable from any ref.
    pub reachable_objects: Vec<String>,
    /// The `custom_hooks/` tree: names, modes, contents, symlink targets.
    pub custom_hooks: BTreeMap<String, Entry>,
}

impl RepoState {
    pub fn capture(env: &TestEnv, repository: &Path) -> Self {
        let formats = env.git(
            repository,
            ["rev-parse", "--show-object-format", "--show-ref-format"],
        );
        let mut formats = formats.lines().map(str::to_owned);
        let head = env.git_run(repository, ["symbolic-ref", "-q", "HEAD"], b"");
        let head = if head.code == 0 {
            head.stdout.trim_end().to_owned()
        } else {
            format!(
                "detached {}",
                env.git(repository, ["rev-parse", "HEAD"]).trim_end()
            )
        };
        let objects = env.git(repository, ["rev-list", "--objects", "--all"]);
        let mut reachable_objects: Vec<String> = objects
            .lines()
            .map(|line| line.split(' ').next().unwrap().to_owned())
            .collect();
        reachable_objects.sort();
        Self {
            refs: env.git(repository, ["for-each-ref"]),
            head,
            object_format: formats.next().unwrap(),
            ref_format: formats.next().unwrap(),
            reachable_objects,
            custom_hooks: snapshot(&repository.join("custom_hooks")),
        }
    }

    /// `assert_eq!` whose failure shows the first differing ref instead of
    /// 50 000 of them.
    pub fn assert_same(&self, actual: &RepoState, context: &str) {
        if self.refs != actual.refs {
            let first = self
                .refs
                .lines()
                .zip(actual.refs.lines())
                .find(|(want, got)| want != got);
            panic!(
                "{context}: refs differ ({} expected, {} found); first difference: {first:?}\nexpected:\n{}\nfound:\n{}",
                self.refs.lines().count(),
                actual.refs.lines().count(),
                head_of(&self.refs),
                head_of(&actual.refs)
            );
        }
        assert_eq!(self.head, actual.head, "{context}: HEAD");
        assert_eq!(
            self.object_format, actual.object_format,
            "{context}: object format"
        );
        assert_eq!(self.ref_format, actual.ref_format, "{context}: ref format");
        assert!(
            self.reachable_objects == actual.reachable_objects,
            "{context}: reachable objects differ"
        );
        assert_eq!(
            self.custom_hooks, actual.custom_hooks,
            "{context}: custom_hooks"
        );
    }
}

fn head_of(text: &str) -> String {
    text.lines().take(30).collect::<Vec<_>>().join("\n")
}

impl TestEnv {
    /// Commits one file on top of `reference` (a root commit if unborn)
    /// with git plumbing, moves the ref, and returns the commit id.
    pub fn add_commit(&self, repository: &Path, reference: &str, file: &str) -> String {
        let blob = self.git_with_input(
            repository,
            ["hash-object", "-w", "--stdin"],
            file.as_bytes(),
        );
        let parent = self.git_run(
            repository,
            [
                "rev-parse",
                "-q",
                "--verify",
                &format!("{reference}^{{commit}}"),
            ],
            b"",
        );
        let parent = (parent.code == 0).then(|| parent.stdout.trim_end().to_owned());
        let mut entries = String::new();
        if let Some(parent) = &parent {
            entries = self.git(repository, ["ls-tree", parent]);
        }
        entries.push_str(&format!("100644 blob {}\t{file}\n", blob.trim_end()));
        let tree = self.git_with_input(repository, ["mktree", "--missing"], entries.as_bytes());
        let mut args = vec![
            "commit-tree".to_owned(),
            tree.trim_end().to_owned(),
            "-m".into(),
            format!("add {file}"),
        ];
        if let Some(parent) = parent {
            args.extend(["-p".into(), parent]);
        }
        let commit = self.git(repository, &args).trim_end().to_owned();
        self.git(repository, ["update-ref", reference, &commit]);
        commit
    }

    /// Changes a repository after its backup, the way users do: a new
    /// commit on `main`, a new branch, and edited and added hooks when it
    /// has any. Returns the new branch's name.
    pub fn diverge(&self, repository: &Path) -> &'static str {
        let branch = "refs/heads/after-backup";
        let commit = self.add_commit(repository, "refs/heads/main", "after-backup.txt");
        self.git(repository, ["update-ref", branch, &commit]);
        let hooks = repository.join("custom_hooks");
        if hooks.is_dir() {
            std::fs::write(hooks.join("pre-receive"), "#!/bin/sh\nexit 1\n").unwrap();
            std::fs::write(hooks.join("post-update"), "#!/bin/sh\n").unwrap();
        }
        branch
    }
}
