//! HTTPS for `serve`: rustls with the aws-lc provider, TLS 1.2 and 1.3 only, HTTP/2 and
//! HTTP/1.1 by ALPN (actix adds both protocols), the certificate chain as given.

use std::sync::Arc;

use anyhow::{Context, anyhow};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsSettings;

/// Reads the PEM files and checks that the key belongs to the leaf certificate; every failure
/// names its variable.
pub fn server_config(tls: &TlsSettings) -> anyhow::Result<ServerConfig> {
    let cert_path = tls.cert_file.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .map_err(|e| anyhow!("TLS_CERT_FILE: {cert_path}: cannot read: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("TLS_CERT_FILE: {cert_path}: not a PEM certificate chain: {e}"))?;
    if certs.is_empty() {
        return Err(anyhow!("TLS_CERT_FILE: {cert_path}: holds no certificate"));
    }
    let key_path = tls.key_file.display();
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|e| anyhow!("TLS_KEY_FILE: {key_path}: no readable PEM private key: {e}"))?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS: the crypto provider lacks TLS 1.2/1.3")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            anyhow!("TLS_KEY_FILE: {key_path}: does not fit the certificate in TLS_CERT_FILE: {e}")
        })
}
