//! [`FeedServer`], a small calendar feed server for the webcal tests: a `std` `TcpListener` on
//! 127.0.0.1 serving one `.ics` feed with `ETag`/`Last-Modified` and 304 answers, optionally
//! re-stamping DTSTAMP, LAST-MODIFIED and SEQUENCE on every request, or failing mid-body. It
//! logs every request it answers, so a test asserts what was asked and what came back.

use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use super::http::{header, read_head};

/// Which validators the server sends (and honours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validators {
    ETag,
    LastModified,
}

/// How the server breaks the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// `Content-Length` of the whole feed, half of it sent, then the connection is closed.
    DroppedMidBody,
    /// No `Content-Length`, half the feed, then the connection is closed (a truncated file).
    Truncated,
    /// `500 Internal Server Error`.
    ServerError,
    /// An HTML page with status 200.
    Garbage,
}

/// One request as the server saw and answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub path: String,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub status: u16,
}

#[derive(Debug)]
pub struct FeedState {
    /// The feed with `{STAMP}` and `{SEQ}` placeholders.
    pub template: String,
    /// Bumped by every change of the template (and, when re-stamping, by every request).
    pub version: u64,
    pub restamp: bool,
    pub validators: Validators,
    pub failure: Option<Failure>,
    pub log: Vec<Logged>,
}

impl FeedState {
    pub fn etag(&self) -> String {
        format!("\"feed-v{}\"", self.version)
    }

    pub fn last_modified(&self) -> String {
        format!("Sat, 05 Dec 2026 10:{:02}:00 GMT", self.version % 60)
    }

    /// The feed as served now: a re-stamping exporter writes the moment of the request into
    /// every DTSTAMP and LAST-MODIFIED and bumps every SEQUENCE; otherwise they stay put.
    pub fn body(&self) -> String {
        let (stamp, seq) = match self.restamp {
            true => (
                format!("20261205T10{:04}Z", self.version % 10_000),
                self.version,
            ),
            false => ("20260101T000000Z".to_owned(), 0),
        };
        self.template
            .replace("{STAMP}", &stamp)
            .replace("{SEQ}", &seq.to_string())
    }
}

/// A feed at `http://127.0.0.1:PORT/holidays.ics`.
pub struct FeedServer {
    port: u16,
    state: Arc<Mutex<FeedState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FeedServer {
    pub fn start(template: &str, validators: Validators) -> FeedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(FeedState {
            template: template.to_owned(),
            version: 1,
            restamp: false,
            validators,
            failure: None,
            log: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopped) = (Arc::clone(&state), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    serve(stream, &shared);
                }
            }
        });
        FeedServer {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/holidays.ics", self.port)
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves `template` from now on, as a new version.
    pub fn set_feed(&self, template: &str) {
        let mut state = self.state();
        state.template = template.to_owned();
        state.version += 1;
    }

    pub fn restamp(&self) {
        self.state().restamp = true;
    }

    pub fn fail(&self, failure: Option<Failure>) {
        self.state().failure = failure;
    }

    /// The requests answered since the last call.
    pub fn take_log(&self) -> Vec<Logged> {
        std::mem::take(&mut self.state().log)
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request on `stream`, then closes the connection.
pub fn serve(mut stream: TcpStream, state: &Mutex<FeedState>) {
    let Ok(Some((start, headers))) = read_head(&mut BufReader::new(&stream)) else {
        return;
    };
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    if state.restamp {
        state.version += 1;
    }
    let path = start.split(' ').nth(1).unwrap_or("").to_owned();
    let if_none_match = header(&headers, "if-none-match").map(str::to_owned);
    let if_modified_since = header(&headers, "if-modified-since").map(str::to_owned);
    let (etag, last_modified) = (state.etag(), state.last_modified());
    let validator = match state.validators {
        Validators::ETag => format!("ETag: {etag}\r\n"),
        Validators::LastModified => format!("Last-Modified: {last_modified}\r\n"),
    };
    let not_modified = match state.validators {
        Validators::ETag => if_none_match.as_deref() == Some(etag.as_str()),
        Validators::LastModified => if_modified_since.as_deref() == Some(last_modified.as_str()),
    };
    let body = state.body();
    let half = &body.as_bytes()[..body.len() / 2];
    let (status, answer): (u16, Vec<u8>) = match (state.failure, not_modified) {
        (Some(Failure::ServerError), _) => (
            500,
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops".to_vec(),
        ),
        (Some(Failure::Garbage), _) => (
            200,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 23\r\n\r\n<html>Moved away</html>"
                .to_vec(),
        ),
        (Some(Failure::DroppedMidBody), _) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/calendar\r\n{validator}Content-Length: {}\r\n\r\n",
                body.len()
            );
            (200, [head.as_bytes(), half].concat())
        }
        (Some(Failure::Truncated), _) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/calendar\r\n{validator}Connection: close\r\n\r\n"
            );
            (200, [head.as_bytes(), half].concat())
        }
        (None, true) => (
            304,
            format!("HTTP/1.1 304 Not Modified\r\n{validator}\r\n").into_bytes(),
        ),
        (None, false) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/calendar; charset=utf-8\r\n{validator}Content-Length: {}\r\n\r\n",
                body.len()
            );
            (200, [head.as_bytes(), body.as_bytes()].concat())
        }
    };
    state.log.push(Logged {
        path,
        if_none_match,
        if_modified_since,
        status,
    });
    drop(state);
    let _ = stream.write_all(&answer);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}
