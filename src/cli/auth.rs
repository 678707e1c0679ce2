//! `davsync auth STORAGE`: authorizes davsync for a Google account (OAuth2 for installed apps,
//! PKCE, loopback redirect) and stores the tokens in the storage's token file.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime};

use clap::Args;
use davsync::config::ProcessEnv;
use davsync::oauth::{self, Pkce, RedirectError};
use davsync::storage::{StorageKind, google};

use super::{Cli, CliError, complete, load_config};

/// Authorize davsync to use a Google account (OAuth2)
///
/// Runs the OAuth2 flow for installed applications: prints an address to open in a browser
/// (and opens it with $BROWSER or xdg-open where there is one), waits for the browser to come
/// back to a listener on 127.0.0.1, and stores the tokens in the storage's token_file (mode
/// 0600). On a machine without a browser, open the address elsewhere and paste the address the
/// browser ends up at (or just the code) here. Run it again whenever a sync says the
/// authorization was revoked or has expired.
///
/// Output: the address to open and the prompt on stderr, then "Authorized: the tokens of
/// storage STORAGE are in FILE" on stdout.
///
/// Exit status: 0 when the tokens were stored; 1 when the flow failed (no code came back, the
/// token endpoint refused the code or sent no refresh token, the token file could not be
/// written); 2 for an unknown storage or one that is not a Google storage, or a config error.
#[derive(Debug, Args)]
pub struct AuthArgs {
    /// The storage to authorize (of type google_calendar or google_contacts)
    #[arg(value_name = "STORAGE", add = complete::google_storages())]
    storage: String,
}

/// The page the browser shows after the redirect.
const DONE_PAGE: &str = "<!DOCTYPE html><html><head><title>davsync</title></head><body>\
    <p>davsync is authorized. You can close this page.</p></body></html>";

/// The page shown when the redirect carries no usable code.
const FAILED_PAGE: &str = "<!DOCTYPE html><html><head><title>davsync</title></head><body>\
    <p>davsync was not authorized; see the terminal.</p></body></html>";

pub fn cmd_auth(cli: &Cli, args: &AuthArgs) -> Result<(), CliError> {
    let config = load_config(cli)?;
    let storage = config.storages.get(&args.storage).ok_or_else(|| {
        let known: Vec<&str> = config.storages.keys().map(String::as_str).collect();
        CliError::Usage(format!(
            "no storage named {:?} in {} (storages: {})",
            args.storage,
            config.path.display(),
            known.join(", ")
        ))
    })?;
    let StorageKind::Google(google_config) = &storage.kind else {
        return Err(CliError::Usage(format!(
            "storage {}: davsync auth is for storages of type google_calendar or \
             google_contacts; this one needs no authorization step",
            args.storage
        )));
    };
    let client = google::oauth_client(google_config, &ProcessEnv)
        .map_err(|e| CliError::Failed(format!("storage {}: {e}", args.storage)))?;
    let failed = |what: &str, e: &dyn std::fmt::Display| CliError::Failed(format!("{what}: {e}"));

    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| failed("listening on 127.0.0.1 for the redirect", &e))?;
    let port = listener
        .local_addr()
        .map_err(|e| failed("listening on 127.0.0.1", &e))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/");
    let random =
        |what: &str| oauth::random_bytes::<32>().map_err(|e| failed(&format!("random {what}"), &e));
    let pkce = Pkce::from_random(&random("PKCE verifier")?);
    let state = oauth::base64url(&random("state")?[..16]);
    let url = oauth::authorization_url(&client, &redirect_uri, &pkce, &state);

    eprintln!(
        "To authorize davsync for storage {}, open this address in a browser:\n\n{url}\n\n\
         Waiting for the browser to come back to {redirect_uri} ... (on another machine, paste \
         the address the browser ends up at, or the code, here)",
        args.storage
    );
    open_browser(&url);

    let (found, code) = mpsc::channel::<Result<String, RedirectError>>();
    {
        let found = found.clone();
        let state = state.clone();
        thread::spawn(move || listen(&listener, &state, &found));
    }
    thread::spawn(move || read_pasted(&state, &found));
    let code = code
        .recv()
        .map_err(|_| CliError::Failed("no authorization code: standard input closed".into()))?
        .map_err(|e| CliError::Failed(format!("storage {}: {e}", args.storage)))?;

    let http = oauth::source::token_endpoint_client(&google_config.dav.http, &client.token_url)
        .map_err(|e| failed("token endpoint", &e))?;
    let request = oauth::code_request(&client, &code, &pkce.verifier, &redirect_uri);
    let response = oauth::source::send_token_request(&http, &request)
        .map_err(|e| failed("exchanging the code for tokens", &e))?;
    let tokens =
        oauth::parse_token_response(response.status, &response.body, SystemTime::now(), None)
            .map_err(|e| failed(&client.token_url, &e))?;
    if tokens.refresh_token.is_none() {
        return Err(CliError::Failed(format!(
            "{}: the answer has no refresh token, so davsync could not sync unattended; \
             remove davsync's access in the account's security settings and run \
             \"davsync auth {}\" again",
            client.token_url, args.storage
        )));
    }
    oauth::save_tokens(&google_config.token_file, &tokens)
        .map_err(|e| CliError::Failed(e.to_string()))?;
    println!(
        "Authorized: the tokens of storage {} are in {}",
        args.storage,
        google_config.token_file.display()
    );
    Ok(())
}

/// Opens `url` with `$BROWSER` or `xdg-open`, if there is one; never fails.
fn open_browser(url: &str) {
    let browser = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "xdg-open".to_owned());
    // $BROWSER may be a list separated by ':'; the first one is tried.
    let program = browser.split(':').next().unwrap_or("xdg-open").trim();
    let _ = Command::new(program)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// Answers requests on the loopback listener until one carries a code or an error.
fn listen(
    listener: &TcpListener,
    state: &str,
    found: &mpsc::Sender<Result<String, RedirectError>>,
) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let Some(target) = request_target(&stream) else {
            continue;
        };
        match oauth::parse_redirect(&target, state) {
            Err(RedirectError::NoCode) => answer(&mut stream, 404, "not found"),
            result => {
                let page = if result.is_ok() {
                    DONE_PAGE
                } else {
                    FAILED_PAGE
                };
                answer(&mut stream, 200, page);
                let _ = found.send(result);
                return;
            }
        }
    }
}

/// The request target of the request on `stream` (its head is read and dropped).
fn request_target(stream: &TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream);
    let mut start = String::new();
    reader.read_line(&mut start).ok()?;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    start.split(' ').nth(1).map(str::to_owned)
}

fn answer(stream: &mut TcpStream, status: u16, body: &str) {
    let reason = if status == 200 { "OK" } else { "Not Found" };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

/// Takes the first non-empty line pasted on standard input.
fn read_pasted(state: &str, found: &mpsc::Sender<Result<String, RedirectError>>) {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return };
        if let Some(result) = oauth::parse_pasted(&line, state) {
            let _ = found.send(result);
            return;
        }
    }
}
