//! Azure credentials as Gitaly admins already configure them for go-cloud's
//! `azblob://` (`AZURE_STORAGE_*` variables, else Entra ID), the service URL
//! a location names.
//!
//! Secrets never leave this module in printable form: `AzureCredentials`
//! debug-prints `***`, and every secret is registered with the `Redactor`
//! that cleans error messages.

use std::fmt;
use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::Url;

use super::errors::Redactor;
use crate::storage::location::AzureLocation;

/// The variables an operator sets; named in every credential error.
const VARIABLES_HINT: &str =
    "set AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, \
     or AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT alone with an Entra ID identity \
     (AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, workload or managed identity)";

/// Azurite's well-known development account, for `UseDevelopmentStorage=true`.
const DEVELOPMENT_ACCOUNT: &str = "devstoreaccount1";
const DEVELOPMENT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const DEVELOPMENT_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// What `open` reads from the environment. Tests build it directly, so
/// variants never touch the process-global environment.
#[derive(Clone, Default)]
pub struct AzureCredentials {
    /// `AZURE_STORAGE_ACCOUNT`
    pub account: Option<String>,
    /// `AZURE_STORAGE_KEY`: base64 account key for SharedKey signing.
    pub key: Option<String>,
    /// `AZURE_STORAGE_SAS_TOKEN`: appended to every request URL.
    pub sas_token: Option<String>,
    /// `AZURE_STORAGE_CONNECTION_STRING`
    pub connection_string: Option<String>,
}

impl AzureCredentials {
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let read = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        Self {
            account: read("AZURE_STORAGE_ACCOUNT"),
            key: read("AZURE_STORAGE_KEY"),
            sas_token: read("AZURE_STORAGE_SAS_TOKEN"),
            connection_string: read("AZURE_STORAGE_CONNECTION_STRING"),
        }
    }
}

impl fmt::Debug for AzureCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |value: &Option<String>| value.as_ref().map(|_| "***");
        f.debug_struct("AzureCredentials")
            .field("account", &self.account)
            .field("key", &hidden(&self.key))
            .field("sas_token", &hidden(&self.sas_token))
            .field("connection_string", &hidden(&self.connection_string))
            .finish()
    }
}

/// How requests are authorized.
pub(super) enum Auth {
    SharedKey(Secret),
    /// The token is already in `Resolved::service_url`'s query.
    Sas,
    EntraId,
}

/// Credentials and location combined: where requests go and how they are signed.
pub(super) struct Resolved {
    pub account: String,
    /// With the SAS token as query, if any; never printed (see `Redactor`).
    pub service_url: Url,
    pub auth: Auth,
    pub redactor: Redactor,
    /// What to check when Azure refuses access, naming the variables in use.
    pub access_hint: &'static str,
}

const KEY_HINT: &str = "check AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY";
const SAS_HINT: &str =
    "check AZURE_STORAGE_SAS_TOKEN (not expired; permissions racwl, and d to prune) \
     and AZURE_STORAGE_ACCOUNT";
const CONNECTION_HINT: &str = "check AZURE_STORAGE_CONNECTION_STRING";
pub(super) const ENTRA_ID_HINT: &str = "check the Entra ID identity (AZURE_TENANT_ID, AZURE_CLIENT_ID, \
     AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE, else managed identity) and its role on the container \
     (Storage Blob Data Contributor), or set AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN or AZURE_STORAGE_CONNECTION_STRING";

/// Picks the credential the way go-cloud's azureblob does: account key, then
/// SAS token, then connection string, then Entra ID.
pub(super) fn resolve(
    location: &AzureLocation,
    credentials: &AzureCredentials,
) -> Result<Resolved, String> {
    let mut redactor = Redactor::default();
    for secret in [
        &credentials.key,
        &credentials.sas_token,
        &credentials.connection_string,
    ]
    .into_iter()
    .flatten()
    {
        redactor.add(secret);
    }
    let connection = credentials
        .connection_string
        .as_deref()
        .map(ConnectionString::parse)
        .unwrap_or_default();
    for secret in [&connection.key, &connection.sas_token]
        .into_iter()
        .flatten()
    {
        redactor.add(secret);
    }
    let Some(account) = credentials.account.clone().or_else(|| connection.account()) else {
        return Err(format!(
            "no Azure storage account configured: {VARIABLES_HINT}"
        ));
    };
    let (service_url, auth, sas, access_hint) = if let Some(key) = &credentials.key {
        (
            location_service_url(location, &account),
            Auth::SharedKey(check_key(key)?),
            None,
            KEY_HINT,
        )
    } else if let Some(sas) = &credentials.sas_token {
        (
            location_service_url(location, &account),
            Auth::Sas,
            Some(sas.clone()),
            SAS_HINT,
        )
    } else if credentials.connection_string.is_some() {
        let service_url = connection
            .endpoint()
            .unwrap_or_else(|| location_service_url(location, &account));
        match (&connection.key, &connection.sas_token) {
            (Some(key), _) => (
                service_url,
                Auth::SharedKey(check_key(key)?),
                None,
                CONNECTION_HINT,
            ),
            (None, Some(sas)) => (service_url, Auth::Sas, Some(sas.clone()), CONNECTION_HINT),
            (None, None) => (service_url, Auth::EntraId, None, ENTRA_ID_HINT),
        }
    } else {
        (
            location_service_url(location, &account),
            Auth::EntraId,
            None,
            ENTRA_ID_HINT,
        )
    };
    // No trailing slash: the SDK appends `/container`, and `//container` is a 400.
    let mut service_url = Url::parse(service_url.trim_end_matches('/')).map_err(|error| {
        format!("Azure service URL for account {account:?} is not valid: {error}")
    })?;
    if let Some(sas) = sas {
        let sas = sas.trim_start_matches('?');
        for (name, value) in url::form_urlencoded::parse(sas.as_bytes()) {
            if name == "sig" {
                redactor.add(&value);
            }
        }
        service_url.set_query(Some(sas));
    }
    Ok(Resolved {
        account,
        service_url,
        auth,
        redactor,
        access_hint,
    })
}

fn check_key(key: &str) -> Result<Secret, String> {
    match azure_core::base64::decode(key.trim()) {
        Ok(bytes) if !bytes.is_empty() => Ok(Secret::new(key.trim().to_owned())),
        _ => Err("the Azure storage account key (AZURE_STORAGE_KEY, or AccountKey in AZURE_STORAGE_CONNECTION_STRING) \
                  is not valid base64"
            .into()),
    }
}

/// `https://<account>.blob.core.windows.net` unless the location says
/// otherwise: `domain=` replaces `blob.core.windows.net`, `localemu=true`
/// puts the account in the path (Azurite), `cdn=true` uses the domain alone.
pub(super) fn location_service_url(location: &AzureLocation, account: &str) -> String {
    let protocol = location.protocol.as_deref().unwrap_or("https");
    let domain = location
        .domain
        .as_deref()
        .unwrap_or("blob.core.windows.net")
        .trim_end_matches('/');
    if location.local_emulator {
        format!("{protocol}://{domain}/{account}")
    } else if location.cdn {
        format!("{protocol}://{domain}")
    } else {
        format!("{protocol}://{account}.{domain}")
    }
}

/// The parts of an Azure connection string gitbak uses.
#[derive(Default, Debug, PartialEq, Eq)]
struct ConnectionString {
    account: Option<String>,
    key: Option<String>,
    sas_token: Option<String>,
    blob_endpoint: Option<String>,
    protocol: Option<String>,
    endpoint_suffix: Option<String>,
}

impl ConnectionString {
    /// `Name=value;...`; values may contain `=` (base64 keys, SAS tokens).
    fn parse(text: &str) -> Self {
        let mut parsed = Self::default();
        for pair in text.split(';') {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let value = Some(value.trim().to_owned()).filter(|value| !value.is_empty());
            match name.trim().to_ascii_lowercase().as_str() {
                "accountname" => parsed.account = value,
                "accountkey" => parsed.key = value,
                "sharedaccesssignature" => parsed.sas_token = value,
                "blobendpoint" => parsed.blob_endpoint = value,
                "defaultendpointsprotocol" => parsed.protocol = value,
                "endpointsuffix" => parsed.endpoint_suffix = value,
                "usedevelopmentstorage" if value.as_deref() == Some("true") => {
                    parsed.account = Some(DEVELOPMENT_ACCOUNT.into());
                    parsed.key = Some(DEVELOPMENT_KEY.into());
                    parsed.blob_endpoint = Some(DEVELOPMENT_ENDPOINT.into());
                }
                _ => {}
            }
        }
        parsed
    }

    /// `AccountName`, else read off `BlobEndpoint` (a SAS string may carry
    /// only that): the path for Azurite's `host/account`, else the host's
    /// first label.
    fn account(&self) -> Option<String> {
        if self.account.is_some() {
            return self.account.clone();
        }
        let endpoint = Url::parse(self.blob_endpoint.as_deref()?).ok()?;
        let in_path = endpoint
            .path_segments()
            .and_then(|mut segments| segments.next())
            .filter(|s| !s.is_empty());
        let name = match in_path {
            Some(segment) => segment.to_owned(),
            None => endpoint.host_str()?.split('.').next()?.to_owned(),
        };
        Some(name).filter(|name| !name.is_empty())
    }

    fn endpoint(&self) -> Option<String> {
        if let Some(endpoint) = &self.blob_endpoint {
            return Some(endpoint.clone());
        }
        let suffix = self.endpoint_suffix.as_ref()?;
        let protocol = self.protocol.as_deref().unwrap_or("https");
        Some(format!("{protocol}://{}.blob.{suffix}", self.account()?))
    }
}

/// Entra ID, like go-cloud's `DefaultAzureCredential` minus developer tools:
/// a client secret, else workload identity, else managed identity.
pub(super) fn entra_id_credential() -> azure_core::Result<Arc<dyn TokenCredential>> {
    use azure_identity::{
        ClientSecretCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
        UserAssignedId, WorkloadIdentityCredential,
    };
    let read = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    if let (Some(tenant), Some(client), Some(secret)) = (
        read("AZURE_TENANT_ID"),
        read("AZURE_CLIENT_ID"),
        read("AZURE_CLIENT_SECRET"),
    ) {
        return Ok(ClientSecretCredential::new(
            &tenant,
            client,
            Secret::new(secret),
            None,
        )?);
    }
    if read("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        return Ok(WorkloadIdentityCredential::new(None)?);
    }
    let options = ManagedIdentityCredentialOptions {
        user_assigned_id: read("AZURE_CLIENT_ID").map(UserAssignedId::ClientId),
        ..Default::default()
    };
    Ok(ManagedIdentityCredential::new(Some(options))?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // allowed in tests (style.md)
mod tests {
    use super::*;

    fn location(text: &str) -> AzureLocation {
        match crate::storage::Location::parse(text).unwrap() {
            crate::storage::Location::Azure(azure) => azure,
            other => panic!("not azure: {other}"),
        }
    }

    #[test]
    fn service_urls_follow_go_cloud() {
        for (url, want) in [
            ("azblob://c", "https://acct.blob.core.windows.net"),
            (
                "azblob://c?domain=blob.core.chinacloudapi.cn",
                "https://acct.blob.core.chinacloudapi.cn",
            ),
            (
                "azblob://c?domain=127.0.0.1:10000&protocol=http&localemu=true",
                "http://127.0.0.1:10000/acct",
            ),
            (
                "azblob://c?domain=cdn.example.com&cdn=true",
                "https://cdn.example.com",
            ),
        ] {
            assert_eq!(location_service_url(&location(url), "acct"), want, "{url}");
        }
    }

    #[test]
    fn credentials_are_picked_like_go_cloud() {
        let loc = location("azblob://c?domain=127.0.0.1:10000&protocol=http&localemu=true");
        let credentials = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            AzureCredentials::from_lookup(move |name| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
        };
        let missing = resolve(
            &loc,
            &credentials(&[("AZURE_STORAGE_KEY", DEVELOPMENT_KEY)]),
        )
        .err()
        .unwrap();
        assert!(
            missing.contains("AZURE_STORAGE_ACCOUNT")
                && missing.contains("AZURE_STORAGE_CONNECTION_STRING")
        );
        assert!(!missing.contains(DEVELOPMENT_KEY));

        let shared = resolve(
            &loc,
            &credentials(&[
                ("AZURE_STORAGE_ACCOUNT", "a"),
                ("AZURE_STORAGE_KEY", DEVELOPMENT_KEY),
            ]),
        )
        .unwrap();
        assert!(matches!(shared.auth, Auth::SharedKey(_)));
        assert_eq!(shared.service_url.as_str(), "http://127.0.0.1:10000/a");

        let sas = resolve(
            &loc,
            &credentials(&[
                ("AZURE_STORAGE_ACCOUNT", "a"),
                ("AZURE_STORAGE_SAS_TOKEN", "?sv=1&sig=abc%2Bd"),
            ]),
        )
        .unwrap();
        assert!(matches!(sas.auth, Auth::Sas));
        assert_eq!(sas.service_url.query(), Some("sv=1&sig=abc%2Bd"));
        assert_eq!(sas.redactor.redact("x abc+d y abc%2Bd"), "x *** y ***");

        let entra = resolve(&loc, &credentials(&[("AZURE_STORAGE_ACCOUNT", "a")])).unwrap();
        assert!(matches!(entra.auth, Auth::EntraId));

        let bad_key = resolve(
            &loc,
            &credentials(&[
                ("AZURE_STORAGE_ACCOUNT", "a"),
                ("AZURE_STORAGE_KEY", "not base64!"),
            ]),
        );
        assert!(bad_key.err().unwrap().contains("not valid base64"));
    }

    #[test]
    fn connection_strings() {
        let loc = location("azblob://c");
        let from = |text: &str| {
            resolve(
                &loc,
                &AzureCredentials {
                    connection_string: Some(text.into()),
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let azurite = from(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEVELOPMENT_KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;"
        ));
        assert_eq!(azurite.account, "devstoreaccount1");
        assert_eq!(
            azurite.service_url.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert!(matches!(azurite.auth, Auth::SharedKey(_)));
        assert!(!azurite.redactor.redact(DEVELOPMENT_KEY).contains("Eby8"));

        let suffix = from("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.usgovcloudapi.net");
        assert_eq!(
            suffix.service_url.as_str(),
            "https://acct.blob.core.usgovcloudapi.net/"
        );

        let sas = from("BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=2021-06-08&sig=s3cr3t");
        assert!(matches!(sas.auth, Auth::Sas));
        assert_eq!(sas.account, "acct");
        assert_eq!(
            from(
                "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature=sig=x"
            )
            .account,
            "devstoreaccount1"
        );
        assert_eq!(sas.service_url.query(), Some("sv=2021-06-08&sig=s3cr3t"));

        let development = from("UseDevelopmentStorage=true");
        assert_eq!(development.service_url.as_str(), DEVELOPMENT_ENDPOINT);
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let debug = format!(
            "{:?}",
            AzureCredentials {
                key: Some("topsecret".into()),
                ..Default::default()
            }
        );
        assert!(!debug.contains("topsecret"), "{debug}");
    }
}
