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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::{DavConfig, Env, TlsVerify};
use crate::storage::StorageError;

pub use storage::DavStorage;

/// The largest single item taken from a server, in bytes: a larger one is an error naming
/// it. (The answer carrying it is capped separately, by `max_response_size`.)
pub const MAX_ITEM_SIZE: usize = 64 << 20;

/// The HTTP clients of the DAV storages opened for one run, one per connection setup (TLS
/// settings, timeout, user agent, credentials). Storages with the same setup share a client,
/// and with it its connections, its Digest session and the answers to discovery requests
/// ([`http::HttpClient::send`]): a calendar pair and an address-book pair on one server learn
/// what changed from one PROPFIND.
#[derive(Debug, Default)]
pub struct Clients {
    by_setup: Mutex<HashMap<ClientSetup, Arc<http::HttpClient>>>,
}

/// Everything [`http::HttpClient::new`] builds a client from.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ClientSetup {
    /// A client only ever talks to one origin: credentials are tied to it.
    origin: Option<String>,
    credentials: http::Credentials,
    verify: TlsVerify,
    fingerprint: Option<String>,
    client_cert: Option<PathBuf>,
    timeout: Duration,
    user_agent: Option<String>,
    concurrency: usize,
    max_response_size: u64,
}

impl Clients {
    /// The client for `config` with `credentials`: the one already made for the same setup,
    /// else a new one.
    fn get(
        &self,
        config: &DavConfig,
        credentials: http::Credentials,
    ) -> Result<Arc<http::HttpClient>, http::HttpError> {
        let setup = ClientSetup {
            origin: http::origin(&config.url),
            credentials,
            verify: config.verify.clone(),
            fingerprint: config.fingerprint.clone(),
            client_cert: config.client_cert.clone(),
            timeout: config.timeout,
            user_agent: config.user_agent.clone(),
            concurrency: config.concurrency,
            max_response_size: config.max_response_size,
        };
        let mut clients = self
            .by_setup
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(&setup) {
            return Ok(Arc::clone(client));
        }
        let client = Arc::new(http::HttpClient::new(config, setup.credentials.clone())?);
        clients.insert(setup, Arc::clone(&client));
        Ok(client)
    }
}

/// Opens a DAV storage: resolves its secrets (before any network I/O) and takes its client
/// from `clients`.
pub fn open(
    config: &DavConfig,
    env: &dyn Env,
    clients: &Clients,
) -> Result<DavStorage, StorageError> {
    let credentials = http::credentials(config, env)
        .map_err(|e| StorageError::Other(format!("{}: {e}", config.url)))?;
    let client = clients
        .get(config, credentials)
        .map_err(|e| StorageError::Other(e.to_string()))?;
    Ok(DavStorage::new(config, client))
}
