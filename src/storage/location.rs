//! Storage locations in the URL grammar Gitaly admins already use
//! (go-cloud's, spec §7.3): `s3://`, `azblob://`, `gs://`, `file:///DIR` or
//! a plain directory, with `blob+` scheme prefixes.
//!
//! Parsing only. Every go-cloud parameter is accepted; those that mean
//! something to gitbak are applied, the rest ignored. Credentials come from
//! each SDK's standard chain, never from the URL: a user name and password
//! written into an endpoint URL are dropped at parse time (with a notice),
//! and every error that quotes the URL shows them as `***`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Filesystem(PathBuf),
    S3(S3Location),
    Azure(AzureLocation),
    Gcs(GcsLocation),
}

/// When request checksums are sent (the AWS SDK's setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumWhen {
    WhenSupported,
    WhenRequired,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct S3Location {
    pub bucket: String,
    pub region: Option<String>,
    /// Custom endpoint (MinIO, Ceph, moto); scheme included.
    pub endpoint: Option<String>,
    pub use_path_style: bool,
    pub disable_https: bool,
    pub profile: Option<String>,
    pub anonymous: bool,
    pub dualstack: bool,
    pub fips: bool,
    pub accelerate: bool,
    /// `None`: Gitaly's rule, "when required" with a custom endpoint.
    pub request_checksum_calculation: Option<ChecksumWhen>,
    pub response_checksum_validation: Option<ChecksumWhen>,
    pub server_side_encryption: Option<String>,
    pub kms_key_id: Option<String>,
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AzureLocation {
    pub container: String,
    /// Blob service domain, default `blob.core.windows.net`.
    pub domain: Option<String>,
    /// `https` (default) or `http`.
    pub protocol: Option<String>,
    /// Azurite-style URL: `<protocol>://<domain>/<account>`.
    pub local_emulator: bool,
    pub cdn: bool,
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GcsLocation {
    pub bucket: String,
    /// JSON API endpoint for emulators and private endpoints; no scheme means https.
    pub endpoint: Option<String>,
    pub anonymous: bool,
    pub access_id: Option<String>,
    pub private_key_path: Option<String>,
    pub universe_domain: Option<String>,
    pub prefix: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocationError {
    #[error("backup location is empty; pass --path DIR or a URL such as s3://BUCKET")]
    Empty,
    #[error("unsupported backup location scheme {scheme:?}; use s3://, azblob://, gs://, file:///DIR or a directory")]
    UnsupportedScheme { scheme: String },
    #[error("file URL {url:?} must be absolute, as file:///DIR")]
    RelativeFileUrl { url: String },
    #[error("{url:?} is not a valid URL: {detail}")]
    Malformed { url: String, detail: String },
    #[error("{url:?} names no bucket or container")]
    NoBucket { url: String },
    #[error("{url:?}: a path after the bucket is not a key prefix; use ?prefix={suggestion}")]
    PathAfterBucket { url: String, suggestion: String },
    #[error("unknown parameter {name:?} for {scheme}://; valid parameters: {valid}")]
    UnknownParameter {
        scheme: String,
        name: String,
        valid: String,
    },
    #[error("parameter {name}={value:?} for {scheme}:// is not valid: {expected}")]
    BadValue {
        scheme: String,
        name: String,
        value: String,
        expected: &'static str,
    },
}

const GENERIC_PARAMETERS: &[&str] = &["prefix", "key"];
const S3_PARAMETERS: &[&str] = &[
    "region",
    "endpoint",
    "hostname_immutable",
    "profile",
    "dualstack",
    "fips",
    "anonymous",
    "rate_limiter_capacity",
    "request_checksum_calculation",
    "response_checksum_validation",
    "use_path_style",
    "s3ForcePathStyle",
    "disable_https",
    "disableSSL",
    "accelerate",
    "ssetype",
    "kmskeyid",
    "awssdk",
];
const AZURE_PARAMETERS: &[&str] = &["domain", "protocol", "cdn", "localemu"];
const GCS_PARAMETERS: &[&str] = &[
    "anonymous",
    "access_id",
    "private_key_path",
    "universe_domain",
    "endpoint",
];

/// The query parameters of one URL, checked against the scheme's list.
struct Parameters {
    scheme: &'static str,
    values: BTreeMap<String, String>,
}

impl Parameters {
    fn new(scheme: &'static str, url: &url::Url, allowed: &[&str]) -> Result<Self, LocationError> {
        let mut values = BTreeMap::new();
        for (name, value) in url.query_pairs() {
            if !allowed.contains(&name.as_ref()) && !GENERIC_PARAMETERS.contains(&name.as_ref()) {
                let mut valid: Vec<&str> =
                    allowed.iter().chain(GENERIC_PARAMETERS).copied().collect();
                valid.sort_unstable();
                return Err(LocationError::UnknownParameter {
                    scheme: scheme.into(),
                    name: name.into_owned(),
                    valid: valid.join(", "),
                });
            }
            values.insert(name.into_owned(), value.into_owned());
        }
        Ok(Self { scheme, values })
    }

    fn text(&self, name: &str) -> Option<String> {
        self.values
            .get(name)
            .filter(|value| !value.is_empty())
            .cloned()
    }

    /// `endpoint`, without any user name and password (see `notices`).
    fn endpoint(&self) -> Option<String> {
        self.text("endpoint")
            .map(|endpoint| strip_userinfo(&endpoint).0)
    }

    fn flag(&self, name: &str) -> Result<bool, LocationError> {
        match self.values.get(name).map(String::as_str) {
            None | Some("") => Ok(false),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(value) => Err(LocationError::BadValue {
                scheme: self.scheme.into(),
                name: name.into(),
                value: redact(value),
                expected: "true or false",
            }),
        }
    }

    fn checksum(&self, name: &str) -> Result<Option<ChecksumWhen>, LocationError> {
        match self.values.get(name).map(String::as_str) {
            None | Some("") => Ok(None),
            Some("when_supported" | "WHEN_SUPPORTED") => Ok(Some(ChecksumWhen::WhenSupported)),
            Some("when_required" | "WHEN_REQUIRED") => Ok(Some(ChecksumWhen::WhenRequired)),
            Some(value) => Err(LocationError::BadValue {
                scheme: self.scheme.into(),
                name: name.into(),
                value: redact(value),
                expected: "when_supported or when_required",
            }),
        }
    }

    fn prefix(&self) -> String {
        self.text("prefix").unwrap_or_default()
    }
}

impl Location {
    pub fn parse(text: &str) -> Result<Self, LocationError> {
        if text.is_empty() {
            return Err(LocationError::Empty);
        }
        let Some((raw_scheme, _)) = text.split_once("://") else {
            return Ok(Self::Filesystem(PathBuf::from(text)));
        };
        // go-cloud picks the provider from the part after the last `+`.
        let scheme = raw_scheme
            .rsplit('+')
            .next()
            .unwrap_or(raw_scheme)
            .to_ascii_lowercase();
        let malformed = |detail: String| LocationError::Malformed {
            url: redact(text),
            detail,
        };
        if scheme == "file" {
            let rest = &text[raw_scheme.len() + 3..];
            let path = rest.split(['?', '#']).next().unwrap_or_default();
            if !path.starts_with('/') {
                return Err(LocationError::RelativeFileUrl { url: redact(text) });
            }
            return Ok(Self::Filesystem(PathBuf::from(path)));
        }
        let normalized = format!("{scheme}{}", &text[raw_scheme.len()..]);
        let url = url::Url::parse(&normalized).map_err(|error| malformed(error.to_string()))?;
        let bucket = url.host_str().unwrap_or_default().to_owned();
        if bucket.is_empty() {
            return Err(LocationError::NoBucket { url: redact(text) });
        }
        let path = url.path().trim_matches('/');
        if !path.is_empty() {
            return Err(LocationError::PathAfterBucket {
                url: redact(text),
                suggestion: format!("{path}/"),
            });
        }
        match scheme.as_str() {
            "s3" => {
                let p = Parameters::new("s3", &url, S3_PARAMETERS)?;
                Ok(Self::S3(S3Location {
                    bucket,
                    region: p.text("region"),
                    endpoint: p.endpoint(),
                    use_path_style: p.flag("use_path_style")? || p.flag("s3ForcePathStyle")?,
                    disable_https: p.flag("disable_https")? || p.flag("disableSSL")?,
                    profile: p.text("profile"),
                    anonymous: p.flag("anonymous")?,
                    dualstack: p.flag("dualstack")?,
                    fips: p.flag("fips")?,
                    accelerate: p.flag("accelerate")?,
                    request_checksum_calculation: p.checksum("request_checksum_calculation")?,
                    response_checksum_validation: p.checksum("response_checksum_validation")?,
                    server_side_encryption: p.text("ssetype"),
                    kms_key_id: p.text("kmskeyid"),
                    prefix: p.prefix(),
                }))
            }
            "azblob" => {
                let p = Parameters::new("azblob", &url, AZURE_PARAMETERS)?;
                let protocol = p.text("protocol");
                if let Some(protocol) = &protocol {
                    if protocol != "http" && protocol != "https" {
                        return Err(LocationError::BadValue {
                            scheme: "azblob".into(),
                            name: "protocol".into(),
                            value: protocol.clone(),
                            expected: "http or https",
                        });
                    }
                }
                Ok(Self::Azure(AzureLocation {
                    container: bucket,
                    domain: p.text("domain"),
                    protocol,
                    local_emulator: p.flag("localemu")?,
                    cdn: p.flag("cdn")?,
                    prefix: p.prefix(),
                }))
            }
            "gs" => {
                let p = Parameters::new("gs", &url, GCS_PARAMETERS)?;
                Ok(Self::Gcs(GcsLocation {
                    bucket,
                    endpoint: p.endpoint(),
                    anonymous: p.flag("anonymous")?,
                    access_id: p.text("access_id"),
                    private_key_path: p.text("private_key_path"),
                    universe_domain: p.text("universe_domain"),
                    prefix: p.prefix(),
                }))
            }
            _ => Err(LocationError::UnsupportedScheme { scheme }),
        }
    }

    /// The key prefix every object gets (`prefix=`), empty for directories.
    pub fn prefix(&self) -> &str {
        match self {
            Self::Filesystem(_) => "",
            Self::S3(s3) => &s3.prefix,
            Self::Azure(azure) => &azure.prefix,
            Self::Gcs(gcs) => &gcs.prefix,
        }
    }
}

/// What an administrator should know about a location that parses: the
/// parameters a `file://` URL ignores (as Gitaly does), and credentials in
/// an endpoint URL, which gitbak drops.
pub fn notices(text: &str) -> Vec<String> {
    let Some((raw_scheme, rest)) = text.split_once("://") else {
        return Vec::new();
    };
    let scheme = raw_scheme.rsplit('+').next().unwrap_or(raw_scheme);
    let query = rest.split_once('?').map(|(_, query)| query).unwrap_or("");
    let query = query.split('#').next().unwrap_or_default();
    let pairs = url::form_urlencoded::parse(query.as_bytes());
    let mut notices = Vec::new();
    for (name, value) in pairs {
        if scheme.eq_ignore_ascii_case("file") {
            notices.push(format!(
                "ignoring parameter {:?} of the file:// location, as Gitaly does",
                bounded(&name)
            ));
        } else if name == "endpoint" && strip_userinfo(&value).1 {
            notices.push(
                "ignoring the user name and password in the endpoint URL; credentials come \
                 from the provider's environment variables or config files (see README)"
                    .into(),
            );
        }
    }
    notices
}

/// A parameter name as quoted in a notice: at most 64 characters.
fn bounded(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// `scheme://user:password@host/…` → `scheme://host/…`, and whether there
/// was anything to strip.
fn strip_userinfo(url: &str) -> (String, bool) {
    let Some(start) = url.find("://").map(|at| at + 3) else {
        return (url.to_owned(), false);
    };
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |end| start + end);
    match url[start..authority_end].rfind('@') {
        Some(at) => (format!("{}{}", &url[..start], &url[start + at + 1..]), true),
        None => (url.to_owned(), false),
    }
}

/// The URL as errors may quote it: every user name and password, in the
/// URL itself or in a URL-valued parameter (percent-encoded or not), `***`.
pub fn redact(text: &str) -> String {
    let mut redacted = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let start = at + 3;
        redacted.push_str(&rest[..start]);
        rest = &rest[start..];
        let authority_end = rest.find(['/', '?', '#', '&']).unwrap_or(rest.len());
        if let Some(user_end) = rest[..authority_end].rfind('@') {
            redacted.push_str("***");
            rest = &rest[user_end..];
        }
    }
    redacted.push_str(rest);
    // A URL-valued parameter may be percent-encoded: %3A%2F%2F…%40.
    if let Some(query_start) = redacted.find('?') {
        let (base, query) = redacted.split_at(query_start + 1);
        let has_hidden = url::form_urlencoded::parse(query.as_bytes())
            .any(|(_, value)| strip_userinfo(&value).1);
        if has_hidden {
            let cleaned: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(
                    url::form_urlencoded::parse(query.as_bytes())
                        .map(|(name, value)| (name.into_owned(), redact(&value))),
                )
                .finish();
            return format!("{base}{cleaned}");
        }
    }
    redacted
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_prefix = |f: &mut fmt::Formatter<'_>, prefix: &str| {
            if prefix.is_empty() {
                Ok(())
            } else {
                write!(f, "?prefix={prefix}")
            }
        };
        match self {
            Self::Filesystem(path) => write!(f, "{}", path.display()),
            Self::S3(s3) => {
                write!(f, "s3://{}", s3.bucket)?;
                with_prefix(f, &s3.prefix)
            }
            Self::Azure(azure) => {
                write!(f, "azblob://{}", azure.container)?;
                with_prefix(f, &azure.prefix)
            }
            Self::Gcs(gcs) => {
                write!(f, "gs://{}", gcs.bucket)?;
                with_prefix(f, &gcs.prefix)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_never_survive() {
        let text = "s3://bucket?endpoint=http://admin:S3cr3t@127.0.0.1:9000&region=x";
        let Location::S3(s3) = Location::parse(text).unwrap() else {
            panic!("not s3")
        };
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(!format!("{s3:?}").contains("S3cr3t"));
        assert_eq!(notices(text).len(), 1);
        let encoded = "s3://bucket?endpoint=http%3A%2F%2Fadmin%3AS3cr3t%40minio%3A9000&bogus=1";
        let error = Location::parse(encoded).unwrap_err().to_string();
        assert!(error.contains("bogus"), "{error}");
        for text in [
            text,
            encoded,
            "s3://admin:S3cr3t@bucket/path",
            "gs://b?endpoint=https://u:S3cr3t@h/x&anonymous=maybe",
        ] {
            assert!(!redact(text).contains("S3cr3t"), "{}", redact(text));
            if let Err(error) = Location::parse(text) {
                assert!(!error.to_string().contains("S3cr3t"), "{error}");
            }
        }
        assert_eq!(redact("s3://b?region=x"), "s3://b?region=x");
    }

    #[test]
    fn file_urls_ignore_their_query_with_a_notice_each() {
        let text = "file:///var/backups?prefix=x&awssdk=v2";
        assert_eq!(
            Location::parse(text).unwrap(),
            Location::Filesystem(PathBuf::from("/var/backups"))
        );
        let notices = notices(text);
        assert_eq!(notices.len(), 2, "{notices:?}");
        assert!(notices[0].contains("\"prefix\""), "{notices:?}");
        assert!(super::notices("/var/backups").is_empty());
        assert!(super::notices("s3://b?region=x").is_empty());
    }

    #[test]
    fn parses_paths_and_file_urls() {
        for (text, want) in [
            ("/var/backups", "/var/backups"),
            ("relative/dir", "relative/dir"),
            ("file:///var/backups", "/var/backups"),
            ("blob+file:///x?metadata=skip", "/x"),
        ] {
            assert_eq!(
                Location::parse(text),
                Ok(Location::Filesystem(want.into())),
                "{text}"
            );
        }
        assert_eq!(
            Location::parse("minio://b"),
            Err(LocationError::UnsupportedScheme {
                scheme: "minio".into()
            })
        );
        assert!(matches!(
            Location::parse("file://rel"),
            Err(LocationError::RelativeFileUrl { .. })
        ));
        assert_eq!(Location::parse(""), Err(LocationError::Empty));
    }

    #[test]
    fn s3_urls_as_gitaly_accepts_them() {
        let Location::S3(s3) = Location::parse(
            "s3://backups?endpoint=http://127.0.0.1:9000&use_path_style=true&region=us-east-1&awssdk=v2&prefix=gitaly/",
        )
        .unwrap() else {
            panic!("not s3")
        };
        assert_eq!(s3.bucket, "backups");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(s3.use_path_style);
        assert_eq!(s3.region.as_deref(), Some("us-east-1"));
        assert_eq!(s3.prefix, "gitaly/");
        let Location::S3(old) =
            Location::parse("blob+s3://b?s3ForcePathStyle=true&disableSSL=true").unwrap()
        else {
            panic!("not s3")
        };
        assert!(old.use_path_style && old.disable_https);
        let Location::S3(lock) =
            Location::parse("s3://b?request_checksum_calculation=when_supported").unwrap()
        else {
            panic!("not s3")
        };
        assert_eq!(
            lock.request_checksum_calculation,
            Some(ChecksumWhen::WhenSupported)
        );
    }

    #[test]
    fn azure_and_gcs_urls() {
        let Location::Azure(azure) = Location::parse(
            "blob+bucket+azblob://c?domain=127.0.0.1:10000&protocol=http&localemu=true",
        )
        .unwrap() else {
            panic!("not azure")
        };
        assert_eq!(azure.container, "c");
        assert!(azure.local_emulator);
        assert_eq!(azure.protocol.as_deref(), Some("http"));
        let Location::Gcs(gcs) =
            Location::parse("gs://bucket?endpoint=127.0.0.1:4443&anonymous=true").unwrap()
        else {
            panic!("not gcs")
        };
        assert_eq!(gcs.endpoint.as_deref(), Some("127.0.0.1:4443"));
        assert!(gcs.anonymous);
        assert_eq!(
            Location::parse("gs://bucket?prefix=a/")
                .unwrap()
                .to_string(),
            "gs://bucket?prefix=a/"
        );
    }

    #[test]
    fn mistakes_get_helpful_errors() {
        let error = Location::parse("s3://bucket?regoin=x").unwrap_err();
        assert!(
            error.to_string().contains("\"regoin\"") && error.to_string().contains("region"),
            "{error}"
        );
        let error = Location::parse("s3://bucket/dir/sub").unwrap_err();
        assert!(error.to_string().contains("prefix=dir/sub/"), "{error}");
        assert!(matches!(
            Location::parse("gs://?x=1"),
            Err(LocationError::NoBucket { .. }) | Err(LocationError::Malformed { .. })
        ));
        assert!(matches!(
            Location::parse("s3://b?fips=maybe"),
            Err(LocationError::BadValue { .. })
        ));
        assert!(matches!(
            Location::parse("azblob://c?protocol=ftp"),
            Err(LocationError::BadValue { .. })
        ));
        assert!(matches!(
            Location::parse("azblob://c?endpoint=x"),
            Err(LocationError::UnknownParameter { .. })
        ));
    }
}
