//! The clients of one run: one [`HttpClient`] per connection setup.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{ConnectionLimit, Credentials, HttpClient, HttpError};
use super::{HttpOptions, TlsVerify};

/// The HTTP clients of the DAV storages opened for one run, one per connection setup (TLS
/// settings, timeout, user agent, credentials). Storages with the same setup share a client,
/// and with it its connections, its Digest session and the answers to discovery requests
/// ([`HttpClient::send`]): a calendar pair and an address-book pair on one server learn
/// what changed from one PROPFIND. Every client counts its requests against one
/// [`ConnectionLimit`], the run's `max_connections`.
#[derive(Debug, Default)]
pub struct Clients {
    by_setup: Mutex<HashMap<ClientSetup, Arc<HttpClient>>>,
    connections: Arc<ConnectionLimit>,
    /// Set when the run is asked to stop; see [`HttpClient::interrupted_by`].
    interrupt: Option<&'static AtomicBool>,
}

/// Everything [`HttpClient::new`] builds a client from.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ClientSetup {
    /// A client only ever talks to one origin: credentials are tied to it.
    origin: Option<String>,
    credentials: Credentials,
    verify: TlsVerify,
    fingerprint: Option<String>,
    client_cert: Option<PathBuf>,
    timeout: Duration,
    user_agent: Option<String>,
    concurrency: usize,
    max_response_size: u64,
}

impl Clients {
    /// No clients yet; those made will share `connections`, the cap on requests in flight,
    /// and try no request again once `interrupt` is set.
    pub fn new(
        connections: Arc<ConnectionLimit>,
        interrupt: Option<&'static AtomicBool>,
    ) -> Clients {
        Clients {
            by_setup: Mutex::default(),
            connections,
            interrupt,
        }
    }

    /// The cap on requests in flight every client of these counts against.
    pub fn connections(&self) -> &Arc<ConnectionLimit> {
        &self.connections
    }

    /// The client for `config` with `credentials` and up to `concurrency` requests in flight:
    /// the one already made for the same setup, else a new one.
    pub fn get(
        &self,
        config: &HttpOptions,
        concurrency: usize,
        credentials: Credentials,
    ) -> Result<Arc<HttpClient>, HttpError> {
        let setup = ClientSetup {
            origin: super::origin(&config.url),
            credentials,
            verify: config.verify.clone(),
            fingerprint: config.fingerprint.clone(),
            client_cert: config.client_cert.clone(),
            timeout: config.timeout,
            user_agent: config.user_agent.clone(),
            concurrency,
            max_response_size: config.max_response_size,
        };
        let mut clients = self
            .by_setup
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(&setup) {
            return Ok(Arc::clone(client));
        }
        let client = Arc::new(
            HttpClient::new(config, concurrency, setup.credentials.clone())?
                .limited(Arc::clone(&self.connections))
                .interrupted_by(self.interrupt),
        );
        clients.insert(setup, Arc::clone(&client));
        Ok(client)
    }
}
