//! CalDAV (RFC 4791) and CardDAV (RFC 6352) storages.
//!
//! - [`xml`] builds request bodies and parses multistatus answers (sans-IO).
//! - [`href`] resolves, compares and encodes hrefs.
//! - [`storage`] decides which requests to send: discovery, cheapest listing, batched fetching,
//!   conditional writes.

pub mod config;
pub mod href;
pub mod storage;
pub mod xml;

use crate::config::Env;
use crate::filter::ItemFilter;
use crate::http::{self, Clients};
use crate::storage::StorageError;

pub use config::{ComponentLimit, DavConfig, DavKind, Dialect, parse_config};
pub use storage::DavStorage;

/// The largest single item taken from a server, in bytes: a larger one is an error naming
/// it. (The answer carrying it is capped separately, by `max_response_size`.)
pub const MAX_ITEM_SIZE: usize = 64 << 20;

/// Opens a DAV storage letting through what `filter` lets through: resolves its secrets
/// (before any network I/O) and takes its client from `clients`.
pub fn open(
    config: &DavConfig,
    filter: &ItemFilter,
    env: &dyn Env,
    clients: &Clients,
) -> Result<DavStorage, StorageError> {
    let credentials = http::credentials(&config.http, env)
        .map_err(|e| StorageError::Other(format!("{}: {e}", config.http.url)))?;
    let client = clients
        .get(&config.http, config.concurrency, credentials)
        .map_err(|e| StorageError::Other(e.to_string()))?;
    Ok(DavStorage::new(config, filter, client))
}
