//! `FaultProxy`: an HTTP/1.1 reverse proxy on 127.0.0.1 in front of one upstream server that
//! records every request and injects faults chosen by the test. It can also hold a chosen
//! request until the test releases it ([`FaultProxy::hold`]), to kill a client at that point.
//!
//! The client side supports keep-alive; every request goes to the upstream on a fresh
//! connection with `Connection: close`, the whole response is read (de-chunked) and returned
//! with a correct `Content-Length`. One thread per client connection; dropping the proxy stops
//! all of them (shutdown flag, a connection to itself to wake `accept`, and `shutdown()` on
//! every open socket).

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufReader, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::http::{
    HttpResponse, IO_TIMEOUT, header, read_body, read_head, read_response, reason_phrase, resolve,
    split_url, write_request,
};

/// What to do to a matching request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status, extra headers and body, without contacting the upstream (so a
    /// faulted PUT is NOT applied). Example: `Fault::Status(503, vec![("Retry-After".into(),
    /// "1".into())], vec![])`, or the shorthands [`Fault::status`] and [`Fault::unavailable`].
    Status(u16, Vec<(String, String)>, Vec<u8>),
    /// Read the request, then close the connection without an answer and without forwarding
    /// (a FIN, not a TCP RST: std cannot set SO_LINGER).
    Reset,
    /// Forward the request (the upstream applies it), then close without an answer: the
    /// "lost response" case.
    ResetAfterForward,
    /// Forward, then send the head with the full `Content-Length` but only the first
    /// `min(n, len - 1)` bytes of the body, and close.
    Truncate(usize),
    /// Forward, keep status and headers, replace the body (and drop `Content-Encoding`).
    GarbageBody(Vec<u8>),
    /// Forward, remove this response header (case-insensitive), e.g. `ETag`.
    StripHeader(String),
    /// Forward, and from a 207 body remove every `<response>` element (any namespace prefix)
    /// whose `<href>` contains this substring (as sent by the server, i.e. percent-encoded).
    /// `Accept-Encoding` is removed from the forwarded request so the body is plain text.
    DropHrefsFromMultiget(String),
    /// Sleep this many milliseconds before handling (combines with the other faults).
    Delay(u64),
    /// Forward (the upstream applies the request), then answer with this bare status instead
    /// of the upstream's answer.
    StatusAfterForward(u16),
    /// Forward, and in a 207 body replace `from` by `to` inside every `<response>` whose first
    /// `<href>` contains `href` (e.g. `200 OK` → `500 Internal Server Error` for a failed
    /// propstat, or `getetag` → `getetagx` to take the ETag out). Plain answers.
    EditResponses {
        href: String,
        from: String,
        to: String,
    },
    /// Forward, then cut a 207 listing short the RFC 5323 way: drop every `<response>` whose
    /// first `<href>` contains this substring and add a 507 response for the request URI with
    /// `DAV:number-of-matches-within-limits`. Plain answers.
    CutShort(String),
    /// Play a Latin-1 server whose item hrefs spell `é` as `%E9`: in answers `%C3%A9` becomes
    /// `%E9`, in requests (target and body) `%E9` becomes `%C3%A9` again before forwarding.
    /// Plain answers.
    Latin1Hrefs,
    /// Forward, and replace every occurrence of the first text in the answer's body by the
    /// second (`Accept-Encoding` is removed from the forwarded request so the body is plain).
    ReplaceInBody(String, String),
    /// Like a server locking the collection for each write (Xandikos' git index lock): forward
    /// and hold the answer this many milliseconds; a request of the same method arriving
    /// meanwhile is answered 423 Locked without being forwarded.
    LockedWhileBusy(u64),
}

impl Fault {
    /// A bare status with an empty body.
    pub fn status(code: u16) -> Fault {
        Fault::Status(code, Vec::new(), Vec::new())
    }

    /// 503 with `Retry-After: SECONDS`.
    pub fn unavailable(retry_after_secs: u64) -> Fault {
        Fault::Status(
            503,
            vec![("Retry-After".into(), retry_after_secs.to_string())],
            b"injected 503\n".to_vec(),
        )
    }
}

/// A fault with a request filter and a count. All filters must match; every matching rule with
/// applications left is applied to a request (one application each), in list order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultRule {
    /// Exact method (e.g. `"PUT"`), any if `None`.
    pub method: Option<String>,
    /// Substring of the request target (path and query), any if `None`.
    pub path_contains: Option<String>,
    /// Substring of the request body, any if `None`.
    pub body_contains: Option<String>,
    /// Applications left; `None` = always.
    pub remaining: Option<usize>,
    pub fault: Fault,
}

impl FaultRule {
    /// Applies to the next matching request only.
    pub fn once(fault: Fault) -> FaultRule {
        FaultRule::times(fault, 1)
    }

    /// Applies to the next `n` matching requests.
    pub fn times(fault: Fault, n: usize) -> FaultRule {
        FaultRule {
            method: None,
            path_contains: None,
            body_contains: None,
            remaining: Some(n),
            fault,
        }
    }

    /// Applies to every matching request.
    pub fn always(fault: Fault) -> FaultRule {
        FaultRule {
            method: None,
            path_contains: None,
            body_contains: None,
            remaining: None,
            fault,
        }
    }

    pub fn method(mut self, method: &str) -> FaultRule {
        self.method = Some(method.to_string());
        self
    }

    pub fn path(mut self, substring: &str) -> FaultRule {
        self.path_contains = Some(substring.to_string());
        self
    }

    /// Only requests whose body contains `substring` (e.g. `calendar-multiget`).
    pub fn body(mut self, substring: &str) -> FaultRule {
        self.body_contains = Some(substring.to_string());
        self
    }

    fn matches(&self, method: &str, target: &str, body: &[u8]) -> bool {
        self.remaining != Some(0)
            && self
                .body_contains
                .as_deref()
                .is_none_or(|b| String::from_utf8_lossy(body).contains(b))
            && self.method.as_deref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| target.contains(p))
    }
}

/// One request as the proxy received it.
#[derive(Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// Request target: path and query, as sent.
    pub path: String,
    /// All request headers, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Status sent to the client; `None` if the connection was closed without an answer.
    pub status: Option<u16>,
    /// Faults applied to this request.
    pub faults: Vec<Fault>,
    /// The body of the answer as sent to the client (compressed if the upstream compressed
    /// it; see [`FaultProxy::plain_answers`]).
    pub answer: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
    pub fn has_auth(&self) -> bool {
        self.header("authorization").is_some()
    }
    pub fn if_match(&self) -> Option<&str> {
        self.header("if-match")
    }
    pub fn if_none_match(&self) -> Option<&str> {
        self.header("if-none-match")
    }
    pub fn depth(&self) -> Option<&str> {
        self.header("depth")
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn answer_text(&self) -> String {
        String::from_utf8_lossy(&self.answer).into_owned()
    }
}

impl fmt::Debug for Recorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> ", self.method, self.path)?;
        match self.status {
            Some(s) => write!(f, "{s}")?,
            None => write!(f, "(no answer)")?,
        }
        for (name, value) in [
            ("If-Match", self.if_match()),
            ("If-None-Match", self.if_none_match()),
            ("Depth", self.depth()),
        ] {
            if let Some(v) = value {
                write!(f, " [{name}: {v}]")?;
            }
        }
        if self.has_auth() {
            write!(f, " [auth]")?;
        }
        if !self.faults.is_empty() {
            write!(f, " faults={:?}", self.faults)?;
        }
        if !self.body.is_empty() {
            write!(f, " body={}B", self.body.len())?;
        }
        Ok(())
    }
}

struct Shared {
    shutdown: AtomicBool,
    log: Mutex<Vec<Recorded>>,
    faults: Mutex<Vec<FaultRule>>,
    sockets: Mutex<HashMap<u64, TcpStream>>,
    next_socket: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Ask the upstream for uncompressed answers (no `Accept-Encoding`).
    plain: AtomicBool,
    /// Methods with a request held by [`Fault::LockedWhileBusy`] right now.
    busy: Mutex<Vec<String>>,
    /// Requests being handled (read, not yet answered or dropped).
    in_flight: AtomicU64,
    /// Requests being worked on, counted with those of other proxies sharing the gauge.
    gauge: Arc<Gauge>,
    /// See [`FaultProxy::hold`].
    hold: Mutex<HoldState>,
    /// Signalled when a request is held and when the test releases it.
    hold_changed: Condvar,
}

/// What happens to a request held by [`FaultProxy::hold`] once the test releases it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Forward it: the upstream applies it, whether or not the client is still there to read
    /// the answer (after a `kill -9`: the "applied, answer lost" case).
    Forward,
    /// Close the client connection without forwarding: the request never reaches the upstream.
    Drop,
}

/// Names a hold armed by [`FaultProxy::hold`], for [`FaultProxy::held`] and
/// [`FaultProxy::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hold(u64);

/// One armed hold.
struct Armed {
    id: Hold,
    /// Methods that count (any if empty).
    methods: Vec<String>,
    /// A substring of the target that counts (any if `None`).
    path: Option<String>,
    /// Matching requests still let through before the one that is held.
    skip: usize,
    /// `METHOD target` of the request being held, once it arrived.
    held: Option<String>,
    /// The test's decision for the held request.
    release: Option<Release>,
}

/// Every hold armed and not yet released.
#[derive(Default)]
struct HoldState {
    next: u64,
    armed: Vec<Armed>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not make the proxy unusable for the others.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Registers a socket so that drop can shut it down; closes it at once if already stopping.
    fn register(&self, s: &TcpStream) -> Option<u64> {
        let id = self.next_socket.fetch_add(1, Ordering::SeqCst);
        let clone = s.try_clone().ok()?;
        let mut sockets = lock(&self.sockets);
        sockets.insert(id, clone);
        if self.shutdown.load(Ordering::SeqCst) {
            let _ = s.shutdown(Shutdown::Both);
        }
        Some(id)
    }

    fn unregister(&self, id: Option<u64>) {
        if let Some(id) = id {
            lock(&self.sockets).remove(&id);
        }
    }

    fn take_faults(&self, method: &str, target: &str, body: &[u8]) -> Vec<Fault> {
        let mut rules = lock(&self.faults);
        let mut applied = Vec::new();
        for rule in rules.iter_mut() {
            if rule.matches(method, target, body) {
                if let Some(n) = rule.remaining.as_mut() {
                    *n -= 1;
                }
                applied.push(rule.fault.clone());
            }
        }
        applied
    }

    fn record(&self, r: Recorded) {
        lock(&self.log).push(r);
    }

    /// Holds this request if an armed hold waits for it, until the test releases it (or the
    /// proxy stops); returns the test's decision, `None` if not held.
    fn hold_here(&self, method: &str, target: &str) -> Option<Release> {
        let mut holds = lock(&self.hold);
        // The request counts for every armed hold it matches, until one takes it.
        let mut taken = None;
        for armed in holds.armed.iter_mut() {
            let matches = armed.held.is_none()
                && (armed.methods.is_empty() || armed.methods.iter().any(|m| m == method))
                && armed.path.as_deref().is_none_or(|p| target.contains(p));
            if !matches {
                continue;
            }
            if armed.skip > 0 {
                armed.skip -= 1;
                continue;
            }
            taken = Some(armed);
            break;
        }
        let armed = taken?;
        let id = armed.id;
        armed.held = Some(format!("{method} {target}"));
        self.hold_changed.notify_all();
        loop {
            let index = holds.armed.iter().position(|a| a.id == id)?;
            if let Some(release) = holds.armed[index].release {
                holds.armed.remove(index);
                return Some(release);
            }
            if self.shutdown.load(Ordering::SeqCst) {
                return Some(Release::Drop);
            }
            holds = self
                .hold_changed
                .wait_timeout(holds, Duration::from_millis(20))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn sleep(&self, ms: u64) {
        let end = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < end && !self.shutdown.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(5).min(end - Instant::now()));
        }
    }
}

/// Counts the requests that proxies sharing it are working on: from the moment a request was
/// read whole until its answer starts (or it is dropped unanswered), so a client that already
/// read its answer is never counted; and the most at once ([`Gauge::most`]).
#[derive(Debug, Default)]
pub struct Gauge {
    now: AtomicU64,
    most: AtomicU64,
}

impl Gauge {
    /// The most requests that were being worked on at once.
    pub fn most(&self) -> u64 {
        self.most.load(Ordering::SeqCst)
    }

    fn enter(&self) -> Counted<'_> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        Counted {
            gauge: self,
            done: std::cell::Cell::new(false),
        }
    }
}

/// One request counted on a [`Gauge`] until [`Counted::answering`] or drop.
struct Counted<'g> {
    gauge: &'g Gauge,
    done: std::cell::Cell<bool>,
}

impl Counted<'_> {
    /// The answer starts: the request no longer counts.
    fn answering(&self) {
        if !self.done.replace(true) {
            self.gauge.now.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.answering();
    }
}

/// See the module documentation.
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: String,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy for the server at `upstream_url` (only its `host:port` is used).
    pub fn start(upstream_url: &str) -> FaultProxy {
        FaultProxy::start_gauged(upstream_url, &Arc::default())
    }

    /// Starts a proxy that counts the requests it works on on `gauge`, which other proxies may
    /// share: several servers' requests in flight at once.
    pub fn start_gauged(upstream_url: &str, gauge: &Arc<Gauge>) -> FaultProxy {
        let (upstream, _) = split_url(upstream_url);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind proxy port");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            shutdown: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            sockets: Mutex::new(HashMap::new()),
            next_socket: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
            plain: AtomicBool::new(false),
            busy: Mutex::new(Vec::new()),
            in_flight: AtomicU64::new(0),
            gauge: Arc::clone(gauge),
            hold: Mutex::new(HoldState::default()),
            hold_changed: Condvar::new(),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            let upstream = upstream.clone();
            thread::Builder::new()
                .name(format!("fault-proxy-{}", addr.port()))
                .spawn(move || accept_loop(listener, shared, upstream))
                .expect("spawn proxy thread")
        };
        FaultProxy {
            addr,
            upstream,
            shared,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The same URL with the upstream's origin replaced by the proxy's:
    /// `http://127.0.0.1:UPSTREAM/alice/x/` → `http://127.0.0.1:PROXY/alice/x/`.
    pub fn proxied(&self, upstream_url: &str) -> String {
        let (authority, path) = split_url(upstream_url);
        assert_eq!(
            authority, self.upstream,
            "{upstream_url} is not on the proxied server"
        );
        format!("http://{}{}", self.addr, path)
    }

    /// From now on, forwards requests without `Accept-Encoding`, so that the recorded answers
    /// ([`Recorded::answer`]) are plain text a test can read.
    pub fn plain_answers(&self) {
        self.shared.plain.store(true, Ordering::SeqCst);
    }

    /// Replaces the fault rules (takes effect for the next request).
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        *lock(&self.shared.faults) = rules;
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// The current rules with their remaining counts (a rule at `Some(0)` has been used up).
    pub fn faults(&self) -> Vec<FaultRule> {
        lock(&self.shared.faults).clone()
    }

    /// Every request received since the start or the last `reset_log`, in arrival order of
    /// completion (a request is logged just before its answer is sent).
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.log).clone()
    }

    /// Every request seen so far, one block each with method, path, status and body: for
    /// assertion messages.
    pub fn log_text(&self) -> String {
        self.requests()
            .iter()
            .map(|r| {
                format!(
                    "--- {} {} -> {:?}\n{}\n",
                    r.method,
                    r.path,
                    r.status,
                    r.body_text()
                )
            })
            .collect()
    }

    /// The logged requests with this method.
    pub fn requests_with_method(&self, method: &str) -> Vec<Recorded> {
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.method == method)
            .cloned()
            .collect()
    }

    pub fn count(&self) -> usize {
        lock(&self.shared.log).len()
    }

    pub fn reset_log(&self) {
        lock(&self.shared.log).clear();
    }

    /// Arms a hold: the `nth` (1 = the next) request from now on whose method is one of
    /// `methods` (any if empty) and whose target contains `path_contains` is stopped before it
    /// reaches the upstream, until [`FaultProxy::release`]. Lets a test kill its client at a
    /// chosen request, deterministically: wait for [`FaultProxy::held`], kill, release. Several
    /// holds may be armed at once; a request is stopped by the first one that takes it.
    pub fn hold(&self, methods: &[&str], path_contains: Option<&str>, nth: usize) -> Hold {
        assert!(nth >= 1, "hold: nth counts from 1");
        let mut holds = lock(&self.shared.hold);
        holds.next += 1;
        let id = Hold(holds.next);
        holds.armed.push(Armed {
            id,
            methods: methods.iter().map(|m| m.to_string()).collect(),
            path: path_contains.map(str::to_owned),
            skip: nth - 1,
            held: None,
            release: None,
        });
        id
    }

    /// `METHOD target` of the request `hold` stops, once it is held.
    pub fn held(&self, hold: Hold) -> Option<String> {
        lock(&self.shared.hold)
            .armed
            .iter()
            .find(|a| a.id == hold)
            .and_then(|a| a.held.clone())
    }

    /// Lets the request `hold` stops go on as `how` says, or disarms it if none came yet.
    pub fn release(&self, hold: Hold, how: Release) {
        let mut holds = lock(&self.shared.hold);
        if let Some(index) = holds.armed.iter().position(|a| a.id == hold) {
            if holds.armed[index].held.is_some() {
                holds.armed[index].release = Some(how);
            } else {
                holds.armed.remove(index);
            }
        }
        self.shared.hold_changed.notify_all();
    }

    /// Waits until no request is being handled (a released request forwarded, the requests a
    /// killed client left in flight answered), at most `timeout`; false if still busy then.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while self.shared.in_flight.load(Ordering::SeqCst) > 0 {
            if Instant::now() > end {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        for s in lock(&self.shared.sockets).values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let threads: Vec<_> = lock(&self.shared.threads).drain(..).collect();
        for h in threads {
            let _ = h.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, upstream: String) {
    for stream in listener.incoming() {
        if shared.shutdown.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let conn_shared = Arc::clone(&shared);
        let upstream = upstream.clone();
        let handle = thread::Builder::new()
            .name("fault-proxy-conn".into())
            .spawn(move || serve_client(&conn_shared, &upstream, stream));
        if let Ok(handle) = handle {
            let mut threads = lock(&shared.threads);
            threads.retain(|h| !h.is_finished());
            threads.push(handle);
        }
    }
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
];

fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    keep_alive: bool,
}

fn serve_client(shared: &Shared, upstream: &str, client: TcpStream) {
    let id = shared.register(&client);
    let _ = client.set_read_timeout(Some(IO_TIMEOUT));
    let _ = client.set_write_timeout(Some(IO_TIMEOUT));
    let _ = client.set_nodelay(true);
    if let Ok(reader) = client.try_clone() {
        let mut reader = BufReader::new(reader);
        let mut writer = client;
        while !shared.shutdown.load(Ordering::SeqCst) {
            let Ok(Some(req)) = read_request(&mut reader, &mut writer) else {
                break;
            };
            shared.in_flight.fetch_add(1, Ordering::SeqCst);
            let counted = shared.gauge.enter();
            let outcome = handle(shared, upstream, req, &mut writer, &counted);
            drop(counted);
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            match outcome {
                Ok(true) => continue,
                _ => break,
            }
        }
        let _ = writer.shutdown(Shutdown::Both);
    }
    shared.unregister(id);
}

fn read_request(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
) -> io::Result<Option<Request>> {
    let Some((start, headers)) = read_head(reader)? else {
        return Ok(None);
    };
    let mut parts = start.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad request line {start:?}"),
        ));
    };
    if header(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body = read_body(reader, &headers, false)?;
    let connection = header(&headers, "connection")
        .unwrap_or("")
        .to_ascii_lowercase();
    let keep_alive = if version == "HTTP/1.0" {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    Ok(Some(Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body,
        keep_alive,
    }))
}

/// Handles one request; `Ok(true)` if the client connection stays open.
fn handle(
    shared: &Shared,
    upstream: &str,
    mut req: Request,
    client: &mut TcpStream,
    counted: &Counted<'_>,
) -> io::Result<bool> {
    let faults = shared.take_faults(&req.method, &req.target, &req.body);
    let mut record = Recorded {
        method: req.method.clone(),
        path: req.target.clone(),
        headers: req.headers.clone(),
        body: req.body.clone(),
        status: None,
        faults: faults.clone(),
        answer: Vec::new(),
    };
    for f in &faults {
        if let Fault::Delay(ms) = f {
            shared.sleep(*ms);
        }
    }
    if shared.hold_here(&req.method, &req.target) == Some(Release::Drop) {
        shared.record(record);
        let _ = client.shutdown(Shutdown::Both);
        return Ok(false);
    }
    if shared.shutdown.load(Ordering::SeqCst) {
        return Ok(false);
    }
    // Faults that stop the request before the upstream.
    for f in &faults {
        match f {
            Fault::Status(code, headers, body) => {
                let resp = HttpResponse {
                    status: *code,
                    reason: reason_phrase(*code).to_string(),
                    headers: headers.clone(),
                    body: body.clone(),
                };
                record.status = Some(*code);
                shared.record(record);
                counted.answering();
                write_response(client, &req.method, &resp, req.keep_alive, None)?;
                return Ok(req.keep_alive);
            }
            Fault::Reset => {
                shared.record(record);
                let _ = client.shutdown(Shutdown::Both);
                return Ok(false);
            }
            _ => {}
        }
    }
    let hold = faults.iter().find_map(|f| match f {
        Fault::LockedWhileBusy(ms) => Some(*ms),
        _ => None,
    });
    if hold.is_some() {
        let mut busy = lock(&shared.busy);
        if busy.contains(&req.method) {
            drop(busy);
            let resp = HttpResponse {
                status: 423,
                reason: reason_phrase(423).to_string(),
                headers: vec![("Content-Type".into(), "text/plain".into())],
                body: b"injected 423: another write holds the lock\n".to_vec(),
            };
            record.status = Some(423);
            shared.record(record);
            counted.answering();
            write_response(client, &req.method, &resp, req.keep_alive, None)?;
            return Ok(req.keep_alive);
        }
        busy.push(req.method.clone());
    }

    let latin1 = faults.contains(&Fault::Latin1Hrefs);
    if latin1 {
        req.target = req.target.replace("%E9", "%C3%A9");
        req.body = String::from_utf8_lossy(&req.body)
            .replace("%E9", "%C3%A9")
            .into_bytes();
    }
    let plain = shared.plain.load(Ordering::SeqCst)
        || faults.iter().any(|f| {
            matches!(
                f,
                Fault::DropHrefsFromMultiget(_)
                    | Fault::EditResponses { .. }
                    | Fault::CutShort(_)
                    | Fault::Latin1Hrefs
                    | Fault::ReplaceInBody(..)
            )
        });
    let forwarded = forward(shared, upstream, &req, plain);
    if let Some(ms) = hold {
        shared.sleep(ms);
        lock(&shared.busy).retain(|m| *m != req.method);
    }
    let mut resp = match forwarded {
        Ok(resp) => resp,
        Err(e) => HttpResponse {
            status: 502,
            reason: "Bad Gateway".into(),
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: format!("fault proxy: upstream {upstream} failed: {e}\n").into_bytes(),
        },
    };

    let mut truncate = None;
    for f in &faults {
        match f {
            Fault::ResetAfterForward => {
                shared.record(record);
                let _ = client.shutdown(Shutdown::Both);
                return Ok(false);
            }
            Fault::Truncate(n) => truncate = Some(*n),
            Fault::GarbageBody(bytes) => {
                resp.body = bytes.clone();
                resp.headers
                    .retain(|(n, _)| !n.eq_ignore_ascii_case("content-encoding"));
            }
            Fault::StripHeader(name) => resp.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name)),
            Fault::ReplaceInBody(from, to) => {
                let text = String::from_utf8_lossy(&resp.body).into_owned();
                resp.body = text.replace(from.as_str(), to).into_bytes();
            }
            Fault::DropHrefsFromMultiget(needle) if resp.status == 207 => {
                let text = String::from_utf8_lossy(&resp.body).into_owned();
                resp.body = drop_responses(&text, needle).into_bytes();
            }
            Fault::StatusAfterForward(code) => {
                resp = HttpResponse {
                    status: *code,
                    reason: reason_phrase(*code).to_string(),
                    headers: Vec::new(),
                    body: Vec::new(),
                };
            }
            Fault::EditResponses { href, from, to } if resp.status == 207 => {
                let text = String::from_utf8_lossy(&resp.body).into_owned();
                resp.body = edit_responses(&text, href, from, to).into_bytes();
            }
            Fault::CutShort(needle) if resp.status == 207 => {
                let text = drop_responses(&String::from_utf8_lossy(&resp.body), needle);
                let path = req.target.split('?').next().unwrap_or("");
                let cut = format!(
                    "<response xmlns=\"DAV:\"><href>{path}</href>\
                     <status>HTTP/1.1 507 Insufficient Storage</status>\
                     <error><number-of-matches-within-limits/></error></response>"
                );
                let at = text.rfind("</").unwrap_or(text.len());
                resp.body = format!("{}{cut}{}", &text[..at], &text[at..]).into_bytes();
            }
            Fault::Latin1Hrefs => {
                resp.body = String::from_utf8_lossy(&resp.body)
                    .replace("%C3%A9", "%E9")
                    .replace("%c3%a9", "%E9")
                    .into_bytes();
            }
            _ => {}
        }
    }
    record.status = Some(resp.status);
    record.answer = resp.body.clone();
    shared.record(record);
    counted.answering();
    write_response(client, &req.method, &resp, req.keep_alive, truncate)?;
    if truncate.is_some() {
        let _ = client.shutdown(Shutdown::Both);
        return Ok(false);
    }
    Ok(req.keep_alive)
}

/// Sends the request to the upstream on a fresh connection and reads the whole response.
fn forward(
    shared: &Shared,
    upstream: &str,
    req: &Request,
    plain_body: bool,
) -> io::Result<HttpResponse> {
    let addr = resolve(upstream)?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    let id = shared.register(&stream);
    let result = (|| {
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let _ = stream.set_nodelay(true);
        let mut headers: Vec<(String, String)> = req
            .headers
            .iter()
            .filter(|(n, _)| !is_hop_by_hop(n))
            .filter(|(n, _)| !(plain_body && n.eq_ignore_ascii_case("accept-encoding")))
            .cloned()
            .collect();
        if !req.body.is_empty() || header(&req.headers, "content-length").is_some() {
            headers.push(("Content-Length".into(), req.body.len().to_string()));
        }
        headers.push(("Connection".into(), "close".into()));
        let mut writer = stream.try_clone()?;
        write_request(&mut writer, &req.method, &req.target, &headers, &req.body)?;
        read_response(&mut BufReader::new(stream.try_clone()?), &req.method)
    })();
    shared.unregister(id);
    result
}

/// Writes a response with a recomputed `Content-Length` (none for 1xx/204/304; the upstream's
/// for HEAD). With `truncate`, only part of the body is written.
fn write_response(
    w: &mut TcpStream,
    method: &str,
    resp: &HttpResponse,
    keep_alive: bool,
    truncate: Option<usize>,
) -> io::Result<()> {
    let is_head = method.eq_ignore_ascii_case("HEAD");
    let no_body = is_head || resp.status < 200 || resp.status == 204 || resp.status == 304;
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, resp.reason);
    for (n, v) in &resp.headers {
        if is_hop_by_hop(n) && !(is_head && n.eq_ignore_ascii_case("content-length")) {
            continue;
        }
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if !no_body {
        head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    let keep = keep_alive && truncate.is_none();
    head.push_str(if keep {
        "Connection: keep-alive\r\n"
    } else {
        "Connection: close\r\n"
    });
    head.push_str("\r\n");
    let mut buf = head.into_bytes();
    if !no_body {
        let n = match truncate {
            Some(n) => n.min(resp.body.len().saturating_sub(1)),
            None => resp.body.len(),
        };
        buf.extend_from_slice(&resp.body[..n]);
    }
    w.write_all(&buf)?;
    w.flush()
}

/// Qualified name of the element whose start tag begins at `xml[i]` (which is `<`), or `None`
/// for end tags, comments, processing instructions and declarations.
fn tag_name_at(xml: &str, i: usize) -> Option<&str> {
    let rest = &xml[i + 1..];
    if rest.starts_with(['/', '?', '!']) {
        return None;
    }
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

fn local_name(qname: &str) -> &str {
    qname.rsplit(':').next().unwrap_or(qname)
}

/// Text content of the first `href` element (any prefix) in `block`.
fn first_href(block: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(off) = block[from..].find('<') {
        let i = from + off;
        if let Some(name) = tag_name_at(block, i)
            && local_name(name) == "href"
        {
            let open_end = i + block[i..].find('>')? + 1;
            let close = open_end + block[open_end..].find('<')?;
            return Some(block[open_end..close].trim());
        }
        from = i + 1;
    }
    None
}

/// In a multistatus body, replaces `from` by `to` inside every `response` element whose first
/// `href` contains `needle`. String surgery, not a parser.
pub fn edit_responses(xml: &str, needle: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut pos = 0;
    for (start, end) in response_blocks(xml) {
        let block = &xml[start..end];
        if first_href(block).is_some_and(|h| h.contains(needle)) {
            out.push_str(&xml[pos..start]);
            out.push_str(&block.replace(from, to));
            pos = end;
        }
    }
    out.push_str(&xml[pos..]);
    out
}

/// The byte ranges of the `response` elements (any namespace prefix) of a multistatus body.
fn response_blocks(xml: &str) -> Vec<(usize, usize)> {
    let mut blocks = Vec::new();
    let mut search = 0;
    while let Some(off) = xml[search..].find('<') {
        let i = search + off;
        search = i + 1;
        let Some(name) = tag_name_at(xml, i) else {
            continue;
        };
        if local_name(name) != "response" {
            continue;
        }
        let close_tag = format!("</{name}");
        let Some(close_off) = xml[i..].find(&close_tag) else {
            break;
        };
        let close_start = i + close_off;
        let Some(gt) = xml[close_start..].find('>') else {
            break;
        };
        let end = close_start + gt + 1;
        blocks.push((i, end));
        search = end;
    }
    blocks
}

/// Removes from a multistatus body every `response` element (any namespace prefix: `d:`,
/// `D:`, `ns0:`, none) whose first `href` contains `needle`. String surgery, not a parser.
pub fn drop_responses(xml: &str, needle: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut pos = 0;
    for (start, end) in response_blocks(xml) {
        if first_href(&xml[start..end]).is_some_and(|h| h.contains(needle)) {
            out.push_str(&xml[pos..start]);
            pos = end;
        }
    }
    out.push_str(&xml[pos..]);
    out
}
