//! A tiny blocking HTTP/1.1 client over `std::net::TcpStream`, and the message reading/writing
//! shared with the fault proxy. Requests carry `Content-Length` bodies; responses are read by
//! `Content-Length`, chunked transfer coding, or until the server closes.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Read/write timeout of every socket the harness opens: long enough for a slow CI machine,
/// short enough that a hung server fails the test instead of hanging it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

const MAX_HEAD: usize = 256 * 1024;

/// One HTTP response, body already de-chunked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    /// Header names as the server spelled them, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// First header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The `ETag` header, quotes included, as the server sent it.
    pub fn etag(&self) -> Option<&str> {
        self.header("etag")
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// First header of that name in a header list (case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Standard base64 (with padding), for Basic auth.
pub fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The value of an `Authorization` header for HTTP Basic auth.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// Splits `http://host:port/path?q` into (`host:port`, `/path?q`). Only plain `http` is
/// supported: every server of the harness listens on loopback without TLS.
pub fn split_url(url: &str) -> (String, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("only http:// URLs are supported, got {url:?}"));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    (authority, path.to_string())
}

pub fn resolve(authority: &str) -> io::Result<SocketAddr> {
    authority.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("cannot resolve {authority}"),
        )
    })
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the whole response.
/// `Host`, `Content-Length` and `Connection` are added unless `headers` has them. An I/O error
/// (refused, reset, closed without an answer, truncated body, time-out) is returned as `Err`.
pub fn try_http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    let (authority, target) = split_url(url);
    let addr = resolve(&authority)?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let _ = stream.set_nodelay(true);
    let mut all: Vec<(String, String)> = Vec::new();
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !has("host") {
        all.push(("Host".into(), authority.clone()));
    }
    if !has("connection") {
        all.push(("Connection".into(), "close".into()));
    }
    if !has("content-length") && !has("transfer-encoding") {
        all.push(("Content-Length".into(), body.len().to_string()));
    }
    all.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    let mut writer = stream.try_clone()?;
    write_request(&mut writer, method, &target, &all, body)?;
    let mut reader = BufReader::new(stream);
    read_response(&mut reader, method)
}

/// Like [`try_http`], but panics with the method and URL on an I/O error.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    try_http(method, url, headers, body)
        .unwrap_or_else(|e| panic!("{method} {url}: I/O error: {e} ({:?})", e.kind()))
}

/// Writes a request exactly as given (no headers added).
pub fn write_request<W: Write>(
    w: &mut W,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut buf = head.into_bytes();
    buf.extend_from_slice(body);
    w.write_all(&buf)?;
    w.flush()
}

/// Reads one line (up to `\n`), without the line ending. `Ok(None)` at a clean end of stream.
fn read_line<R: BufRead>(r: &mut R) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_HEAD as u64)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed in the middle of a header line",
        ));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Header fields in order, names as sent.
pub type Headers = Vec<(String, String)>;

/// Reads a start line and the header block. `Ok(None)` if the stream ended before any byte.
pub fn read_head<R: BufRead>(r: &mut R) -> io::Result<Option<(String, Headers)>> {
    let start = loop {
        match read_line(r)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue, // tolerate stray CRLF between messages
            Some(l) => break l,
        }
    };
    let mut headers = Vec::new();
    let mut size = start.len();
    loop {
        let line = read_line(r)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside the header block",
            )
        })?;
        if line.is_empty() {
            break;
        }
        size += line.len();
        if size > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "header block too large",
            ));
        }
        match line.split_once(':') {
            Some((n, v)) => headers.push((n.trim().to_string(), v.trim().to_string())),
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("malformed header line {line:?}"),
                ));
            }
        }
    }
    Ok(Some((start, headers)))
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    header(headers, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

/// Reads a message body framed by the headers: chunked, `Content-Length`, or (when
/// `until_close`, i.e. for responses) everything until the peer closes.
pub fn read_body<R: BufRead>(
    r: &mut R,
    headers: &[(String, String)],
    until_close: bool,
) -> io::Result<Vec<u8>> {
    if is_chunked(headers) {
        let mut body = Vec::new();
        loop {
            let line = read_line(r)?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "chunked body ended early")
            })?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size line {line:?}"),
                )
            })?;
            if size == 0 {
                // Trailers, up to the empty line (or a close).
                while let Some(l) = read_line(r)? {
                    if l.is_empty() {
                        break;
                    }
                }
                return Ok(body);
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..]).map_err(|e| {
                io::Error::new(e.kind(), format!("chunk of {size} bytes cut short: {e}"))
            })?;
            read_line(r)?; // CRLF after the chunk data
        }
    }
    if let Some(len) = header(headers, "content-length") {
        let len: usize = len.trim().parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad Content-Length {len:?}"),
            )
        })?;
        let mut body = Vec::with_capacity(len.min(64 << 20));
        r.by_ref().take(len as u64).read_to_end(&mut body)?;
        if body.len() < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "body truncated: got {} of {len} bytes announced by Content-Length",
                    body.len()
                ),
            ));
        }
        return Ok(body);
    }
    let mut body = Vec::new();
    if until_close {
        r.read_to_end(&mut body)?;
    }
    Ok(body)
}

/// Parses `HTTP/1.x CODE REASON`.
fn parse_status_line(line: &str) -> io::Result<(u16, String)> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(code) if version.starts_with("HTTP/") => {
            Ok((code, parts.next().unwrap_or("").to_string()))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad status line {line:?}"),
        )),
    }
}

/// Reads one complete response to a request of `method` (interim 1xx responses are skipped;
/// HEAD, 204 and 304 have no body). A stream that ends before the status line is an
/// `UnexpectedEof` error: the server (or the proxy) closed without answering.
pub fn read_response<R: BufRead>(r: &mut R, method: &str) -> io::Result<HttpResponse> {
    loop {
        let (start, headers) = read_head(r)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed without a response",
            )
        })?;
        let (status, reason) = parse_status_line(&start)?;
        if (100..200).contains(&status) {
            continue;
        }
        let body = if method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 {
            Vec::new()
        } else {
            read_body(r, &headers, true)?
        };
        return Ok(HttpResponse {
            status,
            reason,
            headers,
            body,
        });
    }
}

/// Reason phrase for the status codes the harness synthesizes.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        207 => "Multi-Status",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        412 => "Precondition Failed",
        415 => "Unsupported Media Type",
        423 => "Locked",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        507 => "Insufficient Storage",
        _ => "Status",
    }
}

/// A client that acts as "another client editing the server": optional Basic auth, one
/// connection per request. The `put_item`/`delete_item`/`mkcalendar`/`mkcol_addressbook`
/// helpers panic unless the server answers 2xx; `request`, `get`, `put_item_with`,
/// `propfind` and `report` return whatever came back.
#[derive(Clone, Debug, Default)]
pub struct DavClient {
    auth: Option<String>,
}

impl DavClient {
    /// No `Authorization` header.
    pub fn anonymous() -> DavClient {
        DavClient { auth: None }
    }

    /// Basic auth on every request.
    pub fn basic(user: &str, password: &str) -> DavClient {
        DavClient {
            auth: Some(basic_auth(user, password)),
        }
    }

    fn headers<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut all: Vec<(&str, &str)> = Vec::new();
        if let Some(auth) = &self.auth
            && !extra
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        {
            all.push(("Authorization", auth.as_str()));
        }
        all.extend_from_slice(extra);
        all
    }

    pub fn try_request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<HttpResponse> {
        try_http(method, url, &self.headers(headers), body)
    }

    /// Panics on an I/O error, returns any status.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        http(method, url, &self.headers(headers), body)
    }

    pub fn get(&self, url: &str) -> HttpResponse {
        self.request("GET", url, &[], &[])
    }

    /// PUT with a Content-Type guessed from the extension (`.vcf` → text/vcard, else
    /// text/calendar) plus `extra` headers (e.g. `If-Match`); any status is returned.
    pub fn put_item_with(&self, url: &str, bytes: &[u8], extra: &[(&str, &str)]) -> HttpResponse {
        let mut headers = vec![("Content-Type", content_type_for(url))];
        headers.extend_from_slice(extra);
        self.request("PUT", url, &headers, bytes)
    }

    /// Unconditional PUT; panics unless 2xx. The response carries the new ETag (if any).
    pub fn put_item(&self, url: &str, bytes: &[u8]) -> HttpResponse {
        expect_success("PUT", url, self.put_item_with(url, bytes, &[]))
    }

    /// Unconditional DELETE; panics unless 2xx.
    pub fn delete_item(&self, url: &str) -> HttpResponse {
        expect_success("DELETE", url, self.request("DELETE", url, &[], &[]))
    }

    /// MKCALENDAR with a display name equal to the last path segment; panics unless 2xx.
    pub fn mkcalendar(&self, url: &str) -> HttpResponse {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
             <C:mkcalendar xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">\
             <D:set><D:prop><D:displayname>{}</D:displayname></D:prop></D:set>\
             </C:mkcalendar>",
            last_segment(url)
        );
        let resp = self.request(
            "MKCALENDAR",
            url,
            &[("Content-Type", "application/xml; charset=utf-8")],
            body.as_bytes(),
        );
        expect_success("MKCALENDAR", url, resp)
    }

    /// Extended MKCOL (RFC 5689) creating an address book; panics unless 2xx.
    pub fn mkcol_addressbook(&self, url: &str) -> HttpResponse {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
             <D:mkcol xmlns:D=\"DAV:\" xmlns:CR=\"urn:ietf:params:xml:ns:carddav\">\
             <D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>\
             <D:displayname>{}</D:displayname></D:prop></D:set></D:mkcol>",
            last_segment(url)
        );
        let resp = self.request(
            "MKCOL",
            url,
            &[("Content-Type", "application/xml; charset=utf-8")],
            body.as_bytes(),
        );
        expect_success("MKCOL", url, resp)
    }

    /// PROPFIND with an XML body (Content-Type set: Xandikos answers 415 without it).
    pub fn propfind(&self, url: &str, depth: &str, body: &str) -> HttpResponse {
        self.request(
            "PROPFIND",
            url,
            &[
                ("Depth", depth),
                ("Content-Type", "application/xml; charset=utf-8"),
            ],
            body.as_bytes(),
        )
    }

    /// REPORT with an XML body.
    pub fn report(&self, url: &str, depth: &str, body: &str) -> HttpResponse {
        self.request(
            "REPORT",
            url,
            &[
                ("Depth", depth),
                ("Content-Type", "application/xml; charset=utf-8"),
            ],
            body.as_bytes(),
        )
    }
}

fn content_type_for(url: &str) -> &'static str {
    if url.to_ascii_lowercase().ends_with(".vcf") {
        "text/vcard; charset=utf-8"
    } else {
        "text/calendar; charset=utf-8"
    }
}

fn last_segment(url: &str) -> String {
    url.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("collection")
        .to_string()
}

fn expect_success(method: &str, url: &str, resp: HttpResponse) -> HttpResponse {
    assert!(
        resp.is_success(),
        "{method} {url} answered {} {}: {}",
        resp.status,
        resp.reason,
        resp.text()
    );
    resp
}
