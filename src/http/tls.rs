//! Certificate pinning: `fingerprint = "sha256:..."` accepts exactly the server certificate with
//! that SHA-256 fingerprint, whoever signed it (self-signed home servers are the usual case),
//! while the handshake signatures are still checked as usual.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, Error, SignatureScheme};
use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(der).iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A verifier whose only judge of the server is `check`, given the end-entity certificate's DER
/// bytes; the handshake signatures are still checked as usual. Pinning judges by fingerprint,
/// `davsync check`'s probe records the certificate and accepts it.
struct EndEntityCheck<F> {
    check: F,
    algorithms: WebPkiSupportedAlgorithms,
}

impl<F> std::fmt::Debug for EndEntityCheck<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndEntityCheck").finish_non_exhaustive()
    }
}

impl<F: Fn(&[u8]) -> Result<(), Error> + Send + Sync> ServerCertVerifier for EndEntityCheck<F> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        (self.check)(end_entity.as_ref()).map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Accepts the one certificate whose SHA-256 fingerprint is `expected` (hex, any case).
fn pin(expected: &str) -> impl Fn(&[u8]) -> Result<(), Error> + Send + Sync + 'static {
    let expected = expected.to_ascii_lowercase();
    move |der| {
        let found = fingerprint(der);
        match found == expected {
            true => Ok(()),
            false => Err(Error::General(format!(
                "the server certificate's fingerprint is sha256:{found}, not the pinned one"
            ))),
        }
    }
}

/// A TLS client configuration whose only judge of the server certificate is `check` (see
/// [`EndEntityCheck`]).
pub(crate) fn config_judged_by(
    check: impl Fn(&[u8]) -> Result<(), Error> + Send + Sync + 'static,
) -> Result<ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = EndEntityCheck {
        check,
        algorithms: provider.signature_verification_algorithms,
    };
    Ok(
        ClientConfig::builder_with_provider(Arc::clone(&provider) as Arc<CryptoProvider>)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth(),
    )
}

/// A TLS client configuration that trusts only the pinned certificate.
pub fn pinned_config(expected: &str) -> Result<ClientConfig, Error> {
    config_judged_by(pin(expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_lower_hex_sha256() {
        assert_eq!(
            fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn only_the_pinned_certificate_passes() {
        let cert = CertificateDer::from(b"not really DER, only hashed".to_vec());
        let verifier = EndEntityCheck {
            check: pin(&fingerprint(cert.as_ref()).to_ascii_uppercase()),
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        };
        let name = ServerName::try_from("dav.example.com").unwrap();
        let now = UnixTime::now();
        assert!(
            verifier
                .verify_server_cert(&cert, &[], &name, &[], now)
                .is_ok()
        );
        let other = CertificateDer::from(b"another".to_vec());
        let refused = verifier
            .verify_server_cert(&other, &[], &name, &[], now)
            .unwrap_err();
        assert!(
            refused.to_string().contains("not the pinned one"),
            "{refused}"
        );
    }
}
