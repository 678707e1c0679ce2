//! Authentication and TLS options of the CalDAV storage, through the `davsync` binary syncing a
//! vdir with a CalDAV server:
//!
//! - HTTPS against Radicale with a self-signed certificate made by `openssl req -x509` (no
//!   extra Python package needed: Radicale's TLS is the standard library's `ssl`): the default
//!   `verify` refuses it, `verify = "<cert.pem>"`, `fingerprint = "sha256:…"` and
//!   `verify = false` (with its warning on every run) sync, a wrong fingerprint or another CA
//!   file refuse it.
//! - `auth = "digest"` against [`DigestMockServer`], a mock written here that challenges,
//!   verifies the RFC 7616 `qop=auth` MD5 response (MD5 implemented below: there is no md5
//!   crate among the dev-dependencies), and proxies authorized requests to Radicale with Basic;
//!   also a nonce renewed in the middle of concurrent PUTs (`stale=true`, replayed nonce counts
//!   refused).
//! - `auth = "bearer"`: the `Authorization` header seen by a `FaultProxy` in front of Xandikos.
//! - Secrets never show up in the output, even with `-v -v` and a rejected password given
//!   literally, from the environment or from a command.

mod common;
mod dav_support;

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{EventBuilder, Run, Sandbox, totals};
use dav_support::http::{IO_TIMEOUT, header, read_body, read_head, reason_phrase};
use dav_support::{
    DavServer, Fault, FaultProxy, FaultRule, Radicale, Xandikos, basic_auth, free_port, try_http,
    venv_bin,
};
use sha2::{Digest as _, Sha256};

// ---------------------------------------------------------------------------------------------
// Running the binary

fn run(sb: &Sandbox, args: &[&str]) -> Run {
    sb.run_env(args, &[])
}

fn event(uid: &str, summary: &str) -> String {
    EventBuilder::new(summary).uid(uid).build()
}

/// A sandbox with vdir storage `local` at `{root}/cals`, a CalDAV storage `server` whose table
/// is `url = URL` plus `server_keys` (TOML lines), and pair `p` with `pair_keys`.
fn sandbox(url: &str, server_keys: &str, pair_keys: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.mkdir("cals");
    sb.write_config(&format!(
        r#"status_path = "{{root}}/status"

[storage.local]
type = "vdir"
path = "{{root}}/cals"
fileext = ".ics"

[storage.server]
type = "caldav"
url = "{url}"
{server_keys}

[pair.p]
a = "local"
b = "server"
{pair_keys}
"#
    ));
    sb
}

/// The usual upload sandbox: one event `UID.ics` in the vdir collection `collection`.
fn upload_sandbox(url: &str, server_keys: &str, collection: &str, uid: &str) -> Sandbox {
    let sb = sandbox(url, server_keys, "collections = \"from a\"");
    sb.write(
        &format!("cals/{collection}/{uid}.ics"),
        event(uid, &format!("Event {uid}")),
    );
    sb
}

/// The item `alice/COLLECTION/NAME` as Radicale stored it, if it is there.
fn radicale_item(data_dir: &Path, collection: &str, name: &str) -> Option<String> {
    fs::read_to_string(
        data_dir
            .join("collection-root/alice")
            .join(collection)
            .join(name),
    )
    .ok()
}

const WARNING: &str = "warning: storage server: TLS certificates are not checked (verify = false)";

// ---------------------------------------------------------------------------------------------
// A self-signed certificate and Radicale over HTTPS

/// A self-signed certificate for 127.0.0.1 (an end-entity certificate, `CA:FALSE`, so it can be
/// its own trust anchor for webpki), made with the `openssl` command.
struct SelfSigned {
    cert: PathBuf,
    key: PathBuf,
    /// Lower-case hex SHA-256 of the DER certificate.
    sha256: String,
    /// `openssl x509 -fingerprint -sha256`'s spelling: upper-case hex pairs joined by `:`.
    sha256_colons: String,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run openssl {args:?} (is openssl installed?): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SelfSigned {
    fn generate(dir: &Path, name: &str) -> SelfSigned {
        let cert = dir.join(format!("{name}.cert.pem"));
        let key = dir.join(format!("{name}.key.pem"));
        let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
        let subject = format!("/CN=davsync test {name}");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key_s,
            "-out",
            cert_s,
            "-days",
            "2",
            "-subj",
            &subject,
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ]);
        let der = openssl(&["x509", "-in", cert_s, "-outform", "DER"]);
        let sha256 = hex(&Sha256::digest(&der));
        let printed = String::from_utf8(openssl(&[
            "x509",
            "-in",
            cert_s,
            "-noout",
            "-fingerprint",
            "-sha256",
        ]))
        .expect("UTF-8");
        let sha256_colons = printed
            .trim()
            .rsplit_once('=')
            .expect("sha256 Fingerprint=…")
            .1
            .to_owned();
        assert_eq!(
            sha256_colons.replace(':', "").to_ascii_lowercase(),
            sha256,
            "openssl and sha2 disagree on the fingerprint"
        );
        SelfSigned {
            cert,
            key,
            sha256,
            sha256_colons,
        }
    }
}

/// Runs a venv console script with a watchdog thread that ends the process when its stdin
/// reaches EOF (i.e. when this test process dies without dropping the server).
const WATCHDOG: &str = "\
import os, runpy, sys, threading
def watch():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)
threading.Thread(target=watch, daemon=True).start()
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
";

/// Radicale serving HTTPS with a self-signed certificate; otherwise configured like the
/// harness's [`Radicale`] (alice / `secret-horse-42`, plain htpasswd, no login delay).
struct TlsRadicale {
    child: Child,
    _stdin: Option<ChildStdin>,
    port: u16,
    cert: SelfSigned,
    dir: tempfile::TempDir,
}

impl TlsRadicale {
    fn start() -> TlsRadicale {
        let dir = tempfile::Builder::new()
            .prefix("davsync-tls-radicale-")
            .tempdir()
            .expect("create temporary directory");
        let cert = SelfSigned::generate(dir.path(), "server");
        let users = dir.path().join("users");
        fs::write(
            &users,
            format!("{}:{}\n", Radicale::USER, Radicale::PASSWORD),
        )
        .expect("write users");
        let config = dir.path().join("config");
        let log_path = dir.path().join("radicale.log");
        for attempt in 1..=5 {
            let port = free_port();
            fs::write(
                &config,
                format!(
                    "[server]\nhosts = 127.0.0.1:{port}\ndelay_on_error = 0\n\
                     ssl = True\ncertificate = {}\nkey = {}\n\
                     [auth]\ntype = htpasswd\nhtpasswd_filename = {}\n\
                     htpasswd_encryption = plain\ndelay = 0\n\
                     [rights]\ntype = owner_only\n\
                     [storage]\nfilesystem_folder = {}\n\
                     [web]\ntype = none\n\
                     [logging]\nlevel = info\nmask_passwords = True\n",
                    cert.cert.display(),
                    cert.key.display(),
                    users.display(),
                    dir.path().join("data").display()
                ),
            )
            .expect("write radicale config");
            let log = File::create(&log_path).expect("create log");
            let mut child = Command::new(venv_bin("python3"))
                .arg("-c")
                .arg(WATCHDOG)
                .arg(venv_bin("radicale"))
                .arg("--config")
                .arg(&config)
                .stdin(Stdio::piped())
                .stdout(log.try_clone().expect("clone log"))
                .stderr(log)
                .env("PYTHONUNBUFFERED", "1")
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .spawn()
                .expect("spawn radicale");
            let stdin = child.stdin.take();
            let deadline = Instant::now() + Duration::from_secs(15);
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            loop {
                let text = fs::read_to_string(&log_path).unwrap_or_default();
                if let Ok(Some(status)) = child.try_wait() {
                    if text.contains("Address already in use") && attempt < 5 {
                        break;
                    }
                    panic!("radicale (TLS) exited during start-up ({status}):\n{text}");
                }
                if text.contains("Radicale server ready")
                    && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                {
                    return TlsRadicale {
                        child,
                        _stdin: stdin,
                        port,
                        cert,
                        dir,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("radicale (TLS) did not start on port {port}:\n{text}");
                }
                thread::sleep(Duration::from_millis(25));
            }
        }
        unreachable!("radicale (TLS) never found a free port")
    }

    /// `https://127.0.0.1:PORT/`
    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for TlsRadicale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ALICE: &str = "username = \"alice\"\npassword = \"secret-horse-42\"";

#[test]
fn https_with_a_self_signed_certificate() {
    let server = TlsRadicale::start();
    let url = server.url();
    let cert = server.cert.cert.display().to_string();

    // Default verify: the system roots do not know the certificate.
    let sb = upload_sandbox(&url, ALICE, "plain", "t0");
    for _ in 0..2 {
        let sync = run(&sb, &["sync"]);
        sync.expect_code(1);
        assert!(
            sync.stderr.contains(&url),
            "URL not named:\n{}",
            sync.both()
        );
        assert!(
            sync.stderr.to_lowercase().contains("certificate"),
            "no certificate error:\n{}",
            sync.both()
        );
        assert!(!sync.stderr.contains("warning"), "{}", sync.both());
    }
    assert_eq!(radicale_item(&server.data_dir(), "plain", "t0.ics"), None);

    // verify = the self-signed certificate (PEM) as the only trusted root.
    let sb = upload_sandbox(&url, &format!("{ALICE}\nverify = \"{cert}\""), "ca", "t1");
    let sync = run(&sb, &["sync"]);
    sync.success();
    assert_eq!(totals(&sync), (1, 0, 0), "{}", sync.both());
    assert!(!sync.stderr.contains("warning"), "{}", sync.both());
    let stored = radicale_item(&server.data_dir(), "ca", "t1.ics").expect("t1 on the server");
    assert!(stored.contains("UID:t1"), "{stored}");
    let again = run(&sb, &["sync"]);
    again.success();
    assert_eq!(totals(&again), (0, 0, 0), "{}", again.both());

    // The other direction with the CA file: the item downloads into another vdir.
    let down = sandbox(
        &url,
        &format!("{ALICE}\nverify = \"{cert}\""),
        "collections = \"from b\"",
    );
    let sync = run(&down, &["sync"]);
    sync.success();
    assert!(
        down.read_string("cals/ca/t1.ics").contains("UID:t1"),
        "{}",
        sync.both()
    );

    // Another self-signed certificate as the CA file: refused.
    let other = SelfSigned::generate(server.dir.path(), "other");
    let sb = upload_sandbox(
        &url,
        &format!("{ALICE}\nverify = \"{}\"", other.cert.display()),
        "otherca",
        "t2",
    );
    let sync = run(&sb, &["sync"]);
    sync.expect_code(1);
    assert!(sync.stderr.contains(&url), "{}", sync.both());
    assert!(
        sync.stderr.to_lowercase().contains("certificate"),
        "{}",
        sync.both()
    );
    assert_eq!(radicale_item(&server.data_dir(), "otherca", "t2.ics"), None);

    // fingerprint = the certificate's SHA-256, lower-case hex.
    let sb = upload_sandbox(
        &url,
        &format!("{ALICE}\nfingerprint = \"sha256:{}\"", server.cert.sha256),
        "pin",
        "t3",
    );
    let sync = run(&sb, &["sync"]);
    sync.success();
    assert_eq!(totals(&sync), (1, 0, 0), "{}", sync.both());
    assert!(
        radicale_item(&server.data_dir(), "pin", "t3.ics").is_some(),
        "t3 not on the server"
    );

    // ... and in openssl's spelling (upper case, colons, "SHA256:").
    let sb = upload_sandbox(
        &url,
        &format!(
            "{ALICE}\nfingerprint = \"SHA256:{}\"",
            server.cert.sha256_colons
        ),
        "pin2",
        "t4",
    );
    let sync = run(&sb, &["sync"]);
    sync.success();
    assert_eq!(totals(&sync), (1, 0, 0), "{}", sync.both());

    // A wrong fingerprint (one digit changed): refused, and the message says so.
    let mut wrong = server.cert.sha256.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    let sb = upload_sandbox(
        &url,
        &format!("{ALICE}\nfingerprint = \"sha256:{wrong}\""),
        "badpin",
        "t5",
    );
    let sync = run(&sb, &["sync"]);
    sync.expect_code(1);
    assert!(sync.stderr.contains(&url), "{}", sync.both());
    assert!(
        sync.stderr.contains("fingerprint") && sync.stderr.contains("not the pinned one"),
        "no fingerprint mismatch message:\n{}",
        sync.both()
    );
    // It names the certificate's real fingerprint, so the user can check it.
    assert!(sync.stderr.contains(&server.cert.sha256), "{}", sync.both());
    assert_eq!(radicale_item(&server.data_dir(), "badpin", "t5.ics"), None);

    // verify = false: syncs, with the warning on every run.
    let sb = upload_sandbox(&url, &format!("{ALICE}\nverify = false"), "insecure", "t6");
    for round in 0..2 {
        let sync = run(&sb, &["sync"]);
        sync.success();
        let expected = if round == 0 { (1, 0, 0) } else { (0, 0, 0) };
        assert_eq!(totals(&sync), expected, "{}", sync.both());
        assert!(
            sync.stderr.contains(WARNING),
            "no warning on run {round}:\n{}",
            sync.both()
        );
    }
    // ... also with -q: the warning is a problem, not chatter.
    let sync = run(&sb, &["-q", "sync"]);
    sync.success();
    assert!(sync.stderr.contains(WARNING), "{}", sync.both());
    assert!(
        radicale_item(&server.data_dir(), "insecure", "t6.ics").is_some(),
        "t6 not on the server"
    );
}

// ---------------------------------------------------------------------------------------------
// MD5 (RFC 1321), for checking Digest responses

fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    // K[i] = floor(|sin(i + 1)| * 2^32)
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    for block in message.chunks(64) {
        let m: Vec<u32> = block
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a
                .wrapping_add(f)
                .wrapping_add(k[i])
                .wrapping_add(m[g])
                .rotate_left(S[i]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(rotated);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut out = [0; 16];
    for (chunk, word) in out.chunks_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

fn md5_hex(text: &str) -> String {
    hex(&md5(text.as_bytes()))
}

#[test]
fn md5_matches_the_rfc_1321_test_suite() {
    for (input, digest) in [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        (
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        ),
    ] {
        assert_eq!(md5_hex(input), digest, "MD5({input:?})");
    }
    // RFC 2617, section 3.5: Mufasa / "Circle Of Life" at testrealm@host.com.
    let ha1 = md5_hex("Mufasa:testrealm@host.com:Circle Of Life");
    let ha2 = md5_hex("GET:/dir/index.html");
    assert_eq!(
        md5_hex(&format!(
            "{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001:0a4f113b:auth:{ha2}"
        )),
        "6629fae49393a05397450978507c4ef1"
    );
}

// ---------------------------------------------------------------------------------------------
// DigestMockServer

/// Parameters of an `Authorization: Digest …` header (names lower-cased, quotes removed).
fn digest_params(value: &str) -> Option<Vec<(String, String)>> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(params);
        }
        let name: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => value.push(chars.next()?),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        params.push((name, value));
    }
}

/// What the mock made of one request.
#[derive(Clone, Debug)]
struct DigestSeen {
    method: String,
    target: String,
    /// The `Authorization` header as received.
    authorization: Option<String>,
    /// `Ok(nc)` for a valid Digest answer, `Err(why)` for a challenged request.
    verdict: Result<u32, String>,
    /// Status sent back.
    status: u16,
}

/// A mock for auth testing: an HTTP/1.1 server on 127.0.0.1 that answers every request
/// without a valid `Authorization: Digest …` (qop=auth, MD5, for one user and password) with
/// `401` and `WWW-Authenticate: Digest realm="test", nonce="abc", qop="auth",
/// algorithm=MD5`, and forwards valid ones to an upstream (Radicale) with the `Authorization`
/// header rewritten to Basic. Keep-alive is supported; one thread per connection.
///
/// With [`DigestMockServer::renew_nonce_after`], the nonce changes once, from `abc` to `def`,
/// after that many authorized requests, and an answer to the old nonce gets a 401 with
/// `stale=true`, as servers that expire nonces do; then a nonce count used twice with the same
/// nonce is refused as a replay.
struct DigestMockServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<DigestSeen>>>,
    check: Arc<DigestCheck>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

struct DigestCheck {
    user: String,
    password: String,
    upstream: String,
    upstream_auth: String,
    /// The current nonce and the nonce counts authorized with it.
    nonce: Mutex<(String, HashSet<u32>)>,
    /// Renew the nonce after this many authorized requests; 0 = never.
    renew_after: std::sync::atomic::AtomicUsize,
    /// When the last `stale=true` answer went out.
    last_stale: Mutex<Instant>,
    /// How many requests were refused for a stale nonce.
    stale_refused: std::sync::atomic::AtomicUsize,
}

impl DigestCheck {
    /// Checks one request's `Authorization` header; `Ok(nc)` when it is a correct answer.
    fn verify(
        &self,
        method: &str,
        target: &str,
        auth: Option<&str>,
        current_nonce: &str,
    ) -> Result<u32, String> {
        let auth = auth.ok_or("no Authorization header")?;
        let params = digest_params(auth).ok_or_else(|| format!("not Digest: {auth:?}"))?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| format!("no {name} in {auth:?}"))
        };
        let (username, realm, nonce, uri) =
            (get("username")?, get("realm")?, get("nonce")?, get("uri")?);
        let (qop, nc, cnonce, response) =
            (get("qop")?, get("nc")?, get("cnonce")?, get("response")?);
        if username != self.user || realm != "test" {
            return Err(format!("wrong username or realm in {auth:?}"));
        }
        if uri != target {
            return Err(format!("uri {uri:?} is not the request target {target:?}"));
        }
        if let Ok(algorithm) = get("algorithm")
            && !algorithm.eq_ignore_ascii_case("MD5")
        {
            return Err(format!("algorithm {algorithm:?}"));
        }
        if qop != "auth" {
            return Err(format!("qop {qop:?}"));
        }
        if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("nc {nc:?} is not 8 hex digits"));
        }
        if cnonce.is_empty() {
            return Err("empty cnonce".into());
        }
        if response.len() != 32 || !response.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("response {response:?} is not 32 hex digits"));
        }
        let ha1 = md5_hex(&format!("{username}:test:{}", self.password));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let expected = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"));
        if !response.eq_ignore_ascii_case(&expected) {
            return Err("wrong response (password)".into());
        }
        if nonce != current_nonce {
            return Err(STALE.into());
        }
        Ok(u32::from_str_radix(nc, 16).expect("hex nc"))
    }
}

/// The verdict on a correct answer to a nonce that is no longer current.
const STALE: &str = "stale nonce";

/// The verdict on a nonce count used before with the same nonce (RFC 7616, section 3.4: "if
/// the same nc value is seen twice, then the request is a replay").
const REPLAY: &str = "replayed nonce count";

impl DigestCheck {
    /// The challenge for the current nonce.
    fn challenge(&self, stale: bool) -> String {
        let nonce = self.nonce.lock().unwrap().0.clone();
        let stale = if stale { ", stale=true" } else { "" };
        format!(r#"Digest realm="test", nonce="{nonce}", qop="auth", algorithm=MD5{stale}"#)
    }

    /// The challenge for a refused request. Answers with `stale=true` are held back: the first
    /// one until a second request met the old nonce (5 s at most: on a loaded machine a fixed
    /// delay was sometimes too short for the client's next request to arrive), so that
    /// concurrent requests meet it, and the others 50 ms apart, so each learns about the new
    /// nonce after the previous one already answered it: a client that starts its nonce count
    /// again on every challenge then reuses a count, which is refused as a replay.
    fn stale_challenge(&self, stale: bool) -> String {
        if stale && self.stale_refused.fetch_add(1, Ordering::SeqCst) == 0 {
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.stale_refused.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
        }
        if stale {
            let mut last = self.last_stale.lock().unwrap();
            let next = *last + Duration::from_millis(50);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            *last = Instant::now();
        }
        self.challenge(stale)
    }

    /// Checks a request against the current nonce; counts it and maybe renews the nonce.
    fn admit(&self, method: &str, target: &str, auth: Option<&str>) -> Result<u32, String> {
        let mut nonce = self.nonce.lock().unwrap();
        let nc = self.verify(method, target, auth, &nonce.0)?;
        let renew_after = self.renew_after.load(Ordering::SeqCst);
        // Only a server that renews nonces can check nonce counts: with the fixed nonce,
        // every new davsync process starts again at 1.
        if !nonce.1.insert(nc) && renew_after > 0 {
            return Err(REPLAY.into());
        }
        if renew_after > 0 && nonce.0 == "abc" && nonce.1.len() >= renew_after {
            *nonce = ("def".to_owned(), HashSet::new());
            // The first stale answer leaves 100 ms from now (see `stale_challenge`).
            *self.last_stale.lock().unwrap() = Instant::now() + Duration::from_millis(50);
        }
        Ok(nc)
    }
}

impl DigestMockServer {
    /// Accepts `user`/`password` by Digest; forwards to `upstream` (`http://host:port`, no
    /// trailing slash) as Basic `upstream_user`/`upstream_password`.
    fn start(
        user: &str,
        password: &str,
        upstream: &str,
        upstream_user: &str,
        upstream_password: &str,
    ) -> DigestMockServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind mock");
        let addr = listener.local_addr().expect("mock address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let check = Arc::new(DigestCheck {
            user: user.to_owned(),
            password: password.to_owned(),
            upstream: upstream.trim_end_matches('/').to_owned(),
            upstream_auth: basic_auth(upstream_user, upstream_password),
            nonce: Mutex::new(("abc".to_owned(), HashSet::new())),
            renew_after: 0.into(),
            last_stale: Mutex::new(Instant::now()),
            stale_refused: 0.into(),
        });
        let accept = {
            let (seen, stop, check) = (Arc::clone(&seen), Arc::clone(&stop), Arc::clone(&check));
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (seen, check) = (Arc::clone(&seen), Arc::clone(&check));
                    thread::spawn(move || {
                        let _ = serve_digest(stream, &check, &seen);
                    });
                }
            })
        };
        DigestMockServer {
            addr,
            seen,
            check,
            stop,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT/`
    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn seen(&self) -> Vec<DigestSeen> {
        self.seen.lock().unwrap().clone()
    }

    fn reset(&self) {
        self.seen.lock().unwrap().clear();
    }

    /// A new nonce once `n` requests were authorized with the first one (0: never).
    fn renew_nonce_after(&self, n: usize) {
        self.check.renew_after.store(n, Ordering::SeqCst);
    }
}

impl Drop for DigestMockServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes accept()
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

/// One client connection: requests in a row until the client closes.
fn serve_digest(
    stream: TcpStream,
    check: &DigestCheck,
    seen: &Mutex<Vec<DigestSeen>>,
) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    while let Some((start, headers)) = read_head(&mut reader)? {
        let body = read_body(&mut reader, &headers, false)?;
        let mut parts = start.split(' ');
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("").to_owned();
        let authorization = header(&headers, "authorization").map(str::to_owned);
        let verdict = check.admit(&method, &target, authorization.as_deref());
        let (status, mut out_headers, out_body) = match &verdict {
            Err(why) => (
                401,
                vec![
                    (
                        "WWW-Authenticate".to_owned(),
                        check.stale_challenge(why == STALE),
                    ),
                    ("Content-Type".to_owned(), "text/plain".to_owned()),
                ],
                format!("digest mock: {why}\n").into_bytes(),
            ),
            Ok(_) => {
                let forwarded: Vec<(&str, &str)> = headers
                    .iter()
                    .filter(|(n, _)| {
                        ![
                            "authorization",
                            "host",
                            "connection",
                            "keep-alive",
                            "content-length",
                            "transfer-encoding",
                            "accept-encoding",
                        ]
                        .iter()
                        .any(|h| n.eq_ignore_ascii_case(h))
                    })
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .chain([("Authorization", check.upstream_auth.as_str())])
                    .collect();
                match try_http(
                    &method,
                    &format!("{}{target}", check.upstream),
                    &forwarded,
                    &body,
                ) {
                    Ok(response) => (
                        response.status,
                        response
                            .headers
                            .into_iter()
                            .filter(|(n, _)| {
                                ![
                                    "connection",
                                    "keep-alive",
                                    "content-length",
                                    "transfer-encoding",
                                ]
                                .iter()
                                .any(|h| n.eq_ignore_ascii_case(h))
                            })
                            .collect(),
                        response.body,
                    ),
                    Err(e) => (502, Vec::new(), format!("upstream: {e}\n").into_bytes()),
                }
            }
        };
        seen.lock().unwrap().push(DigestSeen {
            method: method.clone(),
            target,
            authorization,
            verdict,
            status,
        });
        out_headers.push(("Content-Length".to_owned(), out_body.len().to_string()));
        let mut head = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status));
        for (n, v) in &out_headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if method != "HEAD" && status != 204 && status != 304 {
            bytes.extend_from_slice(&out_body);
        }
        writer.write_all(&bytes)?;
        writer.flush()?;
        if header(&headers, "connection").is_some_and(|c| c.eq_ignore_ascii_case("close")) {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
    Ok(())
}

const DIGEST_PASSWORD: &str = "digest-only-pw-31";

/// A Digest-only server (user alice, [`DIGEST_PASSWORD`]) in front of `radicale`.
fn digest_mock(radicale: &Radicale) -> DigestMockServer {
    DigestMockServer::start(
        "alice",
        DIGEST_PASSWORD,
        &radicale.url(),
        Radicale::USER,
        Radicale::PASSWORD,
    )
}

fn digest_keys(password: &str) -> String {
    format!("username = \"alice\"\npassword = \"{password}\"\nauth = \"digest\"")
}

#[test]
fn digest_auth_answers_one_challenge() {
    let radicale = Radicale::start();
    let mock = digest_mock(&radicale);
    let describe = |seen: &[DigestSeen]| {
        seen.iter()
            .map(|s| {
                format!(
                    "{} {} -> {} {:?} [{}]\n",
                    s.method,
                    s.target,
                    s.status,
                    s.verdict,
                    s.authorization.as_deref().unwrap_or("-")
                )
            })
            .collect::<String>()
    };

    let sb = upload_sandbox(&mock.url(), &digest_keys(DIGEST_PASSWORD), "work", "d1");
    sb.write("cals/work/d2.ics", event("d2", "Second"));
    sb.write("cals/work/d3.ics", event("d3", "Third"));
    let sync = run(&sb, &["sync"]);
    let seen = mock.seen();
    sync.success();
    assert_eq!(totals(&sync), (3, 0, 0), "{}", sync.both());
    for uid in ["d1", "d2", "d3"] {
        let got = radicale
            .client()
            .get(&format!("{}work/{uid}.ics", radicale.calendar_home_url()));
        assert_eq!(got.status, 200, "{uid} not on Radicale");
        assert!(got.text().contains(&format!("UID:{uid}")), "{}", got.text());
    }

    // One 401 (the very first request, sent without credentials), then only answers to it.
    let challenged: Vec<&DigestSeen> = seen.iter().filter(|s| s.status == 401).collect();
    assert_eq!(
        challenged.len(),
        1,
        "not exactly one 401:\n{}",
        describe(&seen)
    );
    assert_eq!(seen[0].status, 401, "{}", describe(&seen));
    assert!(seen[0].authorization.is_none(), "{}", describe(&seen));
    assert!(seen.len() >= 5, "too few requests:\n{}", describe(&seen));
    assert!(
        seen[1..]
            .iter()
            .all(|s| s.verdict.is_ok() && s.status < 400),
        "{}",
        describe(&seen)
    );
    assert!(
        seen.iter().filter(|s| s.method == "PUT").count() == 3,
        "{}",
        describe(&seen)
    );
    // The nonce count goes up by one per request: 1, 2, 3, ... (in any arrival order).
    let mut counts: Vec<u32> = seen[1..]
        .iter()
        .map(|s| *s.verdict.as_ref().unwrap())
        .collect();
    counts.sort_unstable();
    let expected: Vec<u32> = (1..=counts.len() as u32).collect();
    assert_eq!(counts, expected, "{}", describe(&seen));

    // A second run starts over: a new process gets one new challenge, nothing more.
    mock.reset();
    let again = run(&sb, &["sync"]);
    let seen = mock.seen();
    again.success();
    assert_eq!(totals(&again), (0, 0, 0), "{}", again.both());
    assert_eq!(
        seen.iter().filter(|s| s.status == 401).count(),
        1,
        "{}",
        describe(&seen)
    );

    // The wrong password: the answer is refused, one retry only, exit 1.
    mock.reset();
    let bad = upload_sandbox(&mock.url(), &digest_keys("not-the-digest-pw"), "bad", "d9");
    let sync = run(&bad, &["sync"]);
    let seen = mock.seen();
    sync.expect_code(1);
    assert!(sync.stderr.contains("401"), "{}", sync.both());
    assert_eq!(seen.len(), 2, "{}", describe(&seen));
    assert!(seen[0].authorization.is_none(), "{}", describe(&seen));
    assert_eq!(
        seen[1].verdict,
        Err("wrong response (password)".to_owned()),
        "{}",
        describe(&seen)
    );
}

// ---------------------------------------------------------------------------------------------
// Bearer

#[test]
fn bearer_token_is_sent_on_every_request() {
    let server = Xandikos::start();
    let proxy = FaultProxy::start(&server.url());
    let sb = upload_sandbox(
        &proxy.url(),
        "password = \"tok123\"\nauth = \"bearer\"",
        "bearer",
        "b1",
    );
    let sync = run(&sb, &["sync"]);
    sync.success();
    assert_eq!(totals(&sync), (1, 0, 0), "{}", sync.both());
    let got = server
        .client()
        .get(&format!("{}bearer/b1.ics", server.calendar_home_url()));
    assert_eq!(got.status, 200, "b1 not on Xandikos");
    assert!(got.text().contains("UID:b1"), "{}", got.text());

    let requests = proxy.requests();
    assert!(requests.len() >= 3, "{} requests", requests.len());
    for r in &requests {
        assert_eq!(
            r.header("authorization"),
            Some("Bearer tok123"),
            "{} {}",
            r.method,
            r.path
        );
    }

    // From the environment too.
    proxy.reset_log();
    let sb = upload_sandbox(
        &proxy.url(),
        "password = { env = \"DAVSYNC_TEST_TOKEN\" }\nauth = \"bearer\"",
        "bearer2",
        "b2",
    );
    let sync = sb.run_env(&["sync"], &[("DAVSYNC_TEST_TOKEN", "tok-from-env")]);
    sync.success();
    let requests = proxy.requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer tok-from-env")),
        "{:?}",
        requests
            .iter()
            .map(|r| r.header("authorization").map(str::to_owned))
            .collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// Secrets never leak

#[test]
fn rejected_secrets_never_show_in_the_output() {
    let radicale = Radicale::start();
    let mock = digest_mock(&radicale);
    let secret = "Wr0ng-Secret-hunter2-zebra";
    let forms = [
        ("literal", format!("\"{secret}\"")),
        ("env", "{ env = \"DAVSYNC_TEST_SECRET\" }".to_owned()),
        (
            "cmd",
            format!("{{ cmd = [\"printf\", \"%s\", \"{secret}\"] }}"),
        ),
    ];
    // (scheme, url, auth lines): Radicale refuses a wrong Basic password and any bearer token;
    // the mock refuses a wrong Digest answer.
    let schemes = [
        ("basic", radicale.url(), "username = \"alice\""),
        (
            "digest",
            mock.url(),
            "username = \"alice\"\nauth = \"digest\"",
        ),
        ("bearer", radicale.url(), "auth = \"bearer\""),
    ];
    for (scheme, url, auth) in &schemes {
        for (form, password) in &forms {
            let sb = upload_sandbox(url, &format!("{auth}\npassword = {password}"), "leak", "s1");
            for args in [&["-v", "-v", "sync"][..], &["sync"][..]] {
                let before = sb.state("cals");
                let sync = sb.run_env(args, &[("DAVSYNC_TEST_SECRET", secret)]);
                let context = format!("{scheme}/{form} {args:?}:\n{}", sync.both());
                sync.expect_code(1);
                assert!(sync.stderr.contains("401"), "{context}");
                assert!(!sync.both().contains(secret), "secret printed, {context}");
                // Nor any encoding of it a header would carry.
                let basic = basic_auth("alice", secret);
                let encoded = basic.trim_start_matches("Basic ");
                assert!(
                    !sync.both().contains(encoded),
                    "Basic credentials printed, {context}"
                );
                assert_eq!(sb.state("cals"), before, "{context}");
            }
            // Nothing davsync wrote (status database, lock) holds the secret either.
            for (path, state) in sb.state("") {
                if path == "config.toml" {
                    continue;
                }
                let text = String::from_utf8_lossy(&state.bytes);
                assert!(!text.contains(secret), "{scheme}/{form}: secret in {path}");
            }
        }
    }
    assert!(
        mock.seen().iter().all(|s| s.status == 401),
        "the mock let a wrong password through"
    );
}

/// A server that expires nonces (here: after 12 authorized requests, in the middle of the
/// concurrent PUTs) answers requests with the old one `401` + `stale=true`; davsync answers
/// the new challenge, also when several concurrent requests get the stale 401, and never
/// reuses a nonce count (a replay to a server that checks them).
#[test]
fn digest_auth_follows_a_renewed_nonce() {
    let radicale = Radicale::start();
    let mock = digest_mock(&radicale);
    mock.renew_nonce_after(12);
    let sb = upload_sandbox(&mock.url(), &digest_keys(DIGEST_PASSWORD), "stale", "n0");
    let count = 24;
    for i in 1..count {
        sb.write(
            &format!("cals/stale/n{i}.ics"),
            event(&format!("n{i}"), "Nonce"),
        );
    }
    let sync = run(&sb, &["sync"]);
    let seen = mock.seen();
    let log: String = seen
        .iter()
        .map(|s| {
            format!(
                "{} {} -> {} {:?}\n",
                s.method, s.target, s.status, s.verdict
            )
        })
        .collect();
    assert_eq!(sync.code, Some(0), "{}\n{log}", sync.both());
    assert_eq!(totals(&sync), (count, 0, 0), "{}\n{log}", sync.both());
    for i in 0..count {
        let got = radicale
            .client()
            .get(&format!("{}stale/n{i}.ics", radicale.calendar_home_url()));
        assert_eq!(got.status, 200, "n{i} not on Radicale\n{log}");
    }
    let verdicts = |why: &str| {
        seen.iter()
            .filter(|s| s.verdict.as_ref().err().is_some_and(|e| e == why))
            .count()
    };
    assert!(verdicts(STALE) >= 2, "the nonce was never renewed:\n{log}");
    assert_eq!(verdicts(REPLAY), 0, "a nonce count was reused:\n{log}");
    // Every 401 but the first answered a stale nonce.
    assert_eq!(
        seen.iter().filter(|s| s.status == 401).count(),
        verdicts(STALE) + 1,
        "{log}"
    );
}

/// A redirected read is answered for the URL it was redirected to: the Digest `uri` is that
/// URL's (the mock checks it against the request target), not the one first asked.
#[test]
fn digest_answers_the_redirected_url() {
    let radicale = Radicale::start();
    let mock = digest_mock(&radicale);
    let proxy = FaultProxy::start(&mock.url());
    proxy.set_faults(vec![
        FaultRule::always(Fault::Status(
            301,
            vec![("Location".into(), "/alice/".into())],
            vec![],
        ))
        .path("/old/"),
    ]);
    let sb = upload_sandbox(
        &format!("{}old/", proxy.url()),
        &digest_keys(DIGEST_PASSWORD),
        "work",
        "d1",
    );
    let sync = run(&sb, &["sync"]);
    let seen = mock.seen();
    let describe = seen
        .iter()
        .map(|s| {
            format!(
                "{} {} -> {} {:?}\n",
                s.method, s.target, s.status, s.verdict
            )
        })
        .collect::<String>();
    sync.success();
    assert!(
        seen.iter()
            .all(|s| s.authorization.is_none() || s.verdict.is_ok()),
        "a Digest answer the mock refused:\n{describe}"
    );
    assert!(
        radicale_item(&radicale.data_dir(), "work", "d1.ics").is_some(),
        "d1 not on Radicale:\n{describe}"
    );
}

#[test]
fn check_reports_a_self_signed_certificate_with_the_fix() {
    let server = TlsRadicale::start();
    let url = server.url();
    let cert = server.cert.cert.display().to_string();

    // Default verify: refused, with the keys to set; exit 1, nothing written, no secret shown.
    let sb = sandbox(&url, ALICE, "collections = \"from a\"");
    let check = run(&sb, &["check"]);
    check.expect_code(1);
    assert!(
        !check.both().contains("secret-horse-42"),
        "{}",
        check.both()
    );
    assert!(!sb.exists("status"), "check created the status path");
    assert!(
        check
            .stdout
            .contains("certificate checked against the system's trusted roots; not pinned"),
        "{}",
        check.stdout
    );
    assert!(
        check
            .stdout
            .contains("fix: set verify = \"ca.pem\" (the CA that signed the server's certificate) or fingerprint = "),
        "{}",
        check.stdout
    );

    // A handshake of its own shows the protocol and the certificate, and the fix names its
    // fingerprint.
    assert!(
        check
            .stdout
            .contains("  tls: TLS 1.3, certificate CN=davsync test server, expires 20"),
        "{}",
        check.stdout
    );
    assert!(
        check
            .stdout
            .contains(&format!("  tls: fingerprint sha256:{}", server.cert.sha256)),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.contains(&format!(
            "; the server showed sha256:{} (pin it only if",
            server.cert.sha256
        )),
        "{}",
        check.stdout
    );

    // The certificate as CA file: all is well.
    let sb = sandbox(
        &url,
        &format!("{ALICE}\nverify = \"{cert}\""),
        "collections = \"from a\"",
    );
    let check = run(&sb, &["check"]);
    check.expect_code(0);
    assert!(
        check.stdout.contains(&format!("CA file {cert}")),
        "{}",
        check.stdout
    );
    assert!(!sb.exists("status"), "check created the status path");

    // Pinned by fingerprint: named as pinned.
    let sb = sandbox(
        &url,
        &format!(
            "{ALICE}\nfingerprint = \"sha256:{}\"",
            server.cert.sha256_colons
        ),
        "collections = \"from a\"",
    );
    let check = run(&sb, &["check"]);
    check.expect_code(0);
    assert!(
        check
            .stdout
            .contains(&format!("pinned to sha256:{}", server.cert.sha256)),
        "{}",
        check.stdout
    );
}
