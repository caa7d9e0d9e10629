//! gitbak: fast, safe backups of GitLab repositories, compatible with
//! gitaly-backup's on-storage layout and command line.
//!
//! This library is the binary's internals, not a stable API. Data flows one
//! way: `cli` → `cmd` → `job` → `git` / `storage` / `layout` / `node`.

// Unit tests may unwrap; production code may not (`[lints.clippy]` in Cargo.toml).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli;
pub mod cmd;
pub mod exit;
pub mod failpoint;
pub mod git;
pub mod job;
pub mod layout;
pub mod lock;
pub mod metrics;
pub mod node;
pub mod pack;
pub mod retention;
pub mod storage;
pub mod tempname;
