//! OAuth2 for installed applications (RFC 6749, RFC 8252 loopback redirect, RFC 7636 PKCE), as
//! Google accounts need it.
//!
//! The protocol core here is sans-IO: it builds the authorization URL and the token requests as
//! data, parses the redirect and the token endpoint's answers, and decides when a token needs
//! refreshing from a given `now`. [`file`] keeps tokens in a file (atomic writes, mode 0600);
//! [`source`] is the thin I/O part: a [`crate::http::TokenSource`] over a token file that
//! refreshes through the token endpoint.
//!
//! Secrets (tokens, codes, the client secret, the PKCE verifier) never appear in `Debug`
//! output, `Display` or error messages.

pub mod file;
pub mod source;

use std::time::{Duration, SystemTime};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};
use thiserror::Error;

pub use file::{TokenFileError, load_tokens, save_tokens};
pub use source::FileTokenSource;

/// A token with less than this left is refreshed before use.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// What is left unencoded in a query component (RFC 3986 unreserved characters).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An OAuth2 client as registered with the provider, and the provider's endpoints.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The client id.
    pub client_id: String,
    /// The client secret (Google's "Desktop app" clients have one, which is not secret in the
    /// usual sense but still never printed).
    pub client_secret: Option<String>,
    /// The authorization endpoint.
    pub authorize_url: String,
    /// The token endpoint.
    pub token_url: String,
    /// Space-separated scopes.
    pub scope: String,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<hidden>"),
            )
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .field("scope", &self.scope)
            .finish()
    }
}

/// A PKCE pair (RFC 7636, method S256): the verifier stays here, the challenge goes into the
/// authorization URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Pkce {
    /// 43 characters of base64url: sent with the code to the token endpoint.
    pub verifier: String,
    /// `BASE64URL(SHA256(verifier))`.
    pub challenge: String,
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pkce(<hidden>)")
    }
}

impl Pkce {
    /// The pair whose verifier is the base64url form of `random` (32 random bytes).
    pub fn from_random(random: &[u8; 32]) -> Pkce {
        let verifier = base64url(random);
        let challenge = pkce_challenge(&verifier);
        Pkce {
            verifier,
            challenge,
        }
    }
}

/// The S256 challenge of a verifier: `BASE64URL(SHA256(verifier))`, without padding.
pub fn pkce_challenge(verifier: &str) -> String {
    base64url(&Sha256::digest(verifier.as_bytes()))
}

/// Base64url without padding (RFC 4648 §5).
pub fn base64url(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// The URL the user opens in a browser: the authorization code flow with PKCE, asking for a
/// refresh token (`access_type=offline`, `prompt=consent`, so a second authorization gets a
/// new one too).
pub fn authorization_url(
    client: &OAuthClient,
    redirect_uri: &str,
    pkce: &Pkce,
    state: &str,
) -> String {
    let params = [
        ("client_id", client.client_id.as_str()),
        ("redirect_uri", redirect_uri),
        ("response_type", "code"),
        ("scope", client.scope.as_str()),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", state),
        ("access_type", "offline"),
        ("prompt", "consent"),
    ];
    let separator = if client.authorize_url.contains('?') {
        '&'
    } else {
        '?'
    };
    format!(
        "{}{separator}{}",
        client.authorize_url,
        form_encode(&params)
    )
}

/// `name=value&...`, percent-encoded (also the `application/x-www-form-urlencoded` body of a
/// token request).
fn form_encode(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                utf8_percent_encode(name, QUERY),
                utf8_percent_encode(value, QUERY)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Why a redirect (or what was pasted) carries no usable code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RedirectError {
    /// The provider answered `error=...` (the user denied access, a bad client id, ...).
    #[error("the authorization was refused: {error}{}", .description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// The `error` parameter.
        error: String,
        /// The `error_description` parameter, if any.
        description: Option<String>,
    },
    /// The `state` does not match the one sent: not the answer to this authorization.
    #[error("the redirect's state does not match this authorization (an old or foreign link?)")]
    StateMismatch,
    /// Neither a code nor an error.
    #[error("the redirect carries no authorization code")]
    NoCode,
}

/// The query parameters of a request target or URL (`/?a=b`, `http://host/?a=b`).
fn query_pairs(target: &str) -> Vec<(String, String)> {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let query = query.split('#').next().unwrap_or("");
    let fake = format!("http://localhost/?{query}");
    reqwest::Url::parse(&fake)
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// The authorization code in the redirect to the loopback listener (its request target or the
/// whole URL), checked against the `state` sent.
pub fn parse_redirect(target: &str, expected_state: &str) -> Result<String, RedirectError> {
    let pairs = query_pairs(target);
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    if let Some(error) = get("error") {
        return Err(RedirectError::Refused {
            error,
            description: get("error_description"),
        });
    }
    let code = get("code").filter(|c| !c.is_empty());
    let Some(code) = code else {
        return Err(RedirectError::NoCode);
    };
    if get("state").as_deref() != Some(expected_state) {
        return Err(RedirectError::StateMismatch);
    }
    Ok(code)
}

/// What the user pasted: the whole redirect URL (checked as [`parse_redirect`] checks it) or
/// the bare code. `None` for an empty line.
pub fn parse_pasted(line: &str, expected_state: &str) -> Option<Result<String, RedirectError>> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    if line.contains("code=") || line.contains("error=") || line.contains('?') {
        return Some(parse_redirect(line, expected_state));
    }
    Some(Ok(line.to_owned()))
}

/// A request to the token endpoint, as data: POST `url` with a form body.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The token endpoint.
    pub url: String,
    /// `application/x-www-form-urlencoded` body (holds secrets).
    pub body: String,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenRequest({}, <hidden body>)", self.url)
    }
}

fn with_client<'a>(client: &'a OAuthClient, mut params: Vec<(&'a str, &'a str)>) -> String {
    params.push(("client_id", &client.client_id));
    if let Some(secret) = &client.client_secret {
        params.push(("client_secret", secret));
    }
    form_encode(&params)
}

/// Exchanges an authorization code (with the PKCE verifier) for tokens.
pub fn code_request(
    client: &OAuthClient,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> TokenRequest {
    TokenRequest {
        url: client.token_url.clone(),
        body: with_client(
            client,
            vec![
                ("grant_type", "authorization_code"),
                ("code", code),
                ("code_verifier", verifier),
                ("redirect_uri", redirect_uri),
            ],
        ),
    }
}

/// Asks for a new access token with the refresh token.
pub fn refresh_request(client: &OAuthClient, refresh_token: &str) -> TokenRequest {
    TokenRequest {
        url: client.token_url.clone(),
        body: with_client(
            client,
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        ),
    }
}

/// Access and refresh token, with the moment the access token expires.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    /// The bearer token sent to the server.
    pub access_token: String,
    /// The token that gets new access tokens; `None` if the provider gave none.
    pub refresh_token: Option<String>,
    /// When the access token expires, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// When it was obtained, in seconds since the Unix epoch.
    pub obtained_at: u64,
    /// The token type (`Bearer`).
    pub token_type: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tokens(<hidden>, expires_at: {}, refresh token: {})",
            self.expires_at,
            self.refresh_token.is_some()
        )
    }
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Tokens {
    /// Whether the access token has less than [`REFRESH_MARGIN`] left at `now` (or, for a
    /// token that lives less than twice that, less than half its lifetime: a provider handing
    /// out 30-second tokens would otherwise be asked for a new one before every request).
    pub fn needs_refresh(&self, now: SystemTime) -> bool {
        let lifetime = self.expires_at.saturating_sub(self.obtained_at);
        let margin = REFRESH_MARGIN.as_secs().min(lifetime / 2);
        unix_secs(now).saturating_add(margin) >= self.expires_at
    }
}

/// A token endpoint's answer that gives no tokens.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OAuthError {
    /// `{"error": "invalid_grant"}`: the refresh token (or code) is revoked, expired or
    /// unknown; only a new authorization helps.
    #[error("the provider refused the grant (invalid_grant{}): the authorization was revoked or has expired", .description.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    InvalidGrant {
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// Another error answer (`invalid_client`, a 5xx, ...).
    #[error("the token endpoint answered HTTP {status}{}", .error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The `error` (and description) the answer gave, if any.
        error: Option<String>,
    },
    /// A 2xx answer that is not the expected JSON.
    #[error("the token endpoint's answer is not usable: {0}")]
    Malformed(String),
}

/// Parses the token endpoint's answer (status and body) received at `now`. A refresh answer
/// usually has no new refresh token: `previous_refresh` is kept then.
pub fn parse_token_response(
    status: u16,
    body: &[u8],
    now: SystemTime,
    previous_refresh: Option<&str>,
) -> Result<Tokens, OAuthError> {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let text = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    if !(200..300).contains(&status) {
        let error = text("error");
        if error.as_deref() == Some("invalid_grant") {
            return Err(OAuthError::InvalidGrant {
                description: text("error_description"),
            });
        }
        return Err(OAuthError::Refused {
            status,
            error: error.map(|e| match text("error_description") {
                Some(d) => format!("{e} ({d})"),
                None => e,
            }),
        });
    }
    if json.is_none() {
        return Err(OAuthError::Malformed("not JSON".into()));
    }
    let access_token = text("access_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::Malformed("no access_token".into()))?;
    let token_type = text("token_type").unwrap_or_else(|| "Bearer".into());
    if !token_type.eq_ignore_ascii_case("bearer") {
        return Err(OAuthError::Malformed(format!(
            "token_type {token_type:?} (expected Bearer)"
        )));
    }
    let expires_in = json
        .as_ref()
        .and_then(|j| j.get("expires_in"))
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(3600);
    Ok(Tokens {
        access_token,
        refresh_token: text("refresh_token").or_else(|| previous_refresh.map(str::to_owned)),
        expires_at: unix_secs(now).saturating_add(expires_in),
        obtained_at: unix_secs(now),
        token_type,
    })
}

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    use std::io::Read;
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> OAuthClient {
        OAuthClient {
            client_id: "id.apps".into(),
            client_secret: Some("s3cret".into()),
            authorize_url: "https://auth.example/o/auth".into(),
            token_url: "https://auth.example/token".into(),
            scope: "https://www.googleapis.com/auth/calendar".into(),
        }
    }

    #[test]
    fn pkce_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let pkce = Pkce::from_random(&[7; 32]);
        assert_eq!(pkce.verifier.len(), 43);
        assert_eq!(pkce.challenge, pkce_challenge(&pkce.verifier));
        assert!(!format!("{pkce:?}").contains(&pkce.verifier));
    }

    #[test]
    fn authorization_url_has_every_parameter() {
        let pkce = Pkce::from_random(&[1; 32]);
        let url = authorization_url(&client(), "http://127.0.0.1:4242/", &pkce, "st4te");
        assert!(url.starts_with("https://auth.example/o/auth?client_id=id.apps&"));
        let pairs = query_pairs(&url);
        let get = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("redirect_uri"), Some("http://127.0.0.1:4242/"));
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(
            get("scope"),
            Some("https://www.googleapis.com/auth/calendar")
        );
        assert_eq!(get("code_challenge"), Some(pkce.challenge.as_str()));
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert_eq!(get("state"), Some("st4te"));
        assert_eq!(get("access_type"), Some("offline"));
        assert_eq!(get("prompt"), Some("consent"));
        assert!(!url.contains("s3cret") && !url.contains(&pkce.verifier));
    }

    #[test]
    fn redirects_give_the_code_or_say_why_not() {
        assert_eq!(
            parse_redirect("/?state=xy&code=4%2F0Ab&scope=x", "xy"),
            Ok("4/0Ab".into())
        );
        assert_eq!(
            parse_redirect("http://127.0.0.1:1/?code=c&state=other", "xy"),
            Err(RedirectError::StateMismatch)
        );
        assert_eq!(
            parse_redirect("/?code=c", "xy"),
            Err(RedirectError::StateMismatch)
        );
        assert_eq!(
            parse_redirect("/?error=access_denied&state=xy", "xy"),
            Err(RedirectError::Refused {
                error: "access_denied".into(),
                description: None
            })
        );
        assert_eq!(
            parse_redirect("/favicon.ico", "xy"),
            Err(RedirectError::NoCode)
        );
        assert_eq!(parse_pasted("  \n", "xy"), None);
        assert_eq!(parse_pasted(" 4/0Abc \n", "xy"), Some(Ok("4/0Abc".into())));
        assert_eq!(
            parse_pasted("http://127.0.0.1:5/?code=k&state=xy", "xy"),
            Some(Ok("k".into()))
        );
    }

    #[test]
    fn token_requests_are_forms() {
        let request = code_request(&client(), "c/1", "verif", "http://127.0.0.1:9/");
        assert_eq!(request.url, "https://auth.example/token");
        assert_eq!(
            request.body,
            "grant_type=authorization_code&code=c%2F1&code_verifier=verif&\
             redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2F&client_id=id.apps&client_secret=s3cret"
        );
        let refresh = refresh_request(&client(), "r1");
        assert_eq!(
            refresh.body,
            "grant_type=refresh_token&refresh_token=r1&client_id=id.apps&client_secret=s3cret"
        );
        assert!(!format!("{refresh:?}").contains("r1"));
        assert!(!format!("{:?}", client()).contains("s3cret"));
    }

    #[test]
    fn token_responses() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let tokens = parse_token_response(
            200,
            br#"{"access_token":"a1","expires_in":3599,"refresh_token":"r1","token_type":"Bearer","scope":"x"}"#,
            now,
            None,
        )
        .unwrap();
        assert_eq!(tokens.access_token, "a1");
        assert_eq!(tokens.refresh_token.as_deref(), Some("r1"));
        assert_eq!(tokens.expires_at, 4599);
        assert!(!format!("{tokens:?}").contains("a1"));
        assert!(!tokens.needs_refresh(now));
        assert!(!tokens.needs_refresh(now + Duration::from_secs(3538)));
        assert!(tokens.needs_refresh(now + Duration::from_secs(3540)));
        // A refresh answer without a refresh token keeps the old one.
        let refreshed = parse_token_response(
            200,
            br#"{"access_token":"a2","expires_in":60,"token_type":"bearer"}"#,
            now,
            Some("r1"),
        )
        .unwrap();
        assert_eq!(refreshed.refresh_token.as_deref(), Some("r1"));
        // A one-minute token is used for its first half.
        assert!(!refreshed.needs_refresh(now + Duration::from_secs(29)));
        assert!(refreshed.needs_refresh(now + Duration::from_secs(30)));
        assert_eq!(
            parse_token_response(
                400,
                br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
                now,
                Some("r1")
            ),
            Err(OAuthError::InvalidGrant {
                description: Some("Token has been expired or revoked.".into())
            })
        );
        assert_eq!(
            parse_token_response(401, br#"{"error":"invalid_client"}"#, now, None),
            Err(OAuthError::Refused {
                status: 401,
                error: Some("invalid_client".into())
            })
        );
        assert!(matches!(
            parse_token_response(200, b"<html>", now, None),
            Err(OAuthError::Malformed(_))
        ));
        assert!(matches!(
            parse_token_response(
                200,
                br#"{"access_token":"a","token_type":"mac"}"#,
                now,
                None
            ),
            Err(OAuthError::Malformed(_))
        ));
    }
}
