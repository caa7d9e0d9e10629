//! The one integration-test binary: every test runs the real `gitbak`
//! binary against real git repositories built by `fixtures/repos/make-*.sh`.
//!
//! Run with `cargo test --test main`. Modules: `support` (TestEnv, hermetic
//! git, helpers), one module per command, `intake` (reading jobs from
//! stdin), `crash` (restores killed or interrupted at each failpoint),
//! `removal` (what a restore removes, through the library), and
//! `regression` (compatibility with backups gitaly-backup wrote, and fixed
//! bugs).
#![allow(clippy::unwrap_used)]

mod support;

mod cloud;
mod crash;
mod create;
mod generated;
mod intake;
mod regression;
mod removal;
mod restore;
mod storage;
