//! The repositories on this Gitaly node: where each storage lives on disk,
//! mapping a job to a repository directory safely, and finding every
//! repository for `--discover`.
//!
//! Filesystem only; runs no git and touches no backup storage.

pub mod config;
pub mod hooks;
pub mod leftovers;
pub mod place;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::layout::{RelativePath, StorageName};

/// Directory names inside a storage that are never repositories to back up.
const SKIPPED_DIRECTORIES: &[&str] = &["@pools", "+gitaly", "@cluster"];

/// Prefix of gitbak's temporary directories beside restored repositories
/// (build directories and asides, see `leftovers`).
pub const TEMP_PREFIX: &str = "+gitbak-tmp-";

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(
        "storage {name:?} is not configured on this node (configured: {configured}); \
         pass --storage {name}=DIR (or GITBAK_STORAGE={name}=DIR) or --gitaly-config \
         with a [[storage]] entry named {name:?}"
    )]
    UnknownStorage { name: String, configured: String },
    #[error(
        "storage {name:?} is served by the Gitaly at {address}, not from this node's disk \
         (configured here: {configured}); gitbak reads repositories from local disk: run gitbak \
         on that Gitaly node with --local-storages-only (GITBAK_LOCAL_STORAGES_ONLY=true), or \
         pass --storage {name}=DIR (GITBAK_STORAGE) if its repositories are mounted here"
    )]
    RemoteStorage {
        name: String,
        address: String,
        configured: String,
    },
    #[error("relative_path {path:?} resolves outside storage {storage:?} ({reason})")]
    OutsideStorage {
        storage: String,
        path: String,
        reason: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("Gitaly config {path}: {detail}")]
    Config { path: String, detail: String },
    #[error("{0}")]
    Invalid(String),
}

impl NodeError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Storage name → storage root directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageRoots {
    roots: BTreeMap<String, PathBuf>,
    /// Storage name → the address of its Gitaly (`GITALY_SERVERS`), only
    /// to explain why a storage has no root here.
    gitaly_addresses: BTreeMap<String, String>,
}

impl StorageRoots {
    pub fn new(roots: BTreeMap<String, PathBuf>) -> Self {
        Self {
            roots,
            gitaly_addresses: BTreeMap::new(),
        }
    }

    /// Where Gitaly serves each storage, for the error of a job whose
    /// storage has no root here; never a source of roots.
    pub fn with_gitaly_addresses(self, gitaly_addresses: BTreeMap<String, String>) -> Self {
        Self {
            gitaly_addresses,
            ..self
        }
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    pub fn contains(&self, storage: &StorageName) -> bool {
        self.roots.contains_key(storage.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &PathBuf)> {
        self.roots.iter()
    }

    pub fn root(&self, storage: &StorageName) -> Result<&Path, NodeError> {
        if let Some(root) = self.roots.get(storage.as_str()) {
            return Ok(root);
        }
        let name = storage.to_string();
        let configured = if self.roots.is_empty() {
            "none".into()
        } else {
            self.roots.keys().cloned().collect::<Vec<_>>().join(", ")
        };
        Err(match self.gitaly_addresses.get(storage.as_str()) {
            Some(address) if !is_local_gitaly_address(address) => NodeError::RemoteStorage {
                name,
                address: address.clone(),
                configured,
            },
            _ => NodeError::UnknownStorage { name, configured },
        })
    }

    /// The repository directory of a job. The lexical checks happened in
    /// `RelativePath`; this one follows symlinks: the deepest existing
    /// ancestor (the repository itself, if it exists) must stay inside the
    /// storage root.
    pub fn resolve(
        &self,
        storage: &StorageName,
        path: &RelativePath,
    ) -> Result<PathBuf, NodeError> {
        let root = self.root(storage)?;
        let canonical_root =
            std::fs::canonicalize(root).map_err(|source| NodeError::io(root, source))?;
        let target = canonical_root.join(path.as_str());
        let mut existing = target.as_path();
        let resolved = loop {
            match std::fs::canonicalize(existing) {
                Ok(resolved) => break resolved,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    existing = existing.parent().unwrap_or(&canonical_root);
                }
                Err(source) => return Err(NodeError::io(existing, source)),
            }
        };
        if !resolved.starts_with(&canonical_root) {
            return Err(NodeError::OutsideStorage {
                storage: storage.to_string(),
                path: path.to_string(),
                reason: format!("{} leads to {}", existing.display(), resolved.display()),
            });
        }
        if resolved == canonical_root && existing != canonical_root {
            return Err(NodeError::OutsideStorage {
                storage: storage.to_string(),
                path: path.to_string(),
                reason: "it names the storage root itself".into(),
            });
        }
        Ok(target)
    }
}

/// Whether a Gitaly address is on this machine: a Unix socket, or TCP or
/// TLS to a loopback host. An empty address says nothing, so counts as
/// local. Anything else serves repositories from another node's disk.
pub fn is_local_gitaly_address(address: &str) -> bool {
    if address.is_empty() || address.starts_with("unix:") {
        return true;
    }
    let rest = ["tcp://", "tls://", "dns+tls:", "dns:"]
        .iter()
        .find_map(|scheme| address.strip_prefix(scheme));
    let Some(rest) = rest else {
        return false;
    };
    // dns:[//authority/]host[:port]
    let rest = match rest.strip_prefix("//") {
        Some(after) if address.starts_with("dns") => {
            after.split_once('/').map_or(after, |(_, host)| host)
        }
        Some(after) => after,
        None => rest,
    };
    let host = match rest.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => rest.split([':', '/']).next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `dir` looks like a bare repository.
pub fn is_bare_repository(dir: &Path) -> bool {
    dir.join("HEAD").is_file()
        && dir.join("objects").is_dir()
        && (dir.join("refs").is_dir() || dir.join("reftable").is_dir())
}

/// Every bare repository under `root`, as sorted relative paths. Object
/// pools, Gitaly's internal directory and gitbak's temporary directories
/// are skipped; a repository's own subdirectories are not searched.
pub fn discover(root: &Path) -> Result<Vec<String>, NodeError> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let dir = root.join(&relative);
        let entries = std::fs::read_dir(&dir).map_err(|source| NodeError::io(&dir, source))?;
        for entry in entries {
            let entry = entry.map_err(|source| NodeError::io(&dir, source))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let file_type = entry
                .file_type()
                .map_err(|source| NodeError::io(&entry.path(), source))?;
            if !file_type.is_dir() || name.starts_with(TEMP_PREFIX) {
                continue;
            }
            if relative.as_os_str().is_empty() && SKIPPED_DIRECTORIES.contains(&name) {
                continue;
            }
            let child = relative.join(name);
            if is_bare_repository(&root.join(&child)) {
                found.push(child.to_string_lossy().into_owned());
            } else {
                pending.push(child);
            }
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(dir: &Path) -> StorageRoots {
        StorageRoots::new(BTreeMap::from([("default".to_owned(), dir.to_path_buf())]))
    }

    #[test]
    fn symlinks_out_of_the_storage_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(storage.join("group")).unwrap();
        std::fs::create_dir_all(outside.join("x.git")).unwrap();
        std::os::unix::fs::symlink(&outside, storage.join("evil")).unwrap();
        let roots = roots(&storage);
        let name = StorageName::parse("default").unwrap();
        let ok = roots
            .resolve(&name, &RelativePath::parse("group/new/x.git").unwrap())
            .unwrap();
        assert!(ok.ends_with("group/new/x.git"));
        let error = roots
            .resolve(&name, &RelativePath::parse("evil/x.git").unwrap())
            .unwrap_err();
        assert!(matches!(error, NodeError::OutsideStorage { .. }), "{error}");
        let unknown = roots.resolve(
            &StorageName::parse("other").unwrap(),
            &RelativePath::parse("x.git").unwrap(),
        );
        assert!(unknown
            .unwrap_err()
            .to_string()
            .contains("--storage other=DIR"));
    }

    #[test]
    fn local_gitaly_addresses() {
        for (address, local) in [
            ("unix:/var/opt/gitlab/gitaly/gitaly.socket", true),
            ("unix:///tmp/sock", true),
            ("tcp://127.0.0.1:8075", true),
            ("tcp://localhost:8075", true),
            ("tls://[::1]:9999", true),
            ("dns:///localhost:8075", true),
            ("dns://8.8.8.8/localhost:8075", true),
            ("", true),
            ("tcp://10.0.0.2:8075", false),
            ("tls://gitaly-2.example.com:9999", false),
            ("dns:gitaly-2:8075", false),
            ("invalid", false),
        ] {
            assert_eq!(is_local_gitaly_address(address), local, "{address}");
        }
        let roots = StorageRoots::default().with_gitaly_addresses(BTreeMap::from([
            ("near".to_owned(), "unix:/s".to_owned()),
            ("far".to_owned(), "tcp://gitaly-2:8075".to_owned()),
        ]));
        let error = |name: &str| {
            roots
                .root(&StorageName::parse(name).unwrap())
                .unwrap_err()
                .to_string()
        };
        assert!(error("near").contains("GITBAK_STORAGE=near=DIR"));
        let far = error("far");
        assert!(far.contains("tcp://gitaly-2:8075"), "{far}");
        assert!(far.contains("run gitbak on that Gitaly node with --local-storages-only"));
    }

    #[test]
    fn discover_skips_pools_and_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        for repo in [
            "@hashed/aa/bb/x.git",
            "group/p.git",
            "@pools/11/22/pool.git",
            "+gitbak-tmp-x/y.git",
            // A build directory and an aside, at the top and beside a repository.
            "+gitbak-tmp-new+t.git~host~12-0",
            "group/+gitbak-tmp-new+p.git~host.example~12-1",
            "group/+gitbak-tmp-old+p.git~host.example~12-2",
            "@hashed/aa/bb/+gitbak-tmp-old+x.git~h~4194304999-0",
            "+gitaly/tmp/z.git",
        ] {
            let path = dir.path().join(repo);
            std::fs::create_dir_all(path.join("objects")).unwrap();
            std::fs::create_dir_all(path.join("refs")).unwrap();
            std::fs::write(path.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        }
        assert_eq!(
            discover(dir.path()).unwrap(),
            ["@hashed/aa/bb/x.git", "group/p.git"]
        );
    }
}
