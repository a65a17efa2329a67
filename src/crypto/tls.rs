//! TLS client configuration for the rotators that speak to a directory
//! (rustls with the ring provider, the one already in the tree): a given CA
//! bundle, or the system trust store.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// A rustls client configuration that trusts the certificates in `ca_pem`
/// (PEM, one or more CERTIFICATE blocks), or, with `None`, the system's trust
/// store. TLS 1.2 and 1.3, no client certificate. The error is one line.
pub fn client_config(ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let mut count = 0usize;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("not a PEM certificate bundle ({e})"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("a certificate in the bundle is unusable ({e})"))?;
                count += 1;
            }
            if count == 0 {
                return Err("no PEM CERTIFICATE block in the CA bundle".to_string());
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system store may hold a certificate rustls cannot use; skip it.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(
                    "the system trust store is empty or unreadable; give the directory's CA with ca_file"
                        .to_string(),
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed ({e})"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_bundle_without_certificates() {
        let err = client_config(Some(b"not pem at all")).unwrap_err();
        assert!(err.contains("no PEM CERTIFICATE"), "{err}");
    }

    #[test]
    fn refuses_a_damaged_certificate() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(client_config(Some(pem)).is_err());
    }
}
