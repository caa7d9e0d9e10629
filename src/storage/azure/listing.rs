//! Azure listings as streams: List Blobs page by page (markers), flat
//! through the SDK's pager, one level (`delimiter=/`) through our own
//! request, because `azure_storage_blob` 1.1 has no hierarchy listing.
//!
//! The one-level request goes through a pipeline built from the same
//! options as the SDK's (timeouts, retries, SharedKey signing or an Entra
//! ID token, SAS in the URL), so it behaves and fails like every other call.

use std::sync::Arc;
use std::time::SystemTime;

use azure_core::credentials::TokenCredential;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::policies::Policy;
use azure_core::http::{ClientOptions, Context, Method, Pipeline, Request, Url};
use azure_storage_blob::models::BlobContainerClientListBlobsOptions;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use serde::Deserialize;

use super::AzureStorage;
use crate::storage::listing::{pages, Page};
use crate::storage::{DirEntry, Key, ObjectMeta, StorageError};

/// Azure's cap on `maxresults`.
const MAX_PAGE: u32 = 5000;

/// What the one-level request needs besides the SDK's container client.
pub(super) struct Hierarchy {
    pipeline: Pipeline,
    container_url: Url,
    version: String,
}

impl Hierarchy {
    /// Mirrors `BlobContainerClient::new`: the same client options, and an
    /// Entra ID token policy per try when there is a credential.
    pub(super) fn new(
        container_url: Url,
        credential: Option<Arc<dyn TokenCredential>>,
        options: ClientOptions,
        version: String,
    ) -> Self {
        let mut per_try: Vec<Arc<dyn Policy>> = Vec::new();
        if let Some(credential) = credential {
            per_try.push(Arc::new(BearerTokenAuthorizationPolicy::new(
                credential,
                vec!["https://storage.azure.com/.default"],
            )));
        }
        let pipeline = Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            options,
            Vec::new(),
            per_try,
            None,
        );
        Self {
            pipeline,
            container_url,
            version,
        }
    }
}

impl AzureStorage {
    fn page_size(&self) -> i32 {
        i32::try_from(self.tuning.list_page_size.clamp(1, MAX_PAGE)).unwrap_or(5000)
    }

    fn list_scope(&self, prefix: &str) -> String {
        if prefix.is_empty() {
            self.display.clone()
        } else {
            prefix.to_owned()
        }
    }

    /// Every blob under `prefix`, through the SDK's pager.
    pub(super) fn flat<'a>(
        &'a self,
        prefix: &str,
    ) -> BoxStream<'a, Result<ObjectMeta, StorageError>> {
        let scope = self.list_scope(prefix);
        let options = BlobContainerClientListBlobsOptions {
            prefix: (!prefix.is_empty()).then(|| prefix.to_owned()),
            maxresults: Some(self.page_size()),
            ..Default::default()
        };
        let pager = match self.container.list_blobs(Some(options)) {
            Ok(pager) => pager,
            Err(error) => {
                return futures::stream::iter([Err(self.errors.map(&scope, error))]).boxed()
            }
        };
        let errors = self.errors.clone();
        pager
            .into_pages()
            .map_err(move |error| errors.map(&scope, error))
            .and_then(move |page| {
                let scope = self.list_scope("");
                async move {
                    let model = page
                        .into_model()
                        .map_err(|error| self.errors.map(&scope, error))?;
                    let found: Vec<Result<ObjectMeta, StorageError>> = model
                        .blob_items
                        .into_iter()
                        .filter_map(|item| {
                            // Names that are no gitbak key are not ours to list.
                            let key = item.name.and_then(|name| Key::new(name).ok())?;
                            let properties = item.properties.unwrap_or_default();
                            Some(Ok(ObjectMeta {
                                key,
                                size: properties.content_length.unwrap_or(0),
                                modified: properties
                                    .last_modified
                                    .map_or(SystemTime::UNIX_EPOCH, SystemTime::from),
                            }))
                        })
                        .collect();
                    Ok(futures::stream::iter(found))
                }
            })
            .try_flatten()
            .boxed()
    }

    /// Blobs directly under `prefix` and the sub-prefixes one `/` further.
    pub(super) fn one_level<'a>(
        &'a self,
        prefix: &str,
    ) -> BoxStream<'a, Result<DirEntry, StorageError>> {
        let prefix = prefix.to_owned();
        pages(move |marker| {
            let prefix = prefix.clone();
            async move {
                let scope = self.list_scope(&prefix);
                let body = self
                    .hierarchy_page(&prefix, marker.as_deref())
                    .await
                    .map_err(|error| self.errors.map(&scope, error))?;
                let page: EnumerationResults = azure_core::xml::from_xml(&body)
                    .map_err(|error| self.errors.map(&scope, error))?;
                Ok(page.into_page())
            }
        })
        .boxed()
    }

    async fn hierarchy_page(
        &self,
        prefix: &str,
        marker: Option<&str>,
    ) -> azure_core::Result<bytes::Bytes> {
        let hierarchy = &self.hierarchy;
        let mut url = hierarchy.container_url.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("restype", "container")
                .append_pair("comp", "list")
                .append_pair("delimiter", "/")
                .append_pair("maxresults", &self.page_size().to_string());
            if !prefix.is_empty() {
                query.append_pair("prefix", prefix);
            }
            if let Some(marker) = marker {
                query.append_pair("marker", marker);
            }
        }
        let mut request = Request::new(url, Method::Get);
        request.insert_header("accept", "application/xml");
        request.insert_header("x-ms-version", hierarchy.version.clone());
        let response = hierarchy
            .pipeline
            .send(&Context::new(), &mut request, None)
            .await?;
        Ok(bytes::Bytes::copy_from_slice(response.body().as_ref()))
    }
}

/// The parts of a List Blobs answer with a delimiter that gitbak reads.
/// Blobs and prefixes interleave in name order, hence one `$value` list.
#[derive(Deserialize)]
struct EnumerationResults {
    #[serde(rename = "Blobs", default)]
    blobs: Blobs,
    #[serde(rename = "NextMarker", default)]
    next_marker: Option<String>,
}

#[derive(Deserialize, Default)]
struct Blobs {
    #[serde(rename = "$value", default)]
    entries: Vec<Listed>,
}

#[derive(Deserialize)]
enum Listed {
    Blob(ListedBlob),
    BlobPrefix(ListedPrefix),
}

#[derive(Deserialize)]
struct ListedBlob {
    #[serde(rename = "Name")]
    name: Name,
    #[serde(rename = "Properties", default)]
    properties: Properties,
}

#[derive(Deserialize)]
struct ListedPrefix {
    #[serde(rename = "Name")]
    name: Name,
}

/// A name; `Encoded="true"` marks names with characters XML cannot carry,
/// which no gitbak key has.
#[derive(Deserialize)]
struct Name {
    #[serde(rename = "@Encoded", default)]
    encoded: Option<bool>,
    #[serde(rename = "$text", default)]
    text: String,
}

#[derive(Deserialize, Default)]
struct Properties {
    #[serde(rename = "Content-Length", default)]
    content_length: Option<u64>,
    #[serde(rename = "Last-Modified", default)]
    last_modified: Option<String>,
}

impl Name {
    fn plain(self) -> Option<String> {
        (self.encoded != Some(true)).then_some(self.text)
    }
}

impl EnumerationResults {
    fn into_page(self) -> Page<DirEntry> {
        let items = self
            .blobs
            .entries
            .into_iter()
            .filter_map(|listed| match listed {
                Listed::Blob(blob) => {
                    let key = Key::new(blob.name.plain()?).ok()?;
                    let modified = blob
                        .properties
                        .last_modified
                        .and_then(|text| azure_core::time::parse_rfc7231(&text).ok())
                        .map_or(SystemTime::UNIX_EPOCH, SystemTime::from);
                    Some(DirEntry::Object(ObjectMeta {
                        key,
                        size: blob.properties.content_length.unwrap_or(0),
                        modified,
                    }))
                }
                Listed::BlobPrefix(prefix) => prefix.name.plain().map(DirEntry::Prefix),
            })
            .collect();
        Page {
            items,
            next: self.next_marker,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // allowed in tests (style.md)
mod tests {
    use super::*;

    /// Shaped like Azure's documented answer, prefixes between blobs.
    const ANSWER: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1:10000/devstoreaccount1" ContainerName="c">
  <Prefix>m/</Prefix><MaxResults>2</MaxResults><Delimiter>/</Delimiter>
  <Blobs>
    <Blob><Name>m/a.toml</Name><Properties><Last-Modified>Tue, 03 Nov 2026 10:00:00 GMT</Last-Modified><Content-Length>12</Content-Length><BlobType>BlockBlob</BlobType></Properties><OrMetadata /></Blob>
    <BlobPrefix><Name>m/x/</Name></BlobPrefix>
    <Blob><Name Encoded="true">m/%EF%BF%BF</Name><Properties /></Blob>
    <Blob><Name Encoded="false">m/z</Name><Properties><Content-Length>0</Content-Length></Properties></Blob>
    <BlobPrefix><Name>m/y/</Name></BlobPrefix>
  </Blobs>
  <NextMarker>2!token</NextMarker>
</EnumerationResults>"#;

    #[test]
    fn hierarchy_answers_parse_in_order() {
        let page: EnumerationResults = azure_core::xml::from_xml(ANSWER).unwrap();
        let page = page.into_page();
        assert_eq!(page.next.as_deref(), Some("2!token"));
        let names: Vec<String> = page
            .items
            .iter()
            .map(|entry| match entry {
                DirEntry::Object(meta) => format!("{} {}", meta.key, meta.size),
                DirEntry::Prefix(prefix) => prefix.clone(),
            })
            .collect();
        assert_eq!(names, ["m/a.toml 12", "m/x/", "m/z 0", "m/y/"]);
        let DirEntry::Object(first) = &page.items[0] else {
            panic!("a blob first")
        };
        assert_ne!(first.modified, SystemTime::UNIX_EPOCH);
        let empty: EnumerationResults = azure_core::xml::from_xml(
            r#"<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>"#,
        )
        .unwrap();
        let empty = empty.into_page();
        assert!(empty.items.is_empty());
        assert!(empty.next.unwrap_or_default().is_empty());
    }
}
