//! Sending DAV requests: one pooled HTTP client, authentication, TLS settings, retries.
//!
//! Requests are plain data ([`DavRequest`]) built elsewhere; this module only sends them and
//! hands back the status, headers and body. It never logs credentials: the `Authorization`
//! header is set here and nowhere else, and error messages name the method, URL and status only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use thiserror::Error;

use crate::config::{AuthScheme, DavConfig, TlsVerify};

/// How often a request that is safe to repeat is retried after a connection error, a 5xx or a
/// 429 before giving up.
const MAX_RETRIES: u32 = 3;

/// Longest wait honoured from a `Retry-After` header; a server asking for more gets an error.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

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
    /// Connecting, TLS, timeout or a broken connection.
    #[error("{method} {url}: {reason}")]
    Transport {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// What went wrong, with every cause in the chain.
        reason: String,
    },
    /// The client could not be set up (bad CA file, client certificate, ...).
    #[error("{0}")]
    Setup(String),
}

/// Credentials, resolved once before any network I/O.
#[derive(Clone, PartialEq, Eq, Hash)]
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
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <hidden>)"),
            Credentials::Digest { username, .. } => write!(f, "Digest({username}, <hidden>)"),
            Credentials::Bearer(_) => f.write_str("Bearer(<hidden>)"),
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

impl HttpClient {
    /// Builds the client from a storage's settings and already resolved credentials.
    pub fn new(config: &DavConfig, credentials: Credentials) -> Result<HttpClient, HttpError> {
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
            .pool_max_idle_per_host(config.concurrency.max(1))
            .redirect(reqwest::redirect::Policy::limited(5));
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
            let tls = super::tls::pinned_config(expected)
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
        Ok(HttpClient {
            client,
            credentials,
            digest: Mutex::new(None),
            shared_answers: Mutex::new(HashMap::new()),
        })
    }

    fn build(&self, request: &DavRequest) -> Result<RequestBuilder, HttpError> {
        let method = Method::from_bytes(request.method.as_bytes()).map_err(|e| {
            HttpError::Setup(format!("{} is not an HTTP method: {e}", request.method))
        })?;
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            let bad = || {
                HttpError::Setup(format!(
                    "{} {}: bad {name} header",
                    request.method, request.url
                ))
            };
            let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            headers.append(
                header_name,
                HeaderValue::from_str(value).map_err(|_| bad())?,
            );
        }
        let builder = self
            .client
            .request(method, &request.url)
            .headers(headers)
            .body(request.body.clone());
        Ok(match &self.credentials {
            Credentials::None => builder,
            Credentials::Basic { username, password } => {
                builder.basic_auth(username, Some(password))
            }
            Credentials::Bearer(token) => builder.bearer_auth(token),
            Credentials::Digest { username, password } => {
                let mut digest = lock(&self.digest);
                let Some(client) = digest.as_mut() else {
                    // No challenge yet: the first request goes without and gets one.
                    return Ok(builder);
                };
                let url = reqwest::Url::parse(&request.url)
                    .map_err(|e| HttpError::Setup(format!("{}: {e}", request.url)))?;
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
                    .map_err(|e| HttpError::Setup(format!("{}: digest: {e}", request.url)))?;
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

    /// Sends a request, retrying connection errors, 5xx and 429 (honouring `Retry-After`) with
    /// backoff. Every request davsync sends is safe to repeat: reads are idempotent, and writes
    /// are conditional, so a repeated write that already happened answers 412 and the caller
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
        } else if !matches!(
            request.method,
            "GET" | "HEAD" | "OPTIONS" | "PROPFIND" | "REPORT"
        ) {
            lock(&self.shared_answers).clear();
        }
        let response = self.send_now(request)?;
        if request.shareable && response.status == 207 {
            lock(&self.shared_answers).insert(request.clone(), response.clone());
        }
        Ok(response)
    }

    fn send_now(&self, request: &DavRequest) -> Result<DavResponse, HttpError> {
        let max_retries = if request.retried { MAX_RETRIES } else { 0 };
        let mut attempt = 0;
        let mut answered_challenge = false;
        loop {
            let result = self.build(request)?.send();
            if let Ok(response) = &result
                && response.status() == reqwest::StatusCode::UNAUTHORIZED
                && !answered_challenge
                && self.accept_challenge(response)
            {
                // One more try with the answer to the (new or renewed) Digest challenge.
                answered_challenge = true;
                continue;
            }
            let retry_in = match &result {
                Ok(response) => {
                    retry_delay(response.status().as_u16(), response.headers(), attempt)
                }
                Err(_) => Some(backoff(attempt)),
            };
            match (result, retry_in) {
                (Ok(response), Some(delay))
                    if attempt < max_retries && delay <= MAX_RETRY_AFTER =>
                {
                    drop(response);
                    thread::sleep(delay);
                }
                (Err(_), Some(delay)) if attempt < max_retries => thread::sleep(delay),
                (Ok(response), _) => return read(request, response),
                (Err(e), _) => {
                    let mut reason = chain(&e);
                    if reason.contains("certificate") && !reason.contains("pinned") {
                        reason.push_str(
                            " (for a server with its own certificate, set verify = \"ca.pem\" or \
                             fingerprint = \"sha256:...\" in the storage)",
                        );
                    }
                    return Err(HttpError::Transport {
                        method: request.method,
                        url: request.url.clone(),
                        reason,
                    });
                }
            }
            attempt += 1;
        }
    }
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

fn read(
    request: &DavRequest,
    response: reqwest::blocking::Response,
) -> Result<DavResponse, HttpError> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().map_err(|e| HttpError::Transport {
        method: request.method,
        url: request.url.clone(),
        reason: format!("reading the response body (HTTP {status}): {}", chain(&e)),
    })?;
    Ok(DavResponse {
        status,
        headers,
        body: body.to_vec(),
    })
}

/// 250 ms, 500 ms, 1 s, ...
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 << attempt.min(6))
}

/// Whether (and after how long) a response with `status` is worth retrying. 423 (Locked) is
/// retried too: Xandikos answers it to a write while another write to the same collection
/// holds its git index lock, which concurrent writes run into.
fn retry_delay(status: u16, headers: &HeaderMap, attempt: u32) -> Option<Duration> {
    if status != 429 && status != 423 && !(500..600).contains(&status)
        || status == 501
        || status == 505
    {
        return None;
    }
    let retry_after = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Some(retry_after.unwrap_or_else(|| backoff(attempt)))
}

/// The credentials a storage config describes, resolved now.
pub fn credentials(
    config: &DavConfig,
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
    fn retries_only_what_is_worth_retrying() {
        let none = HeaderMap::new();
        assert_eq!(retry_delay(200, &none, 0), None);
        assert_eq!(retry_delay(412, &none, 0), None);
        assert_eq!(retry_delay(423, &none, 1), Some(Duration::from_millis(500)));
        assert_eq!(retry_delay(501, &none, 0), None);
        assert_eq!(retry_delay(503, &none, 0), Some(Duration::from_millis(250)));
        assert_eq!(retry_delay(500, &none, 2), Some(Duration::from_secs(1)));
        let mut after = HeaderMap::new();
        after.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_delay(429, &after, 0), Some(Duration::from_secs(2)));
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
}
