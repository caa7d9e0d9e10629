#![allow(clippy::unwrap_used)]
mod storage;
