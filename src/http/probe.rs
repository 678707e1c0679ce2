//! A TLS handshake of its own, apart from the HTTP client, for `davsync check`: the protocol
//! version the server agrees to and its certificate (subject, expiry, SHA-256 fingerprint),
//! which the HTTP client does not expose. The certificate is recorded, not judged (judging is
//! the HTTP client's job), and nothing is sent after the handshake: no request, no credentials.
//! The certificate parsing ([`certificate_summary`]) is pure.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ClientConnection;
use rustls::pki_types::ServerName;

use super::tls::fingerprint;

/// What a TLS handshake showed of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSession {
    /// The protocol version agreed on (`TLS 1.3`).
    pub protocol: String,
    /// The certificate's subject common name, if it has one.
    pub subject: Option<String>,
    /// When the certificate expires (`2026-12-08 03:12:00 UTC`), if readable.
    pub not_after: Option<String>,
    /// Lower-case hex SHA-256 of the certificate (what `fingerprint` pins).
    pub fingerprint: String,
}

/// Shakes hands with the server of an `https://` URL and reports the session; the error is a
/// sentence for the user.
pub fn probe(url: &str, timeout: Duration) -> Result<TlsSession, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{url}: no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| super::unresolved_host(&host, &e.to_string()))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let mut tcp = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("{addr}: {}", super::unanswered(&e, timeout)))?;
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    // The certificate is recorded and accepted: judging it is the HTTP client's job.
    let seen: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let record = Arc::clone(&seen);
    let config = super::tls::config_judged_by(move |der| {
        *record.lock().unwrap_or_else(|p| p.into_inner()) = Some(der.to_vec());
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
    let mut conn = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| {
            format!(
                "TLS handshake with {addr}: {}",
                super::unanswered(&e, timeout)
            )
        })?;
    }
    let protocol = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_owned(),
    };
    conn.send_close_notify();
    let _ = conn.complete_io(&mut tcp);
    let _ = tcp.flush();
    let _ = tcp.read(&mut [0u8; 0]);
    let der = seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or_else(|| "the server sent no certificate".to_owned())?;
    let (subject, not_after) = certificate_summary(&der);
    Ok(TlsSession {
        protocol,
        subject,
        not_after,
        fingerprint: fingerprint(&der),
    })
}

/// One DER element: its tag, its content and what follows it.
fn element(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The subject common name and the expiry (`notAfter`) of a DER X.509 certificate, each
/// `None` when it cannot be read.
pub fn certificate_summary(der: &[u8]) -> (Option<String>, Option<String>) {
    let read = || -> Option<(&[u8], &[u8])> {
        let (_, cert, _) = element(der)?;
        let (_, tbs, _) = element(cert)?;
        let mut rest = tbs;
        // version [0], optional
        if rest.first() == Some(&0xa0) {
            rest = element(rest)?.2;
        }
        rest = element(rest)?.2; // serial number
        rest = element(rest)?.2; // signature algorithm
        rest = element(rest)?.2; // issuer
        let (_, validity, rest) = element(rest)?;
        let (_, subject, _) = element(rest)?;
        Some((validity, subject))
    };
    let Some((validity, subject)) = read() else {
        return (None, None);
    };
    let not_after = element(validity)
        .and_then(|(_, _, rest)| element(rest))
        .and_then(|(tag, time, _)| format_time(tag, time));
    (common_name(subject), not_after)
}

/// The first common name (OID 2.5.4.3) in a DER `Name`.
fn common_name(name: &[u8]) -> Option<String> {
    const CN: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let at = name.windows(CN.len()).position(|w| w == CN)?;
    let (_, value, _) = element(&name[at + CN.len()..])?;
    Some(String::from_utf8_lossy(value).into_owned())
}

/// A UTCTime (tag 0x17, `YYMMDDHHMMSSZ`) or GeneralizedTime (0x18, `YYYYMMDDHHMMSSZ`) as
/// `YYYY-MM-DD HH:MM:SS UTC`.
fn format_time(tag: u8, value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    let digits = text.strip_suffix('Z')?;
    let full = match (tag, digits.len()) {
        (0x17, 12) => {
            let year: u32 = digits[..2].parse().ok()?;
            format!("{}{digits}", if year < 50 { "20" } else { "19" })
        }
        (0x18, 14) => digits.to_owned(),
        _ => return None,
    };
    if !full.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!(
        "{}-{}-{} {}:{}:{} UTC",
        &full[..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DER element with a short length.
    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag, u8::try_from(content.len()).unwrap()];
        out.extend_from_slice(content);
        out
    }

    #[test]
    fn reads_subject_and_expiry() {
        let cn = [
            &[0x06, 0x03, 0x55, 0x04, 0x03][..],
            &der(0x0c, b"dav.example.org"),
        ]
        .concat();
        let subject = der(0x30, &der(0x31, &der(0x30, &cn)));
        let validity = der(
            0x30,
            &[der(0x17, b"240101000000Z"), der(0x18, b"20491231235959Z")].concat(),
        );
        let tbs = der(
            0x30,
            &[
                der(0xa0, &der(0x02, &[2])),
                der(0x02, &[7]),
                der(0x30, &[]),
                der(0x30, &[]),
                validity,
                subject,
            ]
            .concat(),
        );
        let cert = der(0x30, &tbs);
        assert_eq!(
            certificate_summary(&cert),
            (
                Some("dav.example.org".to_owned()),
                Some("2049-12-31 23:59:59 UTC".to_owned())
            )
        );
        assert_eq!(certificate_summary(b"\x30\x05ab"), (None, None));
    }

    #[test]
    fn utc_time_years_before_50_are_this_century() {
        assert_eq!(
            format_time(0x17, b"261208031200Z").as_deref(),
            Some("2026-12-08 03:12:00 UTC")
        );
        assert_eq!(
            format_time(0x17, b"991208031200Z").as_deref(),
            Some("1999-12-08 03:12:00 UTC")
        );
        assert_eq!(format_time(0x17, b"26120803Z"), None);
    }
}
