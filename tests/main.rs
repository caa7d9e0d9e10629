//! The one integration-test binary: every test runs the real `gitbak`
//! binary against real git repositories built by `fixtures/repos/make-*.sh`.
//!
//! Run with `cargo test --test main`. Modules: `support` (TestEnv, hermetic
//! git, helpers), one module per command, `intake` (reading jobs from
//! stdin), `gitaly_mode` (gitbak as GitLab's backup.rake drives
//! gitaly-backup), `crash` (restores killed or interrupted at each
//! failpoint), `removal` (what a restore removes, through the library),
//! `refs` (refs read without git, as `git show-ref --head` prints them),
//! `compat` (pointer and legacy layouts, HEAD and hooks as gitaly wrote
//! them, and gitbak backups read by gitaly-backup's algorithm), `history`
//! (ten incremental backups of a changing repository), `list`, `prune` and
//! `verify` (what a location holds, retention, and whether it restores),
//! `output` (progress in a pseudo-terminal, log formats, the summary,
//! interrupting), `preflight` (mistakes caught once at start), `metrics`
//! (`--metrics-file`),
//! `requirements` (the git version
//! gitbak needs), `generated` (completions, man pages and `--help`
//! examples), `readme` (the README's quick start and options table), and
//! `regression` (compatibility with backups gitaly-backup
//! wrote, and fixed bugs).
#![allow(clippy::unwrap_used)]

mod support;

mod cloud;
mod compat;
mod crash;
mod create;
mod generated;
mod gitaly_mode;
mod history;
mod intake;
mod list;
mod metrics;
mod output;
mod preflight;
mod prune;
mod readme;
mod refs;
mod regression;
mod removal;
mod requirements;
mod restore;
mod storage;
mod verify;
