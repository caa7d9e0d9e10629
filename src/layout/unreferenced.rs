//! Prune's record of unreferenced files: when a prune first found each
//! data file that no manifest names (or each leftover temporary file), so
//! that a later prune removes it only once `--grace` has passed since.
//!
//! One small JSON object under `gitbak-prune/`, which the catalogue never
//! takes for a backup. Losing it is safe: files then wait one more grace
//! period. Pure: no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::time::Timestamp;
use crate::storage::Key;

/// `gitbak-prune/unreferenced.json`.
pub fn record_key() -> Key {
    Key::new("gitbak-prune/unreferenced.json").expect("a constant, valid key")
}

/// Key → when a prune first found it unreferenced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub first_seen: BTreeMap<String, Timestamp>,
}

#[derive(Serialize, Deserialize)]
struct RecordFile {
    version: u32,
    /// Key → Unix seconds.
    unreferenced_since: BTreeMap<String, i64>,
}

const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[error("{key} is unreadable ({detail}); unreferenced files wait one more grace period")]
pub struct RecordError {
    key: String,
    detail: String,
}

impl Record {
    pub fn parse(bytes: &[u8]) -> Result<Self, RecordError> {
        let refuse = |detail: String| RecordError {
            key: record_key().to_string(),
            detail,
        };
        let file: RecordFile =
            serde_json::from_slice(bytes).map_err(|error| refuse(error.to_string()))?;
        if file.version != VERSION {
            return Err(refuse(format!("version {} is not {VERSION}", file.version)));
        }
        let first_seen = file
            .unreferenced_since
            .into_iter()
            .map(|(key, seconds)| (key, Timestamp::from_unix_seconds(seconds)))
            .collect();
        Ok(Self { first_seen })
    }

    pub fn render(&self) -> Vec<u8> {
        let file = RecordFile {
            version: VERSION,
            unreferenced_since: self
                .first_seen
                .iter()
                .map(|(key, time)| (key.clone(), time.unix_seconds()))
                .collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file)
            .expect("a map of strings to numbers always serializes");
        bytes.push(b'\n');
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_reported() {
        let mut record = Record::default();
        record.first_seen.insert(
            "default/a.git/1/001.bundle".into(),
            Timestamp::from_unix_seconds(1_700_000_000),
        );
        let bytes = record.render();
        assert!(String::from_utf8_lossy(&bytes).contains("\"version\": 1"));
        assert_eq!(Record::parse(&bytes).unwrap(), record);
        for bad in [&b"{"[..], b"{\"version\":2,\"unreferenced_since\":{}}"] {
            let error = Record::parse(bad).unwrap_err().to_string();
            assert!(error.contains("gitbak-prune/unreferenced.json"), "{error}");
        }
        assert_eq!(record_key().as_str(), "gitbak-prune/unreferenced.json");
    }
}
