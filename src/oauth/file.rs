//! The token file: JSON (`access_token`, `refresh_token`, `expires_at` and `obtained_at` in
//! Unix seconds, `token_type`), written atomically (a temporary file in the same directory, then a rename),
//! mode 0600, its new parent directories 0700.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::Tokens;

/// A token file that cannot be read or written. Never shows the file's content.
#[derive(Debug, Error)]
pub enum TokenFileError {
    /// There is no token file: the storage was never authorized.
    #[error("{}: no token file (not authorized yet)", .path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a token file davsync wrote.
    #[error("{}: not a davsync token file ({reason})", .path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the content).
        reason: String,
    },
}

/// Reads the tokens kept in `path`.
pub fn load_tokens(path: &Path) -> Result<Tokens, TokenFileError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TokenFileError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(TokenFileError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let malformed = |reason: &str| TokenFileError::Malformed {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| malformed("not JSON"))?;
    let text = |name: &str| json.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let expires_at = json
        .get("expires_at")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| malformed("no expires_at"))?;
    Ok(Tokens {
        access_token: text("access_token").ok_or_else(|| malformed("no access_token"))?,
        refresh_token: text("refresh_token"),
        expires_at,
        obtained_at: json
            .get("obtained_at")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(|| expires_at.saturating_sub(3600)),
        token_type: text("token_type").unwrap_or_else(|| "Bearer".into()),
    })
}

/// Writes `tokens` to `path` atomically with mode 0600, creating missing parent directories
/// with mode 0700.
pub fn save_tokens(path: &Path, tokens: &Tokens) -> Result<(), TokenFileError> {
    let io = |source: std::io::Error| TokenFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(io)?;
    let json = serde_json::json!({
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_at": tokens.expires_at,
        "obtained_at": tokens.obtained_at,
        "token_type": tokens.token_type,
    });
    let mut text = json.to_string();
    text.push('\n');
    let file_name = path
        .file_name()
        .map_or_else(|| "token".into(), |n| n.to_string_lossy().into_owned());
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(parent)
        .map_err(io)?;
    let mut file = temp.as_file();
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    temp.persist(path).map_err(|e| io(e.error))?;
    if let Ok(dir) = fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/deeper/g.token");
        let tokens = Tokens {
            access_token: "acc".into(),
            refresh_token: Some("ref".into()),
            expires_at: 1234,
            obtained_at: 1000,
            token_type: "Bearer".into(),
        };
        save_tokens(&path, &tokens).unwrap();
        assert_eq!(load_tokens(&path).unwrap(), tokens);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&dir.path().join("new")), 0o700);
        // Written again: still 0600, nothing left behind.
        save_tokens(&path, &tokens).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn errors_name_the_file_never_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.token");
        let e = load_tokens(&missing).unwrap_err();
        assert!(matches!(e, TokenFileError::Missing { .. }));
        assert!(e.to_string().contains("none.token"));
        let bad = dir.path().join("bad.token");
        fs::write(&bad, "secret-looking garbage").unwrap();
        let e = load_tokens(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.token") && !e.contains("garbage"), "{e}");
    }
}
