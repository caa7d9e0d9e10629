//! Backup chains laid out as gitaly-backup writes them (spec §3.4): a full
//! backup, then increments in directories of their own ids with continued
//! step numbers, each committed with its manifest listing the whole chain,
//! `+latest.toml` and a `backup_ids/` marker. A manifest may carry a chosen
//! `[gitbak] created_at`, as gitbak's own do.

use crate::regression::{write_gitaly_files, StepFiles};
use crate::support::{Repo, TestEnv};

pub(crate) struct Chain<'a> {
    env: &'a TestEnv,
    repo: &'a Repo,
    /// The backup id of each step so far; step n is at index n - 1.
    ids: Vec<String>,
    previous_refs: Option<String>,
}

impl<'a> Chain<'a> {
    pub(crate) fn new(env: &'a TestEnv, repo: &'a Repo) -> Self {
        Self {
            env,
            repo,
            ids: Vec::new(),
            previous_refs: None,
        }
    }

    /// The key of step `step`'s file (`bundle`, `refs`, `custom_hooks.tar`).
    pub(crate) fn step_key(&self, step: usize, extension: &str) -> String {
        self.repo
            .step_key(&self.ids[step - 1], &format!("{step:03}.{extension}"))
    }

    /// Backs the repository up as the chain's next step, under `id`.
    pub(crate) fn back_up(&mut self, id: &str, created_at: Option<&str>) {
        self.back_up_without(id, created_at, &[]);
    }

    /// `back_up`, but the step's bundle also leaves out `excluded` commits
    /// and what they reach, as if an earlier step had them: a broken chain.
    pub(crate) fn back_up_without(
        &mut self,
        id: &str,
        created_at: Option<&str>,
        excluded: &[&str],
    ) {
        self.ids.push(id.to_owned());
        let step = self.ids.len();
        let file = |extension: &str| self.env.backup_file(&self.step_key(step, extension));
        let files = StepFiles {
            bundle: file("bundle"),
            refs: file("refs"),
            custom_hooks: file("custom_hooks.tar"),
        };
        let mut not = self.previous_refs.clone();
        if !excluded.is_empty() {
            let not = not.get_or_insert_with(String::new);
            for commit in excluded {
                not.push_str(&format!("{commit} refs/excluded\n"));
            }
        }
        let refs = write_gitaly_files(self.env, &self.repo.path(), &files, not.as_deref());
        self.previous_refs = Some(refs);
        self.write_manifest(id, created_at);
    }

    fn write_manifest(&self, id: &str, created_at: Option<&str>) {
        let head = self.env.git(&self.repo.path(), ["symbolic-ref", "HEAD"]);
        let mut text = format!(
            "empty = false\nnon_existent = false\nobject_format = 'sha1'\nhead_reference = '{}'\n",
            head.trim_end()
        );
        for step in 1..=self.ids.len() {
            text.push_str(&format!(
                "\n[[steps]]\nbundle_path = '{}'\nref_path = '{}'\n",
                self.step_key(step, "bundle"),
                self.step_key(step, "refs")
            ));
            if step > 1 {
                let previous = self.step_key(step - 1, "refs");
                text.push_str(&format!("previous_ref_path = '{previous}'\n"));
            }
            let hooks = self.step_key(step, "custom_hooks.tar");
            text.push_str(&format!("custom_hooks_path = '{hooks}'\n"));
        }
        if let Some(created_at) = created_at {
            text.push_str(&format!("\n[gitbak]\ncreated_at = '{created_at}'\n"));
        }
        let manifest = self.env.backup_file(&self.repo.manifest_key(id));
        let dir = manifest.parent().unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(&manifest, &text).unwrap();
        std::fs::write(dir.join("+latest.toml"), &text).unwrap();
        std::fs::create_dir_all(self.env.backup_file("backup_ids")).unwrap();
        std::fs::write(self.env.backup_file(&format!("backup_ids/{id}")), b"").unwrap();
    }
}
