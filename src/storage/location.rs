//! Storage locations as admins write them: a directory or `file:///dir`.
//!
//! Parsing only; `Display` never shows credentials (object-store URLs with
//! secrets arrive in a later issue and must keep that rule).

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Filesystem(PathBuf),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocationError {
    #[error("backup location is empty; pass --path DIR or a file:///DIR URL")]
    Empty,
    #[error("unsupported backup location scheme {scheme:?}; this gitbak supports a directory or file:///DIR")]
    UnsupportedScheme { scheme: String },
    #[error("file URL {url:?} must be absolute, as file:///DIR")]
    RelativeFileUrl { url: String },
}

impl Location {
    pub fn parse(text: &str) -> Result<Self, LocationError> {
        if text.is_empty() {
            return Err(LocationError::Empty);
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Ok(Self::Filesystem(PathBuf::from(text)));
        };
        // go-cloud picks the provider from the part after the last `+`.
        let scheme = scheme.rsplit('+').next().unwrap_or(scheme).to_ascii_lowercase();
        match scheme.as_str() {
            "file" => {
                let path = rest.split(['?', '#']).next().unwrap_or_default();
                if !path.starts_with('/') {
                    return Err(LocationError::RelativeFileUrl { url: text.to_owned() });
                }
                Ok(Self::Filesystem(PathBuf::from(path)))
            }
            _ => Err(LocationError::UnsupportedScheme { scheme }),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Filesystem(path) => write!(f, "{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_and_file_urls() {
        for (text, want) in [
            ("/var/backups", "/var/backups"),
            ("relative/dir", "relative/dir"),
            ("file:///var/backups", "/var/backups"),
            ("blob+file:///x?metadata=skip", "/x"),
        ] {
            assert_eq!(Location::parse(text), Ok(Location::Filesystem(want.into())), "{text}");
        }
        assert_eq!(
            Location::parse("minio://b"),
            Err(LocationError::UnsupportedScheme { scheme: "minio".into() })
        );
        assert!(matches!(Location::parse("file://rel"), Err(LocationError::RelativeFileUrl { .. })));
        assert_eq!(Location::parse(""), Err(LocationError::Empty));
    }
}
