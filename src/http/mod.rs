//! The HTTP client every network storage uses (CalDAV, CardDAV, webcal, cloud APIs): one pooled
//! client per connection setup ([`Clients`]), authentication, TLS settings ([`tls`]), retries.
//!
//! Requests are plain data ([`DavRequest`]) built elsewhere; this module only sends them and
//! hands back the status, headers and body. It never logs credentials: the `Authorization`
//! header is set here and nowhere else, and error messages name the method, URL and status only.
//!
//! Every request stays on the origin (scheme, host, port) of the configured `url`: a href or a
//! redirect pointing elsewhere is refused before anything is sent there, so credentials never
//! leave for another server (or for plain `http://` when the `url` says `https://`).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use thiserror::Error;

mod clients;
pub mod limit;
pub mod options;
pub mod probe;
pub mod tls;

pub use clients::Clients;
pub use limit::{ConnectionLimit, ConnectionPermit, DEFAULT_MAX_CONNECTIONS};
pub use options::{AuthScheme, HttpOptions, TlsVerify};

/// How often a request that is safe to repeat is retried after a connection error, a 5xx or a
/// 429 before giving up.
const MAX_RETRIES: u32 = 3;

/// Longest wait honoured from a `Retry-After` header; a server asking for more gets an error.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Longest chain of redirects followed for one read.
const MAX_REDIRECTS: usize = 5;

/// One HTTP request, as data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DavRequest {
    /// `PROPFIND`, `REPORT`, `PUT`, ...
    pub method: &'static str,
    /// Absolute URL.
    pub url: String,
    /// Extra headers (`Depth`, `If-Match`, `Content-Type`, ...).
    pub headers: Vec<(&'static str, String)>,
    /// The body (empty for none).
    pub body: Vec<u8>,
    /// A discovery read whose answer other storages using the same client may reuse, until
    /// the next write through the client (see [`HttpClient::send`]).
    pub shareable: bool,
    /// Whether a connection error, 5xx or 429 is retried. Off for a request that is only a
    /// shortcut, whose caller falls back to another way at once.
    pub retried: bool,
}

impl DavRequest {
    /// A request without headers or body.
    pub fn new(method: &'static str, url: impl Into<String>) -> DavRequest {
        DavRequest {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            shareable: false,
            retried: true,
        }
    }

    /// Turns retries off ([`DavRequest::retried`]).
    pub fn without_retries(mut self) -> DavRequest {
        self.retried = false;
        self
    }

    /// Marks the request as [`DavRequest::shareable`].
    pub fn shareable(mut self) -> DavRequest {
        self.shareable = true;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> DavRequest {
        self.headers.push((name, value.into()));
        self
    }

    /// Sets an XML body.
    pub fn xml(mut self, body: impl Into<Vec<u8>>) -> DavRequest {
        self.body = body.into();
        self.header("Content-Type", "application/xml; charset=utf-8")
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct DavResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The (decompressed) body.
    pub body: Vec<u8>,
    /// The URL that answered: the request's, or where its redirects led. Relative hrefs in
    /// the body are relative to it.
    pub url: String,
}

impl DavResponse {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A request that got no usable HTTP answer.
#[derive(Debug, Error)]
pub enum HttpError {
    /// No answer at all, after the retries: connecting, TLS, or a timeout before the
    /// response head. The client then takes the server for dead for the rest of the run.
    #[error("{method} {url}: {reason}")]
    Unreachable {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// What went wrong, with every cause in the chain.
        reason: String,
    },
    /// No answer because TLS refused the connection: the server's certificate (an issuer the
    /// configured roots do not know, expired, another name, not the pinned one) or its TLS
    /// itself (plain HTTP at an `https://` url, no protocol version in common). A setting or the
    /// server to fix, which no later run fixes by itself. The client takes the server for dead
    /// for the rest of the run, as for [`HttpError::Unreachable`].
    #[error("{method} {url}: {reason}")]
    TlsRefused {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// What went wrong, with every cause in the chain.
        reason: String,
    },
    /// An answer that broke off or could not be read.
    #[error("{method} {url}: {reason}")]
    Transport {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// What went wrong, with every cause in the chain.
        reason: String,
    },
    /// A URL (a href from the server, or a redirect's target) on another scheme, host or port
    /// than the configured `url`. Nothing was sent there.
    #[error(
        "{method} {url}: refused: not on {origin}, the server of the configured url {configured} \
         (another scheme, host or port); davsync sends no request and no credentials there"
    )]
    OtherOrigin {
        /// The method.
        method: &'static str,
        /// The URL refused.
        url: String,
        /// The configured `url`.
        configured: String,
        /// Its scheme, host and port.
        origin: String,
    },
    /// A write the server redirected: not followed, so nothing was written.
    #[error(
        "{method} {url}: the server redirects this write to {target} (HTTP {status}); nothing was \
         written (writes are not redirected: point url at the address the server uses)"
    )]
    RedirectedWrite {
        /// The method.
        method: &'static str,
        /// The URL of the write.
        url: String,
        /// Where the server redirects it.
        target: String,
        /// The redirect's status.
        status: u16,
    },
    /// A response body larger than `max_response_size`.
    #[error(
        "{method} {url}: the answer is larger than {limit_mib} MiB (max_response_size of the storage)"
    )]
    TooLarge {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The limit, in MiB.
        limit_mib: u64,
    },
    /// The client could not be set up (bad CA file, client certificate, ...).
    #[error("{0}")]
    Setup(String),
    /// No OAuth2 token to send: nothing was sent.
    #[error("{method} {url}: {source}")]
    Token {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// Why there is no token.
        #[source]
        source: TokenError,
    },
}

/// Where an OAuth2 storage's bearer tokens come from (see `crate::oauth::FileTokenSource`):
/// the client asks for the current token before each request, and once for a fresh one after
/// a 401.
pub trait TokenSource: Send + Sync + std::fmt::Debug {
    /// A valid access token (refreshed first when it is about to expire).
    fn access_token(&self) -> Result<String, TokenError>;

    /// A new access token after the server refused `refused`; another thread may already have
    /// refreshed it, then that token is the answer.
    fn refresh_after_refusal(&self, refused: &str) -> Result<String, TokenError>;
}

/// No bearer token could be had. Never holds a token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// Only a new authorization helps: no token file, or the refresh token was revoked or
    /// expired (`invalid_grant`).
    #[error("{reason}; run \"davsync auth {storage}\" to authorize again")]
    AuthorizeAgain {
        /// The storage to authorize.
        storage: String,
        /// What happened.
        reason: String,
    },
    /// Anything else: the token endpoint unreachable or refusing, an unwritable token file.
    #[error("{0}")]
    Failed(String),
}

/// Credentials, resolved once before any network I/O.
#[derive(Clone)]
pub enum Credentials {
    /// No authentication.
    None,
    /// HTTP Basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// HTTP Digest: the challenge comes with the first 401, every request after it answers.
    Digest {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// A bearer token.
    Bearer(String),
    /// OAuth2 bearer tokens from a source that refreshes them; two are the same credentials
    /// only when they are the same source.
    OAuth(Arc<dyn TokenSource>),
}

impl PartialEq for Credentials {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Credentials::None, Credentials::None) => true,
            (
                Credentials::Basic {
                    username: u1,
                    password: p1,
                },
                Credentials::Basic {
                    username: u2,
                    password: p2,
                },
            )
            | (
                Credentials::Digest {
                    username: u1,
                    password: p1,
                },
                Credentials::Digest {
                    username: u2,
                    password: p2,
                },
            ) => u1 == u2 && p1 == p2,
            (Credentials::Bearer(a), Credentials::Bearer(b)) => a == b,
            (Credentials::OAuth(a), Credentials::OAuth(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Credentials {}

impl std::hash::Hash for Credentials {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Credentials::None => {}
            Credentials::Basic { username, password }
            | Credentials::Digest { username, password } => {
                username.hash(state);
                password.hash(state);
            }
            Credentials::Bearer(token) => token.hash(state),
            Credentials::OAuth(source) => Arc::as_ptr(source).cast::<()>().hash(state),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <hidden>)"),
            Credentials::Digest { username, .. } => write!(f, "Digest({username}, <hidden>)"),
            Credentials::Bearer(_) => f.write_str("Bearer(<hidden>)"),
            Credentials::OAuth(source) => write!(f, "OAuth({source:?})"),
        }
    }
}

/// The HTTP side of DAV storages: a pooled client plus credentials, and the answers to
/// shareable requests.
#[derive(Debug)]
pub struct HttpClient {
    client: Client,
    credentials: Credentials,
    /// The server's Digest challenge, once it sent one; answering it needs a nonce counter,
    /// hence the lock.
    digest: Mutex<Option<http_auth::PasswordClient>>,
    /// Answers to shareable requests since the last write sent through this client.
    shared_answers: Mutex<HashMap<DavRequest, DavResponse>>,
    /// The configured `url`, and its origin (scheme, host, port): the only one requests go to.
    configured_url: String,
    origin: String,
    /// Largest response body read, in bytes (after decompression).
    max_response_size: u64,
    /// Set once a request got no answer through all its retries: later requests fail at once,
    /// so a dead server costs one request's retries, not every request's.
    dead: OnceLock<(String, bool)>,
    /// Writes in flight, fewer after the server said it is busy.
    writes: WriteLimiter,
    /// The storage's `timeout`, named in the message of a request that ran out of it.
    timeout: Duration,
    /// The cap on requests in flight shared by every client of the run (`max_connections`);
    /// `None` for a client of its own (a token endpoint's).
    connections: Option<Arc<ConnectionLimit>>,
    /// Set when the run is asked to stop (SIGTERM): from then on no request is tried again.
    interrupt: Option<&'static AtomicBool>,
}

/// The origin of `url` (`scheme://host[:port]`), the unit credentials are tied to; `None` for
/// a URL that does not parse.
pub fn origin(url: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
}

/// Caps the writes (PUT, DELETE, PROPPATCH, MKCOL, MKCALENDAR) in flight at once. A server
/// answering 423, 429 or 503 to a write halves the cap (down to one) for the rest of the
/// run: Xandikos locks a collection per write, and servers that rate-limit want fewer
/// requests, so retrying at the same concurrency would run the retries out.
#[derive(Debug)]
struct WriteLimiter {
    state: Mutex<WriteSlots>,
    freed: Condvar,
}

#[derive(Debug)]
struct WriteSlots {
    limit: usize,
    in_flight: usize,
}

/// One write in flight; frees its slot when dropped.
struct WritePermit<'a>(&'a WriteLimiter);

impl WriteLimiter {
    fn new(limit: usize) -> WriteLimiter {
        WriteLimiter {
            state: Mutex::new(WriteSlots {
                limit: limit.max(1),
                in_flight: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free slot.
    fn acquire(&self) -> WritePermit<'_> {
        let mut slots = lock(&self.state);
        while slots.in_flight >= slots.limit {
            slots = self
                .freed
                .wait(slots)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        slots.in_flight += 1;
        WritePermit(self)
    }

    /// The server is busy: fewer writes at once from now on.
    fn back_off(&self) {
        let mut slots = lock(&self.state);
        slots.limit = (slots.limit / 2).max(1);
    }
}

impl Drop for WritePermit<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).in_flight -= 1;
        self.0.freed.notify_one();
    }
}

/// Whether `method` changes something on the server.
fn is_write(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS" | "PROPFIND" | "REPORT")
}

/// Why a request got no (whole) answer, said so that the user knows what to change: a
/// timeout names the `timeout` key and its value, a host name that does not resolve names the
/// `url` key, a refused connection and a plain-HTTP answer to a TLS handshake say what to
/// check; anything else shows every cause in the chain.
pub(crate) fn unanswered(error: &(dyn std::error::Error + 'static), timeout: Duration) -> String {
    let causes = causes(error);
    let reqwest_errors = || {
        causes
            .iter()
            .filter_map(|c| c.downcast_ref::<reqwest::Error>())
    };
    let io_kind = |kinds: &[std::io::ErrorKind]| {
        causes.iter().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| kinds.contains(&io.kind()))
        })
    };
    // A blocking socket whose read timeout expired says `WouldBlock` (the TLS probe's).
    let timed_out = causes.iter().any(|c| {
        c.downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
    }) || io_kind(&[std::io::ErrorKind::TimedOut, std::io::ErrorKind::WouldBlock]);
    let plain_http = causes.iter().any(|c| {
        matches!(
            c.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            ))
        )
    });
    // reqwest tags what its resolver returns (hyper-util's connector error, which says only
    // "dns error", is private), so `is_dns` finds it by type in the chain.
    let unresolved = reqwest_errors().any(reqwest::Error::is_dns);
    if timed_out {
        format!(
            "timed out after {} s (the storage's `timeout` key)",
            timeout.as_secs()
        )
    } else if unresolved {
        let host = reqwest_errors()
            .find_map(|e| e.url()?.host_str().map(str::to_owned))
            .unwrap_or_else(|| "of the url".to_owned());
        // The resolver's own words, the innermost cause: they tell a name that does not exist
        // from a network without DNS, which getaddrinfo's errors do not by type (every EAI_*
        // code is one uncategorized `io::Error`).
        let reason = causes.last().map_or_else(String::new, ToString::to_string);
        unresolved_host(&host, &reason)
    } else if io_kind(&[std::io::ErrorKind::ConnectionRefused]) {
        "connection refused (is the server running? is the port right?)".to_owned()
    } else if plain_http {
        "the server answered in plain HTTP: use http:// or the TLS port".to_owned()
    } else {
        // reqwest repeats the URL the message already starts with.
        reqwest_errors()
            .filter_map(reqwest::Error::url)
            .fold(chain(error), |text, url| {
                text.replace(&format!(" for url ({url})"), "")
            })
    }
}

/// A host name that did not resolve to an address; `reason` is what the resolver said.
pub(crate) fn unresolved_host(host: &str, reason: &str) -> String {
    format!("could not resolve host {host} ({reason}): check the `url` key, or the network")
}

/// An error and its causes, outermost first. `io::Error::source` skips the error an
/// `io::Error` wraps (a TLS error inside a failed read), so that one is listed too.
fn causes<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> Vec<&'e (dyn std::error::Error + 'static)> {
    let mut causes = Vec::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        causes.push(cause);
        next = match cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            // The wrapped error's source is the `io::Error`'s.
            Some(wrapped) => Some(wrapped),
            None => cause.source(),
        };
    }
    causes
}

/// True when TLS (rustls) ended the connection: a refused certificate or a protocol error, not
/// the network.
fn refused_by_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    causes(error).iter().any(|c| c.is::<rustls::Error>())
}

/// Makes every cause in an error chain visible: reqwest's top-level message alone ("error
/// sending request") does not say whether TLS, DNS or the connection failed.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl HttpError {
    /// True when the server could not answer now (no answer, or one that broke off): a later
    /// run may succeed without anyone changing anything. TLS refusing the server is not.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            HttpError::Unreachable { .. } | HttpError::Transport { .. }
        )
    }
}

impl HttpClient {
    /// Builds the client from a storage's HTTP options and already resolved credentials, for
    /// up to `concurrency` requests in flight.
    pub fn new(
        config: &HttpOptions,
        concurrency: usize,
        credentials: Credentials,
    ) -> Result<HttpClient, HttpError> {
        // Only the ring provider is compiled in; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let user_agent = config
            .user_agent
            .clone()
            .unwrap_or_else(|| format!("davsync/{}", env!("CARGO_PKG_VERSION")));
        let mut builder = Client::builder()
            .user_agent(user_agent)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .pool_max_idle_per_host(concurrency.max(1))
            // Followed here, after checking method and origin (see `send_now`).
            .redirect(reqwest::redirect::Policy::none());
        builder = match &config.verify {
            TlsVerify::System => builder,
            TlsVerify::Off => builder.tls_danger_accept_invalid_certs(true),
            TlsVerify::CaFile(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| HttpError::Setup(format!("{}: {e}", path.display())))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| HttpError::Setup(format!("{}: {}", path.display(), chain(&e))))?;
                certs
                    .into_iter()
                    .fold(builder.tls_certs_only([]), |b, cert| {
                        b.add_root_certificate(cert)
                    })
            }
        };
        if let Some(expected) = &config.fingerprint {
            if config.client_cert.is_some() {
                return Err(HttpError::Setup(
                    "fingerprint and client_cert cannot be combined yet".into(),
                ));
            }
            let tls = tls::pinned_config(expected)
                .map_err(|e| HttpError::Setup(format!("TLS setup: {e}")))?;
            builder = builder.tls_backend_preconfigured(tls);
        }
        if let Some(path) = &config.client_cert {
            let pem = std::fs::read(path)
                .map_err(|e| HttpError::Setup(format!("{}: {e}", path.display())))?;
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| HttpError::Setup(format!("{}: {}", path.display(), chain(&e))))?;
            builder = builder.identity(identity);
        }
        let client = builder
            .build()
            .map_err(|e| HttpError::Setup(format!("HTTP client: {}", chain(&e))))?;
        let origin = origin(&config.url)
            .ok_or_else(|| HttpError::Setup(format!("{}: not a URL", config.url)))?;
        Ok(HttpClient {
            client,
            credentials,
            digest: Mutex::new(None),
            shared_answers: Mutex::new(HashMap::new()),
            configured_url: config.url.clone(),
            origin,
            max_response_size: config.max_response_size,
            dead: OnceLock::new(),
            writes: WriteLimiter::new(concurrency),
            timeout: config.timeout,
            connections: None,
            interrupt: None,
        })
    }

    /// The client with its requests counted against `limit`, the cap on requests in flight
    /// that every client of a run shares ([`Clients`] gives it to each client it makes).
    pub fn limited(mut self, limit: Arc<ConnectionLimit>) -> HttpClient {
        self.connections = Some(limit);
        self
    }

    /// The client with no more retries once `interrupt` is set: a run asked to stop finishes
    /// the requests under way, and a server that does not answer would otherwise hold the stop
    /// up for every retry's `timeout` (four of them, past systemd's stop timeout).
    pub fn interrupted_by(mut self, interrupt: Option<&'static AtomicBool>) -> HttpClient {
        self.interrupt = interrupt;
        self
    }

    /// Builds `request` for `url` (the request's own, or where a redirect led).
    fn build(
        &self,
        request: &DavRequest,
        url: &str,
        oauth_token: Option<&str>,
    ) -> Result<RequestBuilder, HttpError> {
        let method = Method::from_bytes(request.method.as_bytes()).map_err(|e| {
            HttpError::Setup(format!("{} is not an HTTP method: {e}", request.method))
        })?;
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            let bad = || HttpError::Setup(format!("{} {url}: bad {name} header", request.method));
            let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            headers.append(
                header_name,
                HeaderValue::from_str(value).map_err(|_| bad())?,
            );
        }
        let builder = self
            .client
            .request(method, url)
            .headers(headers)
            .body(request.body.clone());
        Ok(match &self.credentials {
            Credentials::None => builder,
            Credentials::Basic { username, password } => {
                builder.basic_auth(username, Some(password))
            }
            Credentials::Bearer(token) => builder.bearer_auth(token),
            Credentials::OAuth(_) => match oauth_token {
                Some(token) => builder.bearer_auth(token),
                None => builder,
            },
            Credentials::Digest { username, password } => {
                let mut digest = lock(&self.digest);
                let Some(client) = digest.as_mut() else {
                    // No challenge yet: the first request goes without and gets one.
                    return Ok(builder);
                };
                // The Digest `uri` is that of the URL actually requested.
                let url = reqwest::Url::parse(url)
                    .map_err(|e| HttpError::Setup(format!("{url}: {e}")))?;
                let uri = match url.query() {
                    Some(query) => format!("{}?{query}", url.path()),
                    None => url.path().to_owned(),
                };
                let answer = client
                    .respond(&http_auth::PasswordParams {
                        username,
                        password,
                        uri: &uri,
                        method: request.method,
                        body: Some(&request.body),
                    })
                    .map_err(|e| HttpError::Setup(format!("{url}: digest: {e}")))?;
                builder.header(reqwest::header::AUTHORIZATION, answer)
            }
        })
    }

    /// Takes a Digest challenge from a 401; true when there is one to answer.
    fn accept_challenge(&self, response: &reqwest::blocking::Response) -> bool {
        if !matches!(self.credentials, Credentials::Digest { .. }) {
            return false;
        }
        let challenges = response
            .headers()
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");
        match http_auth::PasswordClient::try_from(challenges.as_str()) {
            Ok(client) => {
                let mut digest = lock(&self.digest);
                // Concurrent requests that all met the same renewed nonce bring the same
                // challenge: keep the client already answering it, so its nonce count goes on
                // instead of starting again at 1 (a replay to servers that check it).
                if !same_nonce(digest.as_ref(), &client) {
                    *digest = Some(client);
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Sends a request, retrying connection errors, 5xx, 423, 429 and a 403 that says it is a
    /// rate limit (honouring `Retry-After`) with backoff. Only to the configured origin ([`HttpError::OtherOrigin`]); redirects are
    /// followed for reads and are an error for writes ([`HttpError::RedirectedWrite`]).
    /// Every request davsync sends is safe to repeat: reads are idempotent, and writes are
    /// conditional, so a repeated write that already happened answers 412 and the caller
    /// checks what is there.
    ///
    /// A [`DavRequest::shareable`] request sent before through this client, with no write
    /// since, gets the earlier multistatus answer without being sent: storages of several pairs
    /// on one server (a calendar and an address book in one home set) then discover and
    /// learn which collections changed with one PROPFIND. An answer a little older than the
    /// request is safe there: a change it misses is seen by the next run.
    pub fn send(&self, request: &DavRequest) -> Result<DavResponse, HttpError> {
        if request.shareable {
            if let Some(answer) = lock(&self.shared_answers).get(request) {
                return Ok(answer.clone());
            }
        } else if is_write(request.method) {
            lock(&self.shared_answers).clear();
        }
        let response = self.send_now(request)?;
        if request.shareable && response.status == 207 {
            lock(&self.shared_answers).insert(request.clone(), response.clone());
        }
        Ok(response)
    }

    /// Sends `request`, following redirects for reads, on the configured origin only.
    fn send_now(&self, request: &DavRequest) -> Result<DavResponse, HttpError> {
        let mut url = request.url.clone();
        for _ in 0..=MAX_REDIRECTS {
            if origin(&url).as_deref() != Some(self.origin.as_str()) {
                return Err(HttpError::OtherOrigin {
                    method: request.method,
                    url,
                    configured: self.configured_url.clone(),
                    origin: self.origin.clone(),
                });
            }
            let (response, started, permit) = match self.send_with_retries(request, &url)? {
                Answer::Read(read) => return Ok(read),
                Answer::Pending(response, started, permit) => (response, started, permit),
            };
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok());
            let target = match location {
                Some(location) if matches!(status, 301 | 302 | 303 | 307 | 308) => response
                    .url()
                    .join(location)
                    .map_err(|e| HttpError::Transport {
                        method: request.method,
                        url: url.clone(),
                        reason: format!("HTTP {status} to a bad Location {location:?}: {e}"),
                    })?,
                _ => return self.read(request, &url, response, started, permit),
            };
            log_request(request.method, &url, started, Ok((status, None)));
            if is_write(request.method) {
                // A write "redirected" was not done; repeating it elsewhere would also skip
                // the If-Match the caller chose for this URL.
                return Err(HttpError::RedirectedWrite {
                    method: request.method,
                    url,
                    target: target.to_string(),
                    status,
                });
            }
            url = target.to_string();
        }
        Err(HttpError::Transport {
            method: request.method,
            url: request.url.clone(),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// Sends `request` to `url` until it gets an answer worth returning (see [`Self::send`]).
    fn send_with_retries(&self, request: &DavRequest, url: &str) -> Result<Answer, HttpError> {
        let unreachable = |reason: String, tls_refused: bool| match tls_refused {
            true => HttpError::TlsRefused {
                method: request.method,
                url: url.to_owned(),
                reason,
            },
            false => HttpError::Unreachable {
                method: request.method,
                url: url.to_owned(),
                reason,
            },
        };
        if let Some((reason, tls_refused)) = self.dead.get() {
            return Err(unreachable(
                format!("not sent: the server did not answer before ({reason})"),
                *tls_refused,
            ));
        }
        let max_retries = if request.retried { MAX_RETRIES } else { 0 };
        let token_error = |source: TokenError| HttpError::Token {
            method: request.method,
            url: url.to_owned(),
            source,
        };
        let mut oauth_token = match &self.credentials {
            Credentials::OAuth(source) => Some(source.access_token().map_err(token_error)?),
            _ => None,
        };
        let mut attempt = 0;
        let mut answered_challenge = false;
        let mut refreshed = false;
        loop {
            // The server's write slot first, then the run's connection slot: a thread holding a
            // connection slot never waits for anything but the network (and the Digest lock,
            // held only to compute an answer), so slots cannot deadlock, and a write waiting
            // for its server holds no slot other servers need. Built after the waits, so a
            // Digest nonce count is sent soon after it was taken.
            let write = is_write(request.method).then(|| self.writes.acquire());
            let connection = self.connections.as_ref().map(ConnectionLimit::acquire);
            let builder = self.build(request, url, oauth_token.as_deref())?;
            let started = Instant::now();
            let result = builder.send();
            drop(write);
            let result = match result {
                // A 403 is a refusal, or (Google's) a rate limit only its body tells apart.
                Ok(response) if response.status().as_u16() == 403 => Ok(Answer::Read(
                    self.read(request, url, response, started, connection)?,
                )),
                // The connection slot stays with the answer until its body is read.
                Ok(response) => Ok(Answer::Pending(response, started, connection)),
                Err(e) => {
                    // No answer: the slot is free before any backoff.
                    drop(connection);
                    log_request(
                        request.method,
                        url,
                        started,
                        Err(&unanswered(&e, self.timeout)),
                    );
                    Err(e)
                }
            };
            if let Ok(answer) = &result {
                let status = answer.status();
                if says_busy(request.method, status) {
                    self.writes.back_off();
                }
                if let Answer::Pending(response, started, _) = answer
                    && status == 401
                    && !answered_challenge
                    && self.accept_challenge(response)
                {
                    // One more try with the answer to the (new or renewed) Digest challenge.
                    log_request(request.method, url, *started, Ok((status, None)));
                    answered_challenge = true;
                    continue;
                }
                if let (401, false, Credentials::OAuth(source), Some(refused)) =
                    (status, refreshed, &self.credentials, &oauth_token)
                {
                    // The token was revoked or expired early: one more try with a fresh one,
                    // if there is another one; a second 401 is the answer. (The answer keeps its
                    // connection slot meanwhile: the token endpoint's client counts against no
                    // limit, so the refresh never waits for a slot.)
                    refreshed = true;
                    let fresh = source.refresh_after_refusal(refused).map_err(token_error)?;
                    if fresh != *refused {
                        answer.log_unread(request.method, url);
                        oauth_token = Some(fresh);
                        continue;
                    }
                }
            }
            let retry_in = match &result {
                Ok(answer) => retry_delay(
                    answer.status(),
                    answer.headers(),
                    attempt,
                    SystemTime::now(),
                ),
                Err(_) => Some(backoff(attempt)),
            };
            let retries_left = attempt < max_retries
                && !self
                    .interrupt
                    .is_some_and(|stop| stop.load(Ordering::SeqCst));
            match (result, retry_in) {
                (Ok(answer), Some(delay)) if retries_left && delay <= MAX_RETRY_AFTER => {
                    answer.log_unread(request.method, url);
                    drop(answer);
                    thread::sleep(delay);
                }
                (Err(_), Some(delay)) if retries_left => thread::sleep(delay),
                (Ok(response), _) => return Ok(response),
                (Err(e), _) => {
                    let tls_refused = refused_by_tls(&e);
                    let mut reason = unanswered(&e, self.timeout);
                    if reason.contains("certificate") && !reason.contains("pinned") {
                        reason.push_str(
                            " (for a server with its own certificate, set verify = \"ca.pem\" or \
                             fingerprint = \"sha256:...\" in the storage)",
                        );
                    }
                    if max_retries > 0 {
                        // Retried and still no answer: the server is down for this run. (A
                        // request without retries is a shortcut that may fail on its own.)
                        let _ = self.dead.set((reason.clone(), tls_refused));
                    }
                    return Err(unreachable(reason, tls_refused));
                }
            }
            attempt += 1;
        }
    }

    /// Reads the body, decompressed, up to `max_response_size`, of the answer to a request
    /// sent at `started`, then gives back the request's connection slot (`permit`).
    fn read(
        &self,
        request: &DavRequest,
        url: &str,
        response: reqwest::blocking::Response,
        started: Instant,
        permit: Option<ConnectionPermit>,
    ) -> Result<DavResponse, HttpError> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        let read = response
            .take(self.max_response_size.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|e| {
                format!(
                    "reading the response body (HTTP {status}): {}",
                    unanswered(&e, self.timeout)
                )
            });
        // The answer is read and its connection back in the pool: the slot is free.
        drop(permit);
        log_request(
            request.method,
            url,
            started,
            match &read {
                Ok(_) => Ok((status, Some(body.len()))),
                Err(reason) => Err(reason),
            },
        );
        read.map_err(|reason| HttpError::Transport {
            method: request.method,
            url: url.to_owned(),
            reason,
        })?;
        if body.len() as u64 > self.max_response_size {
            return Err(HttpError::TooLarge {
                method: request.method,
                url: url.to_owned(),
                limit_mib: self.max_response_size >> 20,
            });
        }
        Ok(DavResponse {
            status,
            headers,
            body,
            url: url.to_owned(),
        })
    }
}

/// An answer from [`HttpClient::send_with_retries`]: its body still to be read (with the time
/// the request was sent and its connection slot, given back once the body is read or the
/// answer dropped), or already read (a 403, whose body tells a rate limit from a refusal).
enum Answer {
    Pending(
        reqwest::blocking::Response,
        Instant,
        Option<ConnectionPermit>,
    ),
    Read(DavResponse),
}

impl Answer {
    /// Logs an answer that is not passed on (a retried one); one already read was logged when
    /// read.
    fn log_unread(&self, method: &str, url: &str) {
        if let Answer::Pending(response, started, _) = self {
            log_request(
                method,
                url,
                *started,
                Ok((response.status().as_u16(), None)),
            );
        }
    }

    /// The status, with a 403 that says it is a rate limit taken for the 429 it means.
    fn status(&self) -> u16 {
        match self {
            Answer::Pending(response, ..) => response.status().as_u16(),
            Answer::Read(read) if read.status == 403 && is_rate_limit(&read.body) => 429,
            Answer::Read(read) => read.status,
        }
    }

    fn headers(&self) -> &HeaderMap {
        match self {
            Answer::Pending(response, ..) => response.headers(),
            Answer::Read(read) => &read.headers,
        }
    }
}

/// Logs one request sent (`-vv`: `tracing` at debug level, target `davsync::http`): method,
/// URL, status, time taken and the body bytes read ("body not read" for a retried answer or a
/// redirect), or why there was no answer. The URL is logged without its
/// query, which may carry a token; headers, bodies and credentials never are.
fn log_request(
    method: &str,
    url: &str,
    started: Instant,
    outcome: Result<(u16, Option<usize>), &str>,
) {
    if !tracing::enabled!(target: "davsync::http", tracing::Level::DEBUG) {
        return;
    }
    let url = loggable_url(url);
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok((status, bytes)) => {
            let bytes = bytes.map_or_else(|| "body not read".to_owned(), |n| format!("{n} bytes"));
            tracing::debug!(target: "davsync::http", "{method} {url}: {status} in {ms} ms, {bytes}");
        }
        Err(reason) => {
            tracing::debug!(target: "davsync::http", "{method} {url}: no answer after {ms} ms: {reason}");
        }
    }
}

/// `url` as logged: without query, fragment and user info.
fn loggable_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_query(None);
            parsed.set_fragment(None);
            // Only fails for URLs that cannot have user info, which then have none.
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

/// Whether the body of a 403 says the client went over a rate limit or quota rather than
/// lacking permission: Google answers 403 with a JSON error whose `reason` is
/// `rateLimitExceeded` or `userRateLimitExceeded` (domain `usageLimits`) where other servers
/// answer 429. No other server says these words in a refusal, so every server is read this way.
fn is_rate_limit(body: &[u8]) -> bool {
    const MARKERS: [&[u8]; 2] = [b"rateLimitExceeded", b"usageLimits"];
    // `userRateLimitExceeded` contains `RateLimitExceeded`: compare without case.
    let lower = body.to_ascii_lowercase();
    MARKERS.iter().any(|marker| {
        let marker = marker.to_ascii_lowercase();
        lower.windows(marker.len()).any(|w| w == marker.as_slice())
    })
}

/// Whether a write answered with `status` says the server wants fewer writes at once.
fn says_busy(method: &str, status: u16) -> bool {
    is_write(method) && matches!(status, 423 | 429 | 503)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether `current` already answers the challenge `new` (same realm and nonce).
fn same_nonce(
    current: Option<&http_auth::PasswordClient>,
    new: &http_auth::PasswordClient,
) -> bool {
    match (current, new) {
        (
            Some(http_auth::PasswordClient::Digest(current)),
            http_auth::PasswordClient::Digest(new),
        ) => current.realm() == new.realm() && current.nonce() == new.nonce(),
        _ => false,
    }
}

/// About 250 ms, 500 ms, 1 s, ...: the upper half of each step is random, so clients that
/// failed together (the workers of one run, several runs against one server) do not all
/// come back at the same moment.
fn backoff(attempt: u32) -> Duration {
    let step = Duration::from_millis(250 << attempt.min(6));
    step / 2 + jitter(step / 2)
}

/// A random duration up to `max`. `RandomState` is seeded randomly per process and moves on
/// with each instance: enough randomness for spreading retries, without a dependency.
fn jitter(max: Duration) -> Duration {
    let random = std::hash::RandomState::new().build_hasher().finish();
    max.mul_f64(random as f64 / u64::MAX as f64)
}

/// Whether (and after how long) a response with `status` is worth retrying. 423 (Locked) is
/// retried too: Xandikos answers it to a write while another write to the same collection
/// holds its git index lock, which concurrent writes run into.
///
/// `Retry-After` is honoured in both forms: seconds, or an HTTP date. A date is measured
/// against the response's own `Date` header where there is one (both from the server's
/// clock, so a skewed local clock does not matter), else against `now`.
fn retry_delay(
    status: u16,
    headers: &HeaderMap,
    attempt: u32,
    now: SystemTime,
) -> Option<Duration> {
    if status != 429 && status != 423 && !(500..600).contains(&status)
        || status == 501
        || status == 505
    {
        return None;
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let retry_after = text("retry-after").and_then(|value| {
        let value = value.trim();
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        let at = http_date(value)?;
        let now = text("date").and_then(http_date).unwrap_or(now);
        // A date already past: retry at once.
        Some(at.duration_since(now).unwrap_or_default())
    });
    Some(retry_after.unwrap_or_else(|| backoff(attempt)))
}

/// Parses an HTTP date in the preferred IMF-fixdate form (RFC 9110 §5.6.7), e.g.
/// `Sun, 06 Nov 1994 08:49:37 GMT`; the obsolete forms give `None` (a plain backoff).
fn http_date(text: &str) -> Option<SystemTime> {
    let (_weekday, rest) = text.trim().split_once(", ")?;
    let mut fields = rest.split(' ');
    let day: u64 = fields.next()?.parse().ok()?;
    let month = fields.next()?;
    let year: u64 = fields.next()?.parse().ok()?;
    let time = fields.next()?;
    if fields.next()? != "GMT" || fields.next().is_some() {
        return None;
    }
    let month = 1 + [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == month)? as u64;
    let mut hms = time.split(':').map(|f| f.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some()
        || !(1970..10000).contains(&year)
        || !(1..=31).contains(&day)
        || h > 23
        || m > 59
        || sec > 60
    {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let year_of_era = y % 400;
    let day_of_year = (153 * mo + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// The credentials a storage config describes, resolved now.
pub fn credentials(
    config: &HttpOptions,
    env: &dyn crate::config::Env,
) -> Result<Credentials, crate::config::SecretError> {
    let secret = config
        .password
        .as_ref()
        .map(|s| s.resolve(env))
        .transpose()?;
    Ok(match (config.auth, &config.username, secret) {
        (AuthScheme::Bearer, _, Some(token)) => Credentials::Bearer(token),
        (AuthScheme::Digest, Some(username), password) => Credentials::Digest {
            username: username.clone(),
            password: password.unwrap_or_default(),
        },
        (_, Some(username), Some(password)) => Credentials::Basic {
            username: username.clone(),
            password,
        },
        (_, Some(username), None) => Credentials::Basic {
            username: username.clone(),
            password: String::new(),
        },
        _ => Credentials::None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_refusals_are_found_inside_nested_io_errors_and_nothing_else_is() {
        use std::io::{Error, ErrorKind};
        let certificate =
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let nested = Error::other(Error::new(ErrorKind::InvalidData, certificate));
        assert!(refused_by_tls(&nested));
        let corrupt = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert!(refused_by_tls(&Error::new(ErrorKind::InvalidData, corrupt)));
        assert!(!refused_by_tls(&Error::from(ErrorKind::ConnectionRefused)));
        assert!(!refused_by_tls(&Error::new(
            ErrorKind::UnexpectedEof,
            "end of file before message length reached"
        )));
    }

    fn between(delay: Option<Duration>, min_ms: u64, max_ms: u64) -> bool {
        delay.is_some_and(|d| {
            (Duration::from_millis(min_ms)..=Duration::from_millis(max_ms)).contains(&d)
        })
    }

    #[test]
    fn retries_only_what_is_worth_retrying() {
        let none = HeaderMap::new();
        let now = SystemTime::now();
        assert_eq!(retry_delay(200, &none, 0, now), None);
        assert_eq!(retry_delay(412, &none, 0, now), None);
        assert!(between(retry_delay(423, &none, 1, now), 250, 500));
        assert_eq!(retry_delay(501, &none, 0, now), None);
        assert!(between(retry_delay(503, &none, 0, now), 125, 250));
        assert!(between(retry_delay(500, &none, 2, now), 500, 1000));
        let mut after = HeaderMap::new();
        after.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(
            retry_delay(429, &after, 0, now),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn backoff_is_spread() {
        let delays: std::collections::HashSet<Duration> = (0..20).map(|_| backoff(3)).collect();
        assert!(delays.len() > 1, "{delays:?}");
        assert!(
            delays.iter().all(|d| between(Some(*d), 1000, 2000)),
            "{delays:?}"
        );
    }

    #[test]
    fn parses_http_dates() {
        let at = |secs| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), at(784_111_777));
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), at(0));
        assert_eq!(
            http_date("Tue, 29 Feb 2028 23:59:59 GMT"),
            at(1_835_481_599)
        );
        for bad in [
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 CET",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "",
        ] {
            assert_eq!(http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_date_counts_from_the_server_clock() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:47 GMT"),
        );
        // Without a Date header: from the local clock.
        let local = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            retry_delay(503, &headers, 0, local),
            Some(Duration::from_secs(10))
        );
        // A date already past: at once.
        let later = local + Duration::from_secs(60);
        assert_eq!(retry_delay(503, &headers, 0, later), Some(Duration::ZERO));
        // With one, the local clock (here far off) does not matter.
        headers.insert(
            "date",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:44 GMT"),
        );
        assert_eq!(
            retry_delay(429, &headers, 0, later),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn a_403_is_a_rate_limit_only_when_its_body_says_so() {
        let google = br#"{"error":{"errors":[{"domain":"usageLimits","reason":"rateLimitExceeded"}],"code":403}}"#;
        assert!(is_rate_limit(google));
        assert!(is_rate_limit(b"{\"reason\": \"userRateLimitExceeded\"}"));
        assert!(!is_rate_limit(
            b"Forbidden: no write access to this calendar"
        ));
        assert!(!is_rate_limit(b""));
        let read = |body: &[u8]| {
            Answer::Read(DavResponse {
                status: 403,
                headers: HeaderMap::new(),
                body: body.to_vec(),
                url: String::new(),
            })
        };
        assert_eq!(read(google).status(), 429);
        assert_eq!(read(b"forbidden").status(), 403);
        assert!(says_busy("PUT", read(google).status()));
    }

    #[test]
    fn busy_answers_to_writes_leave_fewer_writes_in_flight() {
        let limiter = WriteLimiter::new(8);
        let limit = |l: &WriteLimiter| lock(&l.state).limit;
        for expected in [4, 2, 1, 1] {
            limiter.back_off();
            assert_eq!(limit(&limiter), expected);
        }
        assert!(says_busy("PUT", 423) && says_busy("DELETE", 429) && says_busy("PROPPATCH", 503));
        assert!(!says_busy("GET", 503) && !says_busy("PUT", 500) && !says_busy("PUT", 412));
    }

    #[test]
    fn a_second_write_waits_while_the_limit_is_one() {
        let limiter = std::sync::Arc::new(WriteLimiter::new(1));
        let first = limiter.acquire();
        let (sent, got) = std::sync::mpsc::channel();
        let other = std::sync::Arc::clone(&limiter);
        let waiter = thread::spawn(move || {
            let _second = other.acquire();
            let _ = sent.send(());
        });
        assert!(got.recv_timeout(Duration::from_millis(200)).is_err());
        drop(first);
        assert!(got.recv_timeout(Duration::from_secs(5)).is_ok());
        let _ = waiter.join();
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        let https = origin("https://Dav.Example.com/alice/");
        assert_eq!(https.as_deref(), Some("https://dav.example.com"));
        assert_eq!(origin("https://dav.example.com:443/other/"), https);
        assert_ne!(origin("http://dav.example.com/alice/"), https);
        assert_ne!(origin("https://dav.example.com:8443/alice/"), https);
        assert_ne!(origin("https://evil.example.com/alice/"), https);
        assert_eq!(origin("not a url"), None);
    }

    /// A token source for the tests below: `old` until refreshed, then `new`.
    #[derive(Debug)]
    struct FakeSource {
        current: Mutex<String>,
        refreshes: std::sync::atomic::AtomicUsize,
        /// What a refresh gives; `None` for invalid_grant.
        next: Option<&'static str>,
    }

    impl TokenSource for FakeSource {
        fn access_token(&self) -> Result<String, TokenError> {
            Ok(lock(&self.current).clone())
        }

        fn refresh_after_refusal(&self, refused: &str) -> Result<String, TokenError> {
            let mut current = lock(&self.current);
            if *current == refused {
                thread::sleep(Duration::from_millis(50));
                self.refreshes
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                *current = self
                    .next
                    .ok_or_else(|| TokenError::AuthorizeAgain {
                        storage: "g".into(),
                        reason: "revoked".into(),
                    })?
                    .to_owned();
            }
            Ok(current.clone())
        }
    }

    /// A server answering 207 to `Bearer <accepted>` and 401 to anything else; counts requests.
    fn bearer_server(accepted: &'static str) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/cal/", listener.local_addr().unwrap());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&count);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let counted = Arc::clone(&counted);
                thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut authorized = false;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                            break;
                        }
                        if line.to_ascii_lowercase().starts_with("authorization:") {
                            authorized = line.trim().ends_with(&format!("Bearer {accepted}"));
                        }
                    }
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let status = if authorized {
                        "207 Multi-Status"
                    } else {
                        "401 Unauthorized"
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                });
            }
        });
        (url, count)
    }

    fn oauth_client(url: &str, source: &Arc<FakeSource>) -> HttpClient {
        let options = HttpOptions {
            url: url.to_owned(),
            username: None,
            password: None,
            auth: AuthScheme::Bearer,
            verify: TlsVerify::System,
            fingerprint: None,
            client_cert: None,
            timeout: Duration::from_secs(10),
            user_agent: None,
            max_response_size: 1 << 20,
        };
        let source: Arc<dyn TokenSource> = Arc::clone(source) as Arc<dyn TokenSource>;
        HttpClient::new(&options, 8, Credentials::OAuth(source)).unwrap()
    }

    fn fake(next: Option<&'static str>) -> Arc<FakeSource> {
        Arc::new(FakeSource {
            current: Mutex::new("old".into()),
            refreshes: std::sync::atomic::AtomicUsize::new(0),
            next,
        })
    }

    #[test]
    fn a_refused_token_is_refreshed_once_and_the_request_sent_again() {
        let (url, count) = bearer_server("new");
        let source = fake(Some("new"));
        let client = Arc::new(oauth_client(&url, &source));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (client, url) = (Arc::clone(&client), url.clone());
                thread::spawn(move || client.send(&DavRequest::new("PROPFIND", url)).unwrap())
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().status, 207);
        }
        // Concurrent requests refused together refresh once.
        assert_eq!(
            source.refreshes.load(std::sync::atomic::Ordering::SeqCst),
            1
        );
        assert!(count.load(std::sync::atomic::Ordering::SeqCst) <= 16);
    }

    #[test]
    fn a_second_refusal_is_the_answer_and_a_revoked_grant_an_error() {
        let (url, count) = bearer_server("never");
        let source = fake(Some("new"));
        let client = oauth_client(&url, &source);
        let answer = client
            .send(&DavRequest::new("PROPFIND", url.clone()))
            .unwrap();
        assert_eq!(answer.status, 401);
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);

        let (url, count) = bearer_server("never");
        let revoked = fake(None);
        let client = oauth_client(&url, &revoked);
        let error = client
            .send(&DavRequest::new("PROPFIND", url.clone()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("run \"davsync auth g\""), "{error}");
        assert!(!error.contains("old"), "{error}");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let basic = Credentials::Basic {
            username: "alice".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{basic:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credentials::Bearer("tok".into())).contains("tok"));
    }

    /// Requests being worked on by the mock servers that share it, and the most at once.
    type Gauge = Arc<(AtomicUsize, AtomicUsize)>;

    /// A mock server whose every answer takes `delay`; counts on `gauge` the requests it is
    /// working on (from the end of the request head to the start of the answer, so a client
    /// that read its answer is never counted). `GET /forbidden` is answered 403, `GET /moved`
    /// redirects to `/`, anything else 200 with a small body.
    fn counting_server(delay: Duration, gauge: &Gauge) -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let counted = Arc::clone(gauge);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let gauge = Arc::clone(&counted);
                thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let mut first = String::new();
                        if reader.read_line(&mut first).unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0
                                || line.trim().is_empty()
                            {
                                break;
                            }
                        }
                        let now = gauge.0.fetch_add(1, Ordering::SeqCst) + 1;
                        gauge.1.fetch_max(now, Ordering::SeqCst);
                        thread::sleep(delay);
                        gauge.0.fetch_sub(1, Ordering::SeqCst);
                        let head = if first.contains("/forbidden") {
                            "403 Forbidden\r\nContent-Length: 2"
                        } else if first.contains("/moved") {
                            "302 Found\r\nLocation: /\r\nContent-Length: 2"
                        } else {
                            "200 OK\r\nContent-Length: 2"
                        };
                        if write!(stream, "HTTP/1.1 {head}\r\n\r\nok").is_err() {
                            return;
                        }
                    }
                });
            }
        });
        url
    }

    fn plain_options(url: &str) -> HttpOptions {
        HttpOptions {
            url: url.to_owned(),
            username: None,
            password: None,
            auth: AuthScheme::Basic,
            verify: TlsVerify::System,
            fingerprint: None,
            client_cert: None,
            timeout: Duration::from_secs(10),
            user_agent: None,
            max_response_size: 1 << 20,
        }
    }

    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn clients_of_one_run_share_the_cap_on_requests_in_flight() {
        // Two servers, each client allowed 8 at once: without the shared cap, 16 requests
        // would be in flight together.
        let gauge = Gauge::default();
        let servers = [
            counting_server(Duration::from_millis(40), &gauge),
            counting_server(Duration::from_millis(40), &gauge),
        ];
        let clients = Clients::new(ConnectionLimit::new(3), None);
        let handles: Vec<Arc<HttpClient>> = servers
            .iter()
            .map(|url| {
                clients
                    .get(&plain_options(url), 8, Credentials::None)
                    .unwrap()
            })
            .collect();
        thread::scope(|scope| {
            for (client, url) in handles.iter().zip(&servers) {
                for n in 0..8 {
                    scope.spawn(move || {
                        for _ in 0..3 {
                            let answer = client
                                .send(&DavRequest::new("GET", format!("{url}item-{n}")))
                                .unwrap();
                            assert_eq!(answer.status, 200);
                        }
                    });
                }
            }
        });
        let most = gauge.1.load(Ordering::SeqCst);
        assert!(most <= 3, "{most} requests in flight at once, the cap is 3");
        assert_eq!(clients.connections().peak(), 3);
        assert_eq!(clients.connections().in_flight(), 0);
    }

    #[test]
    fn every_kind_of_answer_gives_its_connection_slot_back() {
        let url = counting_server(Duration::ZERO, &Gauge::default());
        let limit = ConnectionLimit::new(1);
        let client = HttpClient::new(&plain_options(&url), 4, Credentials::None)
            .unwrap()
            .limited(Arc::clone(&limit));
        // With one slot, a request whose slot was kept would make the next one wait forever:
        // the requests run on a thread and must all be done in time.
        let (done, finished) = std::sync::mpsc::channel();
        let worker = {
            let refused = {
                // A port nothing listens on (bound, then let go).
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                format!("http://{}/", listener.local_addr().unwrap())
            };
            let dead = HttpClient::new(&plain_options(&refused), 4, Credentials::None)
                .unwrap()
                .limited(Arc::clone(&limit));
            thread::spawn(move || {
                let statuses: Vec<u16> = ["", "forbidden", "moved", "put"]
                    .iter()
                    .map(|path| {
                        let method = if *path == "put" { "PUT" } else { "GET" };
                        client
                            .send(&DavRequest::new(method, format!("{url}{path}")))
                            .unwrap()
                            .status
                    })
                    .collect();
                // No answer at all: the slot is free again too.
                let failed = dead.send(&DavRequest::new("GET", refused).without_retries());
                let again = client.send(&DavRequest::new("GET", url)).unwrap().status;
                let _ = done.send((statuses, failed.is_err(), again));
            })
        };
        let (statuses, failed, again) = finished
            .recv_timeout(Duration::from_secs(20))
            .expect("a connection slot was not given back");
        worker.join().unwrap();
        // The redirect was followed to `/`.
        assert_eq!(statuses, [200, 403, 200, 200]);
        assert!(failed);
        assert_eq!(again, 200);
        assert_eq!(limit.in_flight(), 0);
    }
}
