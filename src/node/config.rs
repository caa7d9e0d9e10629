//! Reading Gitaly's `config.toml`: the storages of this node and the
//! `[backup]` section. Only the keys gitbak uses are read; the rest of
//! Gitaly's configuration is ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{NodeError, StorageRoots};

/// Where Omnibus installs Gitaly's configuration.
pub const DEFAULT_GITALY_CONFIG: &str = "/var/opt/gitlab/gitaly/config.toml";

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GitalyConfig {
    #[serde(default)]
    pub storage: Vec<StorageEntry>,
    #[serde(default)]
    pub backup: BackupSection,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StorageEntry {
    pub name: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct BackupSection {
    pub go_cloud_url: Option<String>,
    pub buffer_size: Option<u64>,
}

impl GitalyConfig {
    pub fn parse(text: &str, path: &Path) -> Result<Self, NodeError> {
        toml::from_str(text).map_err(|error| NodeError::Config {
            path: path.display().to_string(),
            detail: error.message().to_owned(),
        })
    }

    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let text = std::fs::read_to_string(path).map_err(|source| NodeError::io(path, source))?;
        Self::parse(&text, path)
    }

    /// Storage roots from this config, overridden by `--storage NAME=DIR`.
    pub fn storage_roots(&self, overrides: &[(String, PathBuf)]) -> StorageRoots {
        let mut roots: BTreeMap<String, PathBuf> = self
            .storage
            .iter()
            .map(|entry| (entry.name.clone(), entry.path.clone()))
            .collect();
        roots.extend(overrides.iter().cloned());
        StorageRoots::new(roots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_storages_and_backup_and_ignores_the_rest() {
        let text = r#"
socket_path = "/var/opt/gitlab/gitaly/gitaly.socket"
[[storage]]
name = "default"
path = "/var/opt/gitlab/git-data/repositories"
[[storage]]
name = "nfs-2"
path = "/mnt/nfs2"
[backup]
go_cloud_url = "s3://bucket?region=eu-west-1"
buffer_size = 5242880
[logging]
level = "warn"
"#;
        let config = GitalyConfig::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(config.storage.len(), 2);
        assert_eq!(config.backup.buffer_size, Some(5_242_880));
        let roots = config.storage_roots(&[("nfs-2".into(), "/elsewhere".into())]);
        let names: Vec<_> = roots
            .iter()
            .map(|(n, p)| format!("{n}={}", p.display()))
            .collect();
        assert_eq!(
            names,
            [
                "default=/var/opt/gitlab/git-data/repositories",
                "nfs-2=/elsewhere"
            ]
        );
        assert!(GitalyConfig::parse("[[storage]]\nname = 1", Path::new("c.toml")).is_err());
    }
}
