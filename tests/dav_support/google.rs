//! `GoogleFront`: an EMULATION of Google's CalDAV/CardDAV front, put before a Radicale server.
//! It is not Google: it reproduces the refusals and rewrites davsync must handle, as far as they
//! are documented or reported by users, so the dialect can be tested without an account. A
//! later cloud storage with a dialect of its own (Microsoft 365) can reuse it by adding its
//! refusals to [`Refusals`].
//!
//! What it does to every request, in order:
//! 1. `Authorization: Bearer <token>` must name a token of the set the test controls
//!    ([`GoogleFront::allow_token`], [`GoogleFront::revoke_token`]); otherwise 401 with
//!    `WWW-Authenticate: Bearer`.
//! 2. Queued rate limits ([`GoogleFront::rate_limit`]) answer the next requests: 403 with
//!    Google's JSON `rateLimitExceeded` error, or 429 with `Retry-After`.
//! 3. Google's refusals: MKCALENDAR and MKCOL → 403; a PUT with `If-None-Match` → 412 (the
//!    emulation's choice: it is the answer that looks most like "the name is taken", the
//!    hardest case for a client); a PUT of a VTODO or VJOURNAL → 400 with a body.
//! 4. Everything else goes to Radicale as alice (Basic auth), PUT bodies rewritten the way
//!    Google re-serializes what it stores ([`google_rewrite`]) unless turned off.
//! 5. With [`GoogleFront::google_layout`], paths are Google's (`/caldav/v2/<id>/events/...`,
//!    `/carddav/v1/principals/<email>/lists/default/...`), mapped onto Radicale's, and hrefs
//!    in bodies and headers rewritten both ways ([`GoogleLayout`]).
//!
//! Bearer tokens: checked here against the set the test controls, or, with
//! [`GoogleFront::behind_bearer_check`], by the OAuth2 emulation in front of this one
//! (`OAuthEmulation::start_front(lifetime, &front.url())`), which forwards without them.
//!
//! Every request is logged ([`GoogleFront::log`]).

use std::collections::{HashSet, VecDeque};
use std::io::{self, BufReader, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::http::{
    HttpResponse, IO_TIMEOUT, basic_auth, header, read_body, read_head, read_response,
    reason_phrase, resolve, split_url, write_request,
};
use super::servers::{DavServer, Radicale};

/// Google's JSON error body for a rate limit (the shape of its API errors).
pub const RATE_LIMIT_BODY: &str = r#"{"error":{"errors":[{"domain":"usageLimits","reason":"rateLimitExceeded","message":"Rate Limit Exceeded"}],"code":403,"message":"Rate Limit Exceeded"}}"#;

/// One queued rate-limit answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Limit {
    /// 403 with [`RATE_LIMIT_BODY`].
    RateLimitExceeded,
    /// 429 with `Retry-After: SECONDS`.
    TooManyRequests(u64),
}

/// Which of Google's refusals are on (all by default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusals {
    /// MKCALENDAR and MKCOL → 403.
    pub mkcalendar: bool,
    /// PUT with `If-None-Match` → 412.
    pub if_none_match: bool,
    /// PUT of a VTODO or VJOURNAL → 400.
    pub tasks: bool,
    /// PUT bodies rewritten by [`google_rewrite`].
    pub rewrite: bool,
}

impl Default for Refusals {
    fn default() -> Refusals {
        Refusals {
            mkcalendar: true,
            if_none_match: true,
            tasks: true,
            rewrite: true,
        }
    }
}

/// One request as the front saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub if_none_match: Option<String>,
    pub if_match: Option<String>,
    /// The bearer token sent, if any.
    pub token: Option<String>,
    pub body: Vec<u8>,
    /// The status answered.
    pub status: u16,
}

impl Logged {
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct State {
    upstream: String,
    upstream_auth: String,
    tokens: Mutex<HashSet<String>>,
    limits: Mutex<VecDeque<Limit>>,
    refusals: Mutex<Refusals>,
    log: Mutex<Vec<Logged>>,
    /// `(method, n)`: the n-th next request of that method (1 = the next) is applied upstream
    /// and its answer held until the front is dropped: a client killed meanwhile never learns
    /// that its write happened.
    stall: Mutex<Option<(String, usize)>>,
    stalled: AtomicBool,
    shutdown: AtomicBool,
    /// Google's URL layout, when on ([`GoogleFront::google_layout`]).
    layout: Mutex<Option<GoogleLayout>>,
    /// Bearer tokens are checked by a front before this one ([`GoogleFront::behind_bearer_check`]).
    bearer_checked_before: AtomicBool,
}

/// See the module documentation.
pub struct GoogleFront {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl GoogleFront {
    /// Starts a front for `server`, accepting the bearer token `token`.
    pub fn start(server: &Radicale, token: &str) -> GoogleFront {
        let (upstream, _) = split_url(&server.url());
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind front port");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("front address");
        let state = Arc::new(State {
            upstream,
            upstream_auth: basic_auth(Radicale::USER, Radicale::PASSWORD),
            tokens: Mutex::new(HashSet::from([token.to_owned()])),
            limits: Mutex::new(VecDeque::new()),
            refusals: Mutex::new(Refusals::default()),
            log: Mutex::new(Vec::new()),
            stall: Mutex::new(None),
            stalled: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            layout: Mutex::new(None),
            bearer_checked_before: AtomicBool::new(false),
        });
        let accept = {
            let state = Arc::clone(&state);
            thread::spawn(move || accept_loop(&listener, &state))
        };
        GoogleFront {
            addr,
            state,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The front's URL for a URL on the server behind it.
    pub fn proxied(&self, upstream_url: &str) -> String {
        let (_, path) = split_url(upstream_url);
        format!("http://{}{path}", self.addr)
    }

    pub fn allow_token(&self, token: &str) {
        lock(&self.state.tokens).insert(token.to_owned());
    }

    pub fn revoke_token(&self, token: &str) {
        lock(&self.state.tokens).remove(token);
    }

    /// The next requests (one per entry, whatever they are) get these answers.
    pub fn rate_limit(&self, limits: Vec<Limit>) {
        lock(&self.state.limits).extend(limits);
    }

    /// Rate-limit answers queued and not given yet.
    pub fn limits_left(&self) -> usize {
        lock(&self.state.limits).len()
    }

    /// The `n`-th next request of `method` is applied upstream and its answer held until the
    /// front is dropped (see [`GoogleFront::stalled`]).
    pub fn stall_after_forward(&self, method: &str, n: usize) {
        *lock(&self.state.stall) = Some((method.to_owned(), n.max(1)));
    }

    /// Whether a request chosen by [`GoogleFront::stall_after_forward`] has been applied.
    pub fn stalled(&self) -> bool {
        self.state.stalled.load(Ordering::SeqCst)
    }

    /// From now on the front serves Google's URL layout (see [`GoogleLayout`]) instead of
    /// Radicale's: requests are mapped onto Radicale's paths, hrefs in bodies and
    /// `Location`/`Content-Location` headers both ways. The log keeps Google's paths.
    pub fn google_layout(&self, layout: GoogleLayout) {
        *lock(&self.state.layout) = Some(layout);
    }

    /// The front's URL for a path of Google's layout (`/caldav/v2/`).
    pub fn google_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Another front checks bearer tokens before this one and forwards without them
    /// (`OAuthEmulation::start_front` with this front as its backend): requests without a
    /// token are let through. A token sent is still checked.
    pub fn behind_bearer_check(&self) {
        self.state
            .bearer_checked_before
            .store(true, Ordering::SeqCst);
    }

    pub fn set_refusals(&self, refusals: Refusals) {
        *lock(&self.state.refusals) = refusals;
    }

    pub fn log(&self) -> Vec<Logged> {
        lock(&self.state.log).clone()
    }

    pub fn with_method(&self, method: &str) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|l| l.method == method)
            .collect()
    }

    /// `METHOD path -> status`, one request per line, for assertion messages.
    pub fn log_text(&self) -> String {
        self.log()
            .iter()
            .map(|l| format!("{} {} -> {}\n", l.method, l.path, l.status))
            .collect()
    }

    pub fn reset_log(&self) {
        lock(&self.state.log).clear();
    }
}

impl Drop for GoogleFront {
    fn drop(&mut self) {
        self.state.shutdown.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, state: &Arc<State>) {
    while !state.shutdown.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let state = Arc::clone(state);
                thread::spawn(move || serve(&state, stream));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => break,
        }
    }
}

fn serve(state: &State, stream: TcpStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader);
    let mut writer = stream;
    while !state.shutdown.load(Ordering::SeqCst) {
        let Ok(Some((start, headers))) = read_head(&mut reader) else {
            break;
        };
        let mut parts = start.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            break;
        };
        if header(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
            && writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            break;
        }
        let Ok(body) = read_body(&mut reader, &headers, false) else {
            break;
        };
        let response = answer(state, method, target, &headers, body);
        let keep = !header(&headers, "connection").is_some_and(|v| v.contains("close"));
        if write_response(&mut writer, method, &response, keep).is_err() || !keep {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

fn answer(
    state: &State,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> HttpResponse {
    let token = header(headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let response = decide(state, method, target, headers, &body, token.as_deref());
    lock(&state.log).push(Logged {
        method: method.to_owned(),
        path: target.to_owned(),
        if_none_match: header(headers, "if-none-match").map(str::to_owned),
        if_match: header(headers, "if-match").map(str::to_owned),
        token,
        body,
        status: response.status,
    });
    response
}

fn plain(status: u16, extra: Vec<(String, String)>, body: &str) -> HttpResponse {
    HttpResponse {
        status,
        reason: reason_phrase(status).to_owned(),
        headers: extra,
        body: body.as_bytes().to_vec(),
    }
}

fn decide(
    state: &State,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
    token: Option<&str>,
) -> HttpResponse {
    let authorized = match token {
        Some(t) => lock(&state.tokens).contains(t),
        None => state.bearer_checked_before.load(Ordering::SeqCst),
    };
    if !authorized {
        let challenge = (
            "WWW-Authenticate".to_owned(),
            "Bearer realm=\"emulation\"".to_owned(),
        );
        return plain(
            401,
            vec![challenge],
            "Request had invalid authentication credentials.",
        );
    }
    if let Some(limit) = lock(&state.limits).pop_front() {
        return match limit {
            Limit::RateLimitExceeded => plain(
                403,
                vec![("Content-Type".into(), "application/json".into())],
                RATE_LIMIT_BODY,
            ),
            Limit::TooManyRequests(secs) => plain(
                429,
                vec![("Retry-After".into(), secs.to_string())],
                "Too Many Requests",
            ),
        };
    }
    let refusals = lock(&state.refusals).clone();
    if refusals.mkcalendar && matches!(method, "MKCALENDAR" | "MKCOL") {
        return plain(
            403,
            Vec::new(),
            "Creating calendars is not supported over CalDAV.",
        );
    }
    let mut body = body.to_vec();
    if method == "PUT" {
        if refusals.if_none_match && header(headers, "if-none-match").is_some() {
            return plain(412, Vec::new(), "");
        }
        let text = String::from_utf8_lossy(&body);
        if refusals.tasks && (text.contains("BEGIN:VTODO") || text.contains("BEGIN:VJOURNAL")) {
            return plain(400, Vec::new(), "Only VEVENT components are supported.");
        }
        if refusals.rewrite {
            body = google_rewrite(&body);
        }
    }
    let mut forwarded: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| {
            ![
                "authorization",
                "connection",
                "content-length",
                "accept-encoding",
                "keep-alive",
            ]
            .iter()
            .any(|h| n.eq_ignore_ascii_case(h))
        })
        .cloned()
        .collect();
    forwarded.push(("Authorization".into(), state.upstream_auth.clone()));
    forwarded.push(("Content-Length".into(), body.len().to_string()));
    forwarded.push(("Connection".into(), "close".into()));
    let stall = {
        let mut stall = lock(&state.stall);
        match stall.as_mut() {
            Some((m, n)) if m == method => {
                *n -= 1;
                let now = *n == 0;
                if now {
                    *stall = None;
                }
                now
            }
            _ => false,
        }
    };
    let layout = lock(&state.layout).clone();
    let upstream_target = match &layout {
        Some(layout) => {
            if method == "REPORT" {
                body = layout.request_body(&body);
                if let Some(length) = forwarded
                    .iter_mut()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                {
                    length.1 = body.len().to_string();
                }
            }
            layout.to_radicale(target)
        }
        None => target.to_owned(),
    };
    let response = match forward(&state.upstream, method, &upstream_target, &forwarded, &body) {
        Ok(response) => match &layout {
            Some(layout) => layout.response(response, target),
            None => response,
        },
        Err(e) => plain(502, Vec::new(), &format!("emulation: upstream failed: {e}")),
    };
    if stall {
        state.stalled.store(true, Ordering::SeqCst);
        while !state.shutdown.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(10));
        }
    }
    response
}

fn forward(
    upstream: &str,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    let stream = TcpStream::connect_timeout(&resolve(upstream)?, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    write_request(&mut writer, method, target, headers, body)?;
    read_response(&mut BufReader::new(stream), method)
}

fn write_response(
    w: &mut TcpStream,
    method: &str,
    resp: &HttpResponse,
    keep_alive: bool,
) -> io::Result<()> {
    let no_body = method == "HEAD" || resp.status == 204 || resp.status == 304;
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, resp.reason);
    for (n, v) in &resp.headers {
        let hop = [
            "connection",
            "content-length",
            "transfer-encoding",
            "keep-alive",
        ]
        .iter()
        .any(|h| n.eq_ignore_ascii_case(h));
        if !hop {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    if !no_body {
        head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    head.push_str(match keep_alive {
        true => "Connection: keep-alive\r\n\r\n",
        false => "Connection: close\r\n\r\n",
    });
    let mut buf = head.into_bytes();
    if !no_body {
        buf.extend_from_slice(&resp.body);
    }
    w.write_all(&buf)?;
    w.flush()
}

/// What the emulation stores for what it was sent, the way Google re-serializes: lines
/// unfolded and folded again at 60 octets with a tab, LF line ends become CRLF, the
/// properties of each component reordered (reversed, BEGIN/END and VERSION kept in place),
/// `PRODID` replaced by Google's, `REV` restamped in a vCard, `TYPE=INTERNET` added to a
/// vCard's `EMAIL` that lacks it, enumerated parameter values upper-cased
/// (`TYPE=home` → `TYPE=HOME`), and `SEQUENCE:0` and `CLASS:PUBLIC` added to an
/// event that lacks them. None of this changes what the item means.
pub fn google_rewrite(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes).replace("\r\n", "\n");
    // Unfold.
    let mut lines: Vec<String> = Vec::new();
    for line in text.split('\n') {
        match line.strip_prefix([' ', '\t']) {
            Some(rest) if !lines.is_empty() => {
                if let Some(last) = lines.last_mut() {
                    last.push_str(rest);
                }
            }
            _ if line.is_empty() => {}
            _ => lines.push(line.to_owned()),
        }
    }
    // Each component's own properties, reversed, with additions.
    fn emit(lines: &[String], at: &mut usize, out: &mut Vec<String>) {
        let begin = lines[*at].clone();
        let name = begin["BEGIN:".len()..].to_ascii_uppercase();
        out.push(begin);
        *at += 1;
        let mut props = Vec::new();
        let mut children = Vec::new();
        while *at < lines.len() {
            let line = &lines[*at];
            let upper = line.to_ascii_uppercase();
            if upper.starts_with("END:") {
                *at += 1;
                break;
            }
            if upper.starts_with("BEGIN:") {
                let mut child = Vec::new();
                emit(lines, at, &mut child);
                children.push(child);
                continue;
            }
            *at += 1;
            let key = upper.split([':', ';']).next().unwrap_or("").to_owned();
            match key.as_str() {
                "PRODID" => continue,
                "REV" if name == "VCARD" => continue,
                // Google writes the vCard 3.0 default type of every address.
                "EMAIL" if name == "VCARD" && !upper.contains("TYPE=INTERNET") => props.push(
                    upper_enumerated(&line.replacen("EMAIL", "EMAIL;TYPE=INTERNET", 1)),
                ),
                _ => props.push(upper_enumerated(line)),
            }
        }
        let version = props
            .iter()
            .position(|p| p.to_ascii_uppercase().starts_with("VERSION:"));
        if let Some(i) = version {
            out.push(props.remove(i));
        }
        match name.as_str() {
            "VCALENDAR" => out.push("PRODID:-//Google Inc//Google Calendar 70.9054//EN".into()),
            "VCARD" => {
                out.push("PRODID:-//Google Inc//Google Contacts//EN".into());
                out.push("REV:20261206T000000Z".into());
            }
            "VEVENT" => {
                for (key, line) in [("SEQUENCE", "SEQUENCE:0"), ("CLASS", "CLASS:PUBLIC")] {
                    let has = props
                        .iter()
                        .any(|p| p.to_ascii_uppercase().split([':', ';']).next() == Some(key));
                    if !has {
                        out.push(line.into());
                    }
                }
            }
            _ => {}
        }
        props.reverse();
        out.extend(props);
        for child in children {
            out.extend(child);
        }
        out.push(format!("END:{name}"));
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        if lines[at].to_ascii_uppercase().starts_with("BEGIN:") {
            emit(&lines, &mut at, &mut out);
        } else {
            at += 1;
        }
    }
    let mut result = String::new();
    for line in out {
        result.push_str(&fold(&line, 60));
        result.push_str("\r\n");
    }
    result.into_bytes()
}

/// `TYPE=home` → `TYPE=HOME` in the parameters of a property line (values of enumerated
/// parameters compare without case; Google writes them upper-case).
fn upper_enumerated(line: &str) -> String {
    let Some(colon) = line.find(':') else {
        return line.to_owned();
    };
    let (params, value) = line.split_at(colon);
    let params: Vec<String> = params
        .split(';')
        .map(|p| match p.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("TYPE") => format!("{k}={}", v.to_uppercase()),
            _ => p.to_owned(),
        })
        .collect();
    format!("{}{value}", params.join(";"))
}

/// Folds at `width` octets (continuation lines start with a tab), never inside a UTF-8 sequence.
fn fold(line: &str, width: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    for c in line.chars() {
        if count + c.len_utf8() > width {
            out.push_str("\r\n\t");
            count = 1;
        }
        out.push(c);
        count += c.len_utf8();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Google's URL layout

/// An EMULATION of Google's URL layout, mapped onto Radicale's (`/alice/<collection>/`), for
/// [`GoogleFront::google_layout`].
///
/// What Google does, as far as found (Google's CalDAV developer guide, developers.google.com/
/// workspace/calendar/caldav/v2/guide; vdirsyncer issues #598, #1079, #1056 with debug logs;
/// odysseus-dev/odysseus PR #2531):
/// - the CalDAV root is `https://apidata.googleusercontent.com/caldav/v2/` (vdirsyncer's
///   `google_calendar` starts its discovery with a PROPFIND there);
/// - the principal is `/caldav/v2/<email>/user` (holds no events);
/// - each calendar is `/caldav/v2/<calendar-id>/events/`, its items `.../events/<name>.ics`; the
///   primary calendar's id is the account's email address, others look like
///   `<id>@group.calendar.google.com` or `<id>@import.calendar.google.com`, and clients name a
///   calendar by that id (vdirsyncer #598: `collections = ["me@gmail.com",
///   "foo@import.calendar.google.com"]`); `@` is sent as `%40` in hrefs;
/// - CardDAV: the principal is `/carddav/v1/principals/<email>/`, the one address book
///   `/carddav/v1/principals/<email>/lists/default/`.
///
/// Not found in those sources, so the emulation's choice: the calendar-home-set is
/// `/caldav/v2/<email>/` (its Depth 1 listing names the calendars at their `/events/`
/// addresses, which are not below it), the addressbook-home-set
/// `/carddav/v1/principals/<email>/lists/`.
///
/// What it does not reproduce: calendars shared with the account but not selected in
/// calendar.google.com/calendar/syncselect (Google hides them; here every Radicale calendar of
/// alice is listed), Google's own properties (`calendar-color` in its namespace, `getctag`
/// values), the `/.well-known/` redirects, hosts (the front serves both trees on one port),
/// address books other than `default` (any other Radicale collection appears under `lists/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoogleLayout {
    /// The account's email address: the primary calendar's id and the principal's name.
    pub email: String,
    /// The Radicale collection of alice that is the `default` address book.
    pub address_book: String,
    /// Hrefs in answers with a bare `@` (`/caldav/v2/me@example.com/events/`) instead of `%40`
    /// (both are valid in a path; which one Google writes was not found, so both are tested).
    pub bare_at: bool,
}

/// Which of Google's trees a request is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tree {
    Cal,
    Card,
}

const CAL_ROOT: &str = "/caldav/v2/";
const CARD_ROOT: &str = "/carddav/v1/principals/";

/// `@` → `%40`, the way Google writes an id in an href.
fn encode_id(id: &str) -> String {
    id.replace('@', "%40")
}

/// `%40` → `@`.
fn decode_id(id: &str) -> String {
    id.replace("%40", "@")
}

impl GoogleLayout {
    fn user_root() -> String {
        format!("/{}/", Radicale::USER)
    }

    fn tree_of(path: &str) -> Tree {
        match path.starts_with("/carddav/") {
            true => Tree::Card,
            false => Tree::Cal,
        }
    }

    fn principal(&self, tree: Tree) -> String {
        match tree {
            Tree::Cal => format!("{CAL_ROOT}{}/user/", encode_id(&self.email)),
            Tree::Card => format!("{CARD_ROOT}{}/", encode_id(&self.email)),
        }
    }

    fn home(&self, tree: Tree) -> String {
        match tree {
            Tree::Cal => format!("{CAL_ROOT}{}/", encode_id(&self.email)),
            Tree::Card => format!("{CARD_ROOT}{}/lists/", encode_id(&self.email)),
        }
    }

    /// A Google path (with or without query) → Radicale's. Paths outside the layout are kept.
    fn to_radicale(&self, target: &str) -> String {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, format!("?{q}")),
            None => (target, String::new()),
        };
        let user = Self::user_root();
        let mapped = if let Some(rest) = path.strip_prefix(CAL_ROOT.trim_end_matches('/')) {
            let rest = rest.trim_start_matches('/');
            let mut parts = rest.splitn(3, '/');
            match (parts.next(), parts.next(), parts.next()) {
                (None | Some(""), _, _) => "/".to_owned(),
                (Some(_), None | Some("") | Some("user"), None | Some("")) => user,
                (Some(id), Some("events"), rest) => format!("{user}{id}/{}", rest.unwrap_or("")),
                _ => path.to_owned(),
            }
        } else if let Some(rest) = path.strip_prefix(CARD_ROOT.trim_end_matches('/')) {
            let rest = rest.trim_start_matches('/');
            let mut parts = rest.splitn(4, '/');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (None | Some(""), _, _, _) => "/".to_owned(),
                (Some(_), None | Some(""), _, _) => user,
                (Some(_), Some("lists"), None | Some(""), _) => user,
                (Some(_), Some("lists"), Some("default"), rest) => {
                    format!("{user}{}/{}", self.address_book, rest.unwrap_or(""))
                }
                (Some(_), Some("lists"), Some(other), rest) => {
                    format!("{user}{other}/{}", rest.unwrap_or(""))
                }
                _ => path.to_owned(),
            }
        } else {
            path.to_owned()
        };
        format!("{mapped}{query}")
    }

    /// A Radicale href (path or absolute URL) → Google's, in `tree`. `/alice/` is the principal
    /// or the home set: `as_home` says which.
    fn to_google(&self, href: &str, tree: Tree, as_home: bool) -> String {
        let google = self.to_google_encoded(href, tree, as_home);
        match self.bare_at {
            true => decode_id(&google),
            false => google,
        }
    }

    fn to_google_encoded(&self, href: &str, tree: Tree, as_home: bool) -> String {
        let path = match href.find("://") {
            Some(scheme) => match href[scheme + 3..].find('/') {
                Some(slash) => &href[scheme + 3 + slash..],
                None => "/",
            },
            None => href,
        };
        let user = Self::user_root();
        if path == "/" {
            return match tree {
                Tree::Cal => CAL_ROOT.to_owned(),
                Tree::Card => CARD_ROOT.to_owned(),
            };
        }
        if path == user || path == user.trim_end_matches('/') {
            return match as_home {
                true => self.home(tree),
                false => self.principal(tree),
            };
        }
        let Some(rest) = path.strip_prefix(&user) else {
            return href.to_owned();
        };
        let (collection, item) = rest.split_once('/').unwrap_or((rest, ""));
        match tree {
            Tree::Cal => format!("{CAL_ROOT}{}/events/{item}", encode_id(collection)),
            Tree::Card => {
                let list = match decode_id(collection) == self.address_book {
                    true => "default".to_owned(),
                    false => collection.to_owned(),
                };
                format!("{CARD_ROOT}{}/lists/{list}/{item}", encode_id(&self.email))
            }
        }
    }

    /// Rewrites every `href` element of a multistatus (or request) body with `map`, which is
    /// told the name of the element the href is in (`response`, `calendar-home-set`, ...).
    fn rewrite_hrefs(body: &[u8], map: impl Fn(&str, &str) -> String) -> Vec<u8> {
        let text = String::from_utf8_lossy(body);
        let mut out = String::with_capacity(text.len());
        let mut rest: &str = &text;
        // Names of the open elements, without prefixes.
        let mut open: Vec<String> = Vec::new();
        while let Some(lt) = rest.find('<') {
            out.push_str(&rest[..lt]);
            rest = &rest[lt..];
            let Some(gt) = rest.find('>') else {
                break;
            };
            let tag = &rest[..=gt];
            out.push_str(tag);
            rest = &rest[gt + 1..];
            let inner = tag.trim_start_matches('<').trim_end_matches('>');
            if inner.starts_with('?') || inner.starts_with('!') {
                continue;
            }
            if let Some(closing) = inner.strip_prefix('/') {
                let _ = closing;
                open.pop();
                continue;
            }
            if inner.ends_with('/') {
                continue;
            }
            let name = inner.split_whitespace().next().unwrap_or("");
            let local = name.rsplit(':').next().unwrap_or(name).to_owned();
            if local == "href" {
                let end = rest.find('<').unwrap_or(rest.len());
                let parent = open.last().map_or("", String::as_str);
                out.push_str(&map(parent, rest[..end].trim()));
                rest = &rest[end..];
            }
            open.push(local);
        }
        out.push_str(rest);
        out.into_bytes()
    }

    /// Radicale's answer to a request for `google_path`, in Google's layout.
    fn response(&self, mut response: HttpResponse, google_path: &str) -> HttpResponse {
        let tree = Self::tree_of(google_path);
        for (name, value) in &mut response.headers {
            if name.eq_ignore_ascii_case("location")
                || name.eq_ignore_ascii_case("content-location")
            {
                *value = self.to_google(value, tree, false);
            }
        }
        if response.status == 207 || response.body.starts_with(b"<?xml") {
            response.body = self.response_body(&response.body, google_path);
        }
        response
    }

    /// A request body's hrefs (a multiget's), Google → Radicale.
    fn request_body(&self, body: &[u8]) -> Vec<u8> {
        Self::rewrite_hrefs(body, |_, href| self.to_radicale(href))
    }

    /// A response body's hrefs, Radicale → Google, for a request to `google_path`.
    fn response_body(&self, body: &[u8], google_path: &str) -> Vec<u8> {
        let tree = Self::tree_of(google_path);
        let asked_home = {
            let path = google_path.split('?').next().unwrap_or("");
            let with_slash = format!("{}/", path.trim_end_matches('/'));
            with_slash == self.home(tree) || with_slash == decode_id(&self.home(tree))
        };
        Self::rewrite_hrefs(body, |parent, href| {
            let as_home = match parent {
                "calendar-home-set" | "addressbook-home-set" => true,
                "response" => asked_home,
                _ => false,
            };
            self.to_google(href, tree, as_home)
        })
    }
}
