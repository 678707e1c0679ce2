//! `OAuthEmulation`: a local emulation of an OAuth2 provider, named as such, for the Google
//! tests and for any later OAuth2 storage (Microsoft 365). It is not Google: it implements the
//! parts of RFC 6749/7636 davsync uses, strictly:
//!
//! - `GET /authorize?...`: checks `client_id`, `response_type=code` and an S256
//!   `code_challenge`, then redirects (302) to the given `redirect_uri` with `code` and
//!   `state`. A "scripted browser" ([`scripted_browser`]) GETs that URL and follows the
//!   redirect to davsync's loopback listener.
//! - `POST /token`: `authorization_code` (checks client id and secret, the code, the
//!   `redirect_uri` and the PKCE verifier) and `refresh_token` grants; access tokens expire
//!   after [`OAuthEmulation::set_lifetime`] seconds; [`OAuthEmulation::revoke`] makes every
//!   refresh token answer `invalid_grant`.
//! - Any other path: a bearer-checking front for a DAV server ([`OAuthEmulation::start_front`]):
//!   a valid, unexpired access token gets the request forwarded; anything else a 401.
//!
//! Every request is logged ([`OAuthEmulation::log`]), and every token issued is kept
//! ([`OAuthEmulation::issued`]) so tests can assert that none appears in davsync's output.

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::http::{base64, header, read_body, read_head, try_http};

pub const CLIENT_ID: &str = "emulated-client.apps.example";
pub const CLIENT_SECRET: &str = "emulated-client-secret";

/// One request the emulation answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthLogged {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// `grant_type` of a token request.
    pub grant_type: Option<String>,
    pub status: u16,
}

#[derive(Debug, Default)]
struct State {
    lifetime_secs: u64,
    revoked: bool,
    /// code -> (challenge, redirect_uri)
    codes: HashMap<String, (String, String)>,
    /// access token -> expiry (unix secs)
    access: HashMap<String, u64>,
    refresh: Vec<String>,
    issued: Vec<String>,
    log: Vec<OAuthLogged>,
    /// The DAV server behind the bearer front.
    backend: Option<String>,
}

pub struct OAuthEmulation {
    port: u16,
    state: Arc<Mutex<State>>,
    counter: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn b64url(data: &[u8]) -> String {
    base64(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// Decodes `a=b&c=d` (form or query), percent-decoding and `+` as space.
pub fn form(text: &str) -> HashMap<String, String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let (b'%', Some(b)) = (bytes[i], hex) {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(n), decode(v))
        })
        .collect()
}

impl OAuthEmulation {
    /// Starts the emulation on a free loopback port; access tokens live `lifetime_secs`.
    pub fn start(lifetime_secs: u64) -> OAuthEmulation {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State {
            lifetime_secs,
            ..State::default()
        }));
        let counter = Arc::new(AtomicU64::new(1));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopped, count) =
            (Arc::clone(&state), Arc::clone(&stop), Arc::clone(&counter));
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let (shared, count) = (Arc::clone(&shared), Arc::clone(&count));
                    thread::spawn(move || serve(stream, &shared, &count));
                }
            }
        });
        OAuthEmulation {
            port,
            state,
            counter,
            stop,
            thread: Some(thread),
        }
    }

    /// Puts the emulation in front of the DAV server at `backend` (`http://127.0.0.1:P/`):
    /// requests to other paths than `/authorize` and `/token` need a valid bearer token.
    pub fn start_front(lifetime_secs: u64, backend: &str) -> OAuthEmulation {
        let emulation = OAuthEmulation::start(lifetime_secs);
        emulation.state().backend = Some(backend.trim_end_matches('/').to_owned());
        emulation
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `http://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn authorize_url(&self) -> String {
        format!("{}authorize", self.url())
    }

    pub fn token_url(&self) -> String {
        format!("{}token", self.url())
    }

    /// Lifetime of access tokens issued from now on.
    pub fn set_lifetime(&self, secs: u64) {
        self.state().lifetime_secs = secs;
    }

    /// Every access token issued so far expires now.
    pub fn expire_access_tokens(&self) {
        for expiry in self.state().access.values_mut() {
            *expiry = 0;
        }
    }

    /// Every refresh token answers `invalid_grant` from now on (revoked access).
    pub fn revoke(&self) {
        self.state().revoked = true;
    }

    /// Every code, access and refresh token handed out.
    pub fn issued(&self) -> Vec<String> {
        self.state().issued.clone()
    }

    pub fn log(&self) -> Vec<OAuthLogged> {
        self.state().log.clone()
    }

    /// How many token requests of this grant type were answered with `status`.
    pub fn grants(&self, grant_type: &str, status: u16) -> usize {
        self.log()
            .iter()
            .filter(|l| l.grant_type.as_deref() == Some(grant_type) && l.status == status)
            .count()
    }
}

impl Drop for OAuthEmulation {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn respond(stream: &mut TcpStream, status: u16, headers: &[(String, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        super::http::reason_phrase(status),
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

fn json_header() -> Vec<(String, String)> {
    vec![("Content-Type".into(), "application/json".into())]
}

fn serve(mut stream: TcpStream, state: &Mutex<State>, counter: &AtomicU64) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let Ok(Some((start, headers))) = read_head(&mut reader) else {
        return;
    };
    let body = read_body(&mut reader, &headers, false).unwrap_or_default();
    let mut parts = start.split(' ');
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let path = path.to_owned();
    let fresh = |prefix: &str| {
        format!(
            "{prefix}-{}-{}",
            counter.fetch_add(1, Ordering::SeqCst),
            now_secs()
        )
    };
    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
    let log = |grant_type: Option<String>, status: u16| {
        lock().log.push(OAuthLogged {
            method: method.clone(),
            path: path.clone(),
            grant_type,
            status,
        });
    };
    match (method.as_str(), path.as_str()) {
        ("GET", "/authorize") => {
            let q = form(query);
            let get = |n: &str| q.get(n).cloned().unwrap_or_default();
            let ok = get("client_id") == CLIENT_ID
                && get("response_type") == "code"
                && get("code_challenge_method") == "S256"
                && !get("code_challenge").is_empty()
                && get("redirect_uri").starts_with("http://127.0.0.1:");
            if !ok {
                log(None, 400);
                respond(&mut stream, 400, &[], b"bad authorization request");
                return;
            }
            let code = fresh("code");
            {
                let mut s = lock();
                s.codes
                    .insert(code.clone(), (get("code_challenge"), get("redirect_uri")));
                s.issued.push(code.clone());
            }
            let location = format!(
                "{}?state={}&code={}&scope={}",
                get("redirect_uri"),
                get("state"),
                code,
                "emulated"
            );
            log(None, 302);
            respond(&mut stream, 302, &[("Location".into(), location)], b"");
        }
        ("POST", "/token") => {
            let f = form(&String::from_utf8_lossy(&body));
            let get = |n: &str| f.get(n).cloned().unwrap_or_default();
            let grant = get("grant_type");
            let error = |stream: &mut TcpStream, status: u16, error: &str| {
                log(Some(grant.clone()), status);
                respond(
                    stream,
                    status,
                    &json_header(),
                    format!("{{\"error\":\"{error}\"}}").as_bytes(),
                );
            };
            if get("client_id") != CLIENT_ID || get("client_secret") != CLIENT_SECRET {
                return error(&mut stream, 401, "invalid_client");
            }
            let refresh = match grant.as_str() {
                "authorization_code" => {
                    let Some((challenge, redirect_uri)) = lock().codes.remove(&get("code")) else {
                        return error(&mut stream, 400, "invalid_grant");
                    };
                    let verifier = get("code_verifier");
                    let computed = b64url(&Sha256::digest(verifier.as_bytes()));
                    if verifier.len() < 43
                        || computed != challenge
                        || get("redirect_uri") != redirect_uri
                    {
                        return error(&mut stream, 400, "invalid_grant");
                    }
                    let refresh = fresh("refresh");
                    let mut s = lock();
                    s.refresh.push(refresh.clone());
                    s.issued.push(refresh.clone());
                    Some(refresh)
                }
                "refresh_token" => {
                    let s = lock();
                    if s.revoked || !s.refresh.contains(&get("refresh_token")) {
                        drop(s);
                        return error(&mut stream, 400, "invalid_grant");
                    }
                    None
                }
                _ => return error(&mut stream, 400, "unsupported_grant_type"),
            };
            let access = fresh("access");
            let lifetime = {
                let mut s = lock();
                let lifetime = s.lifetime_secs;
                s.access.insert(access.clone(), now_secs() + lifetime);
                s.issued.push(access.clone());
                lifetime
            };
            let mut answer = format!(
                "{{\"access_token\":\"{access}\",\"expires_in\":{lifetime},\"token_type\":\"Bearer\",\"scope\":\"emulated\""
            );
            if let Some(refresh) = refresh {
                answer.push_str(&format!(",\"refresh_token\":\"{refresh}\""));
            }
            answer.push('}');
            log(Some(grant.clone()), 200);
            respond(&mut stream, 200, &json_header(), answer.as_bytes());
        }
        _ => {
            let token = header(&headers, "authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned);
            let (valid, backend) = {
                let s = lock();
                let valid = token
                    .as_ref()
                    .and_then(|t| s.access.get(t))
                    .is_some_and(|expiry| *expiry > now_secs());
                (valid, s.backend.clone())
            };
            let Some(backend) = backend.filter(|_| valid) else {
                log(None, 401);
                return respond(
                    &mut stream,
                    401,
                    &[(
                        "WWW-Authenticate".into(),
                        "Bearer realm=\"emulated\"".into(),
                    )],
                    b"",
                );
            };
            let forwarded: Vec<(String, String)> = headers
                .iter()
                .filter(|(n, _)| {
                    ![
                        "authorization",
                        "host",
                        "connection",
                        "content-length",
                        "accept-encoding",
                    ]
                    .contains(&n.to_ascii_lowercase().as_str())
                })
                .cloned()
                .collect();
            let refs: Vec<(&str, &str)> = forwarded
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            match try_http(&method, &format!("{backend}{target}"), &refs, &body) {
                Ok(answer) => {
                    let kept: Vec<(String, String)> = answer
                        .headers
                        .iter()
                        .filter(|(n, _)| {
                            ![
                                "connection",
                                "content-length",
                                "transfer-encoding",
                                "keep-alive",
                            ]
                            .contains(&n.to_ascii_lowercase().as_str())
                        })
                        .cloned()
                        .collect();
                    log(None, answer.status);
                    respond(&mut stream, answer.status, &kept, &answer.body);
                }
                Err(_) => {
                    log(None, 502);
                    respond(&mut stream, 502, &[], b"backend unreachable");
                }
            }
        }
    }
}

/// A scripted browser: GETs the authorization URL and follows its redirect (to davsync's
/// loopback listener). Returns the redirect target and the listener's answer body.
pub fn scripted_browser(authorize_url: &str) -> (String, String) {
    let location = authorization_redirect(authorize_url);
    let page = try_http("GET", &location, &[], b"").expect("GET the loopback redirect");
    (location, page.text())
}

/// The `Location` the authorization endpoint redirects to (without following it).
pub fn authorization_redirect(authorize_url: &str) -> String {
    let answer = try_http("GET", authorize_url, &[], b"").expect("GET the authorization URL");
    assert_eq!(answer.status, 302, "{}", answer.text());
    answer
        .header("location")
        .expect("a Location header")
        .to_owned()
}
