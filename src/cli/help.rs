//! The text under each command's `--help`: examples first, then notes.
//! The man pages render the same text (`generate::man`), so it follows
//! three rules they rely on: a paragraph whose first line ends in `:` is
//! a section headed by that line (`Examples:` becomes EXAMPLES); lines
//! indented by two spaces are literal (commands, `#` comments, JSON), kept
//! as they are; a blank line ends a paragraph. Lines fit 80 columns, so
//! clap never wraps a command in the middle. Every command has an
//! `Examples:` section (tests/generated.rs checks it).

/// `gitbak --help`.
pub const GITBAK: &str = "\
Input:
Each line of stdin names one repository, as GitLab's backup.rake writes
them for gitaly-backup:
  {\"storage_name\":\"default\",\"relative_path\":\"@hashed/6b/86/6b86...b4b.git\"}

Examples:
  # Every repository on this node into a directory, then one of them back:
  gitbak create --discover --path /backups/gitlab
  echo '{\"storage_name\":\"default\",\"relative_path\":\"group/project.git\"}' |
    gitbak restore --path /backups/gitlab
  # More in gitbak create --help and gitbak restore --help.

Exit status:
0 all done, 1 some repository failed, 2 usage or configuration error,
3 gitbak verify found a broken backup, 130 interrupted.";

/// `gitbak create --help`.
pub const CREATE: &str = "\
Examples:
  # The repositories of GitLab's job lines (as backup.rake writes them):
  gitbak create --path /var/opt/gitlab/backups/repositories < jobs.jsonl
  # Nightly from /etc/cron.d, as the repositories' owner, incremental:
  30 2 * * * git /usr/local/bin/gitbak create --discover --incremental \\
    --path /backups/gitlab
  # On each of several Gitaly nodes: its own storages, one bucket, one id:
  gitbak create --discover --local-storages-only --id 20240101000000 \\
    --path 's3://backups?region=eu-west-1'
  # From GitLab, once /etc/gitlab/gitlab.rb makes gitbak its gitaly-backup
  # (gitlab_rails['backup_gitaly_backup_path'] = '/usr/local/bin/gitbak'),
  # backup.rake runs gitbak for the repositories:
  gitlab-backup create";

/// `gitbak restore --help`.
pub const RESTORE: &str = "\
Examples:
  # One project from its latest backup; hashed storage names it by the
  # SHA-256 of the project's id (here 42):
  h=$(printf 42 | sha256sum | cut -c1-64)
  p=\"@hashed/${h:0:2}/${h:2:2}/$h.git\"
  printf '{\"storage_name\":\"default\",\"relative_path\":\"%s\"}\\n' \"$p\" |
    gitbak restore --path /backups/gitlab
  # The repositories of jobs.jsonl as they were at a time, or from one backup:
  gitbak restore --path /backups/gitlab --at 2024-01-01T12:00:00Z < jobs.jsonl
  gitbak restore --path /backups/gitlab --id 20240101000000 < jobs.jsonl
  # Disaster recovery: every repository the location has a backup of, on
  # the storages configured here, each from its latest backup (or --at):
  gitbak restore --all --path /backups/gitlab
  # Everything, with the rest of GitLab (backup.rake runs gitbak, see create):
  gitlab-backup restore BACKUP=1700000000_2026_01_01_17.0.0

Before restoring:
Stop the services that write to repositories (gitlab-ctl stop puma;
gitlab-ctl stop sidekiq), as for gitlab-backup restore.";

/// `gitbak completions --help`.
pub const COMPLETIONS: &str = "\
Examples:
  gitbak completions bash > /usr/share/bash-completion/completions/gitbak
  gitbak completions zsh > /usr/local/share/zsh/site-functions/_gitbak
  gitbak completions fish > ~/.config/fish/completions/gitbak.fish";

#[cfg(test)]
mod tests {
    #[test]
    fn lines_fit_80_columns() {
        for text in [
            super::GITBAK,
            super::CREATE,
            super::RESTORE,
            super::COMPLETIONS,
        ] {
            for line in text.lines() {
                assert!(line.chars().count() < 80, "too long for 80 columns: {line}");
            }
        }
    }
}
