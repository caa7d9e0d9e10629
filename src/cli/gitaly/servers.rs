//! `GITALY_SERVERS`: where Rails says each storage's Gitaly listens (spec
//! §1.5). gitbak reads repositories from local disk, so it needs the
//! addresses only to explain a job whose storage is not here: a storage
//! served over the network needs gitbak on that Gitaly node.
//!
//! Decoding errors keep gitaly-backup's words, which administrators search
//! for; the detail after them is Go's where gitbak can reproduce it.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

/// Storage name → Gitaly address, as `GITALY_SERVERS` lists them. Tokens
/// are read past and never kept: nothing here needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitalyServers {
    pub addresses: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServersError {
    #[error(
        "injecting GITALY_SERVERS: failed decoding base64: illegal base64 data at input byte {0}"
    )]
    Base64(usize),
    #[error("injecting GITALY_SERVERS: failed unmarshalling json: {0}")]
    Json(String),
}

impl GitalyServers {
    /// The variable's value; unset or empty means no servers, as for
    /// gitaly-backup.
    pub fn from_env_value(value: Option<&str>) -> Result<Self, ServersError> {
        match value {
            None | Some("") => Ok(Self::default()),
            Some(text) => Self::decode(text),
        }
    }

    /// Base64 (standard alphabet, padded) of a JSON object
    /// `{"storage": {"address": "…", "token": "…"}}`.
    pub fn decode(encoded: &str) -> Result<Self, ServersError> {
        // Go's decoder skips line breaks anywhere in the input.
        let compact: String = encoded
            .chars()
            .filter(|c| !matches!(c, '\r' | '\n'))
            .collect();
        let json = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|error| ServersError::Base64(bad_byte(&error, compact.len())))?;
        let value: Value =
            serde_json::from_slice(&json).map_err(|error| go_json_error(&json, &error))?;
        let map = match value {
            Value::Null => return Ok(Self::default()),
            Value::Object(map) => map,
            other => {
                return Err(ServersError::Json(format!(
                    "json: cannot unmarshal {} into Go value of type storage.GitalyServers",
                    go_kind(&other)
                )))
            }
        };
        let mut addresses = BTreeMap::new();
        for (storage, info) in map {
            let address = match info {
                Value::Null => String::new(),
                Value::Object(fields) => address_of(&storage, fields)?,
                other => {
                    return Err(ServersError::Json(format!(
                        "json: cannot unmarshal {} into Go value of type storage.ServerInfo",
                        go_kind(&other)
                    )))
                }
            };
            addresses.insert(storage, address);
        }
        Ok(Self { addresses })
    }
}

/// The `address` of one storage; Go matches field names case-insensitively.
fn address_of(
    storage: &str,
    fields: serde_json::Map<String, Value>,
) -> Result<String, ServersError> {
    let mut address = String::new();
    for (key, value) in fields {
        let field = key.to_ascii_lowercase();
        if field != "address" && field != "token" {
            continue;
        }
        match value {
            Value::Null => {}
            Value::String(text) if field == "address" => address = text,
            Value::String(_) => {}
            other => {
                return Err(ServersError::Json(format!(
                    "json: cannot unmarshal {} into Go struct field ServerInfo.{storage}.{field} of type string",
                    go_kind(&other)
                )))
            }
        }
    }
    Ok(address)
}

/// The input offset Go's `CorruptInputError` would name.
fn bad_byte(error: &base64::DecodeError, length: usize) -> usize {
    match *error {
        base64::DecodeError::InvalidByte(offset, _)
        | base64::DecodeError::InvalidLastSymbol(offset, _) => offset,
        // Go stops at the start of the incomplete last quantum.
        base64::DecodeError::InvalidLength(_) => length - length % 4,
        base64::DecodeError::InvalidPadding => length,
    }
}

/// Go's `encoding/json` wording for the usual mistakes; serde's otherwise.
fn go_json_error(json: &[u8], error: &serde_json::Error) -> ServersError {
    if error.is_eof() {
        return ServersError::Json("unexpected end of JSON input".into());
    }
    let first = json.iter().find(|byte| !byte.is_ascii_whitespace());
    let at_start = error.line() == 1
        && json.iter().position(|byte| !byte.is_ascii_whitespace())
            == Some(error.column().saturating_sub(1));
    match first {
        Some(&byte) if at_start && byte.is_ascii_graphic() => ServersError::Json(format!(
            "invalid character '{}' looking for beginning of value",
            byte as char
        )),
        _ => ServersError::Json(error.to_string()),
    }
}

fn go_kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn decodes_addresses_like_go() {
        let servers = GitalyServers::decode(&encode(
            r#"{"default":{"address":"unix:///tmp/sock","token":"hunter1"},"nfs":{"Address":"tcp://gitaly-2:8075","extra":1},"empty":null}"#,
        ))
        .unwrap();
        assert_eq!(servers.addresses["default"], "unix:///tmp/sock");
        assert_eq!(servers.addresses["nfs"], "tcp://gitaly-2:8075");
        assert_eq!(servers.addresses["empty"], "");
        assert_eq!(
            GitalyServers::from_env_value(None).unwrap(),
            GitalyServers::default()
        );
        assert_eq!(
            GitalyServers::from_env_value(Some("")).unwrap(),
            GitalyServers::default()
        );
    }

    #[test]
    fn malformed_values_get_gitaly_backups_errors() {
        // Gitaly's own test case.
        assert_eq!(
            GitalyServers::decode(&encode("definitely not JSON")).unwrap_err().to_string(),
            "injecting GITALY_SERVERS: failed unmarshalling json: invalid character 'd' looking for beginning of value"
        );
        assert_eq!(
            GitalyServers::decode("not*base64").unwrap_err().to_string(),
            "injecting GITALY_SERVERS: failed decoding base64: illegal base64 data at input byte 3"
        );
        assert_eq!(
            GitalyServers::decode(&encode(r#"{"a":"#))
                .unwrap_err()
                .to_string(),
            "injecting GITALY_SERVERS: failed unmarshalling json: unexpected end of JSON input"
        );
        assert_eq!(
            GitalyServers::decode(&encode("[1]")).unwrap_err(),
            ServersError::Json(
                "json: cannot unmarshal array into Go value of type storage.GitalyServers".into()
            )
        );
        assert!(GitalyServers::decode(&encode(r#"{"a":{"address":1}}"#)).is_err());
    }
}
