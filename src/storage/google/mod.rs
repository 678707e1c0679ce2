//! Google Calendar and Google Contacts: Google's CalDAV and CardDAV servers with OAuth2 bearer
//! tokens ([`crate::oauth`]). The storage is a [`DavStorage`] whose client gets its tokens
//! from the storage's token file, refreshing them as needed.

pub mod config;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::config::Env;
use crate::filter::ItemFilter;
use crate::http::{Clients, Credentials};
use crate::oauth::{FileTokenSource, OAuthClient};
use crate::storage::StorageError;
use crate::storage::dav::DavStorage;

pub use config::{GoogleConfig, parse_config};

/// The OAuth2 client of a Google storage, its client secret resolved now.
pub fn oauth_client(config: &GoogleConfig, env: &dyn Env) -> Result<OAuthClient, StorageError> {
    let client_secret = config
        .client_secret
        .as_ref()
        .map(|s| s.resolve(env))
        .transpose()
        .map_err(|e| StorageError::Other(format!("client_secret: {e}")))?;
    Ok(OAuthClient {
        client_id: config.client_id.clone(),
        client_secret,
        authorize_url: config.authorize_url.clone(),
        token_url: config.token_url.clone(),
        scope: config.scope().to_owned(),
    })
}

/// The token sources of one run, one per token file.
#[derive(Debug, Default)]
pub struct TokenSources {
    by_file: Mutex<HashMap<PathBuf, Arc<FileTokenSource>>>,
}

/// Opens a Google storage: a DAV storage whose bearer tokens come from the token file (one
/// source per file in a run, from `sources`).
pub fn open(
    config: &GoogleConfig,
    filter: &ItemFilter,
    env: &dyn Env,
    clients: &Clients,
    sources: &TokenSources,
) -> Result<DavStorage, StorageError> {
    let source = {
        let mut by_file = sources
            .by_file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match by_file.get(&config.token_file) {
            Some(source) => Arc::clone(source),
            None => {
                let client = oauth_client(config, env)?;
                let source = Arc::new(
                    FileTokenSource::new(
                        &config.name,
                        client,
                        config.token_file.clone(),
                        &config.dav.http,
                    )
                    .map_err(|e| StorageError::Other(e.to_string()))?,
                );
                by_file.insert(config.token_file.clone(), Arc::clone(&source));
                source
            }
        }
    };
    let credentials = Credentials::OAuth(source);
    let http = clients
        .get(&config.dav.http, config.dav.concurrency, credentials)
        .map_err(|e| StorageError::Other(e.to_string()))?;
    // The token file is the account: one per authorization.
    Ok(DavStorage::new(&config.dav, filter, http)
        .for_account(&config.token_file.display().to_string()))
}
