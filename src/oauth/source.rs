//! [`FileTokenSource`]: the [`TokenSource`] of an OAuth2 storage, over its token file. The only
//! part of the OAuth2 code that does I/O during a sync: it reads the token file, refreshes
//! through the token endpoint and writes the new tokens back.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use super::{OAuthClient, OAuthError, TokenFileError, Tokens, load_tokens, save_tokens};
use crate::http::{DavRequest, HttpClient, HttpOptions, TokenError, TokenSource};

/// Tokens of one storage, kept in its token file and refreshed when about to expire or after
/// a 401. Refreshes are serialized: concurrent requests that need one refresh once.
#[derive(Debug)]
pub struct FileTokenSource {
    storage: String,
    client: OAuthClient,
    path: PathBuf,
    /// Talks to the token endpoint only, with the storage's TLS settings and timeout.
    http: HttpClient,
    /// The tokens, once read from the file; the lock also serializes refreshes.
    tokens: Mutex<Option<Tokens>>,
}

impl FileTokenSource {
    /// The source of storage `storage` (named in "authorize again" messages), with its tokens
    /// in `path`; `http` gives the storage's TLS settings, timeout and user agent for the token
    /// endpoint.
    pub fn new(
        storage: &str,
        client: OAuthClient,
        path: PathBuf,
        http: &HttpOptions,
    ) -> Result<FileTokenSource, crate::http::HttpError> {
        let http = token_endpoint_client(http, &client.token_url)?;
        Ok(FileTokenSource {
            storage: storage.to_owned(),
            client,
            path,
            http,
            tokens: Mutex::new(None),
        })
    }

    fn authorize_again(&self, reason: String) -> TokenError {
        TokenError::AuthorizeAgain {
            storage: self.storage.clone(),
            reason,
        }
    }

    /// The tokens, read from the file the first time.
    fn current<'a>(&self, slot: &'a mut Option<Tokens>) -> Result<&'a mut Tokens, TokenError> {
        if slot.is_none() {
            let tokens = load_tokens(&self.path).map_err(|e| match e {
                TokenFileError::Missing { .. } => {
                    self.authorize_again(format!("storage {}: {e}", self.storage))
                }
                other => TokenError::Failed(other.to_string()),
            })?;
            *slot = Some(tokens);
        }
        slot.as_mut()
            .ok_or_else(|| TokenError::Failed("token file not loaded".into()))
    }

    /// Refreshes `tokens` through the token endpoint and writes them to the file.
    fn refresh(&self, tokens: &mut Tokens) -> Result<(), TokenError> {
        let Some(refresh_token) = tokens.refresh_token.clone() else {
            return Err(self.authorize_again(format!(
                "{}: the access token expired and there is no refresh token",
                self.path.display()
            )));
        };
        let request = super::refresh_request(&self.client, &refresh_token);
        let response = send_token_request(&self.http, &request)
            .map_err(|e| TokenError::Failed(format!("refreshing the access token: {e}")))?;
        let fresh = super::parse_token_response(
            response.status,
            &response.body,
            SystemTime::now(),
            Some(&refresh_token),
        )
        .map_err(|e| match e {
            OAuthError::InvalidGrant { .. } => self.authorize_again(format!(
                "storage {}: the authorization was revoked or has expired (the token endpoint \
                 answered invalid_grant)",
                self.storage
            )),
            other => TokenError::Failed(format!("{}: {other}", self.client.token_url)),
        })?;
        save_tokens(&self.path, &fresh).map_err(|e| TokenError::Failed(e.to_string()))?;
        *tokens = fresh;
        Ok(())
    }
}

impl TokenSource for FileTokenSource {
    fn access_token(&self) -> Result<String, TokenError> {
        let mut slot = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let tokens = self.current(&mut slot)?;
        if tokens.needs_refresh(SystemTime::now()) {
            self.refresh(tokens)?;
        }
        Ok(tokens.access_token.clone())
    }

    fn refresh_after_refusal(&self, refused: &str) -> Result<String, TokenError> {
        let mut slot = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let tokens = self.current(&mut slot)?;
        if tokens.access_token == refused {
            self.refresh(tokens)?;
        }
        Ok(tokens.access_token.clone())
    }
}

/// A client for the token endpoint `token_url` with the TLS settings, timeout and user agent
/// of a storage's HTTP options. It counts against no `max_connections` limit: a refresh is
/// asked for while a request of the storage may hold a slot, and must not wait for another.
pub fn token_endpoint_client(
    http: &HttpOptions,
    token_url: &str,
) -> Result<HttpClient, crate::http::HttpError> {
    let options = HttpOptions {
        url: token_url.to_owned(),
        username: None,
        password: None,
        ..http.clone()
    };
    HttpClient::new(&options, 1, crate::http::Credentials::None)
}

/// POSTs a token request (the body is a form).
pub fn send_token_request(
    http: &HttpClient,
    request: &super::TokenRequest,
) -> Result<crate::http::DavResponse, crate::http::HttpError> {
    let mut post = DavRequest::new("POST", request.url.clone())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json");
    post.body = request.body.clone().into_bytes();
    http.send(&post)
}
