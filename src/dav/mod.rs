//! CalDAV (RFC 4791) and CardDAV (RFC 6352) storages.
//!
//! - [`xml`] builds request bodies and parses multistatus answers (sans-IO).
//! - [`href`] resolves, compares and encodes hrefs.
//! - [`http`] sends requests: pooled connections, authentication, TLS, retries.
//! - [`tls`] pins a server certificate by fingerprint.
//! - [`storage`] decides which requests to send: discovery, cheapest listing, batched fetching,
//!   conditional writes.

pub mod href;
pub mod http;
pub mod storage;
pub mod tls;
pub mod xml;

use crate::config::{DavConfig, Env};
use crate::storage::StorageError;

pub use storage::DavStorage;

/// Opens a DAV storage: resolves its secrets (before any network I/O) and sets up its client.
pub fn open(config: &DavConfig, env: &dyn Env) -> Result<DavStorage, StorageError> {
    let credentials = http::credentials(config, env)
        .map_err(|e| StorageError::Other(format!("{}: {e}", config.url)))?;
    let client = http::HttpClient::new(config, credentials)
        .map_err(|e| StorageError::Other(e.to_string()))?;
    Ok(DavStorage::new(config, client))
}
