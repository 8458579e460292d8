//! TLS to a broker with rustls (ring provider; no OpenSSL, simple ARM cross builds): a CA file
//! or the system roots, optional client certificate and key (mutual TLS). A key that cannot be
//! read, or does not match its certificate, is an error at start-up, not at first connect.
//!
//! This module knows files, not config: [`TlsFiles`] is what it needs, and `config` provides
//! it (`From<&config::Broker>`), so the dependency runs one way (config → tls).

use anyhow::{bail, Context as _};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// The files a TLS client configuration is built from.
#[derive(Debug, Clone, Copy, Default)]
pub struct TlsFiles<'a> {
    /// CA bundle; `None` = the system's roots.
    pub ca_file: Option<&'a Path>,
    /// Client certificate chain (mutual TLS), with `key_file`.
    pub cert_file: Option<&'a Path>,
    /// Client private key, with `cert_file`.
    pub key_file: Option<&'a Path>,
}

/// The rustls client configuration for `files` (e.g. a `&config::Broker`).
pub fn client_config<'a>(files: impl Into<TlsFiles<'a>>) -> anyhow::Result<ClientConfig> {
    let b: TlsFiles<'a> = files.into();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match b.ca_file {
        Some(ca) => {
            let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("cannot read CA file {}", ca.display()))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("bad PEM in CA file {}", ca.display()))?;
            if certs.is_empty() {
                bail!("CA file {} holds no certificate", ca.display());
            }
            for c in certs {
                roots.add(c).context("bad CA certificate")?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
    let config = match (b.cert_file, b.key_file) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer> = CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("cannot read certificate {}", cert.display()))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("bad PEM in certificate {}", cert.display()))?;
            if chain.is_empty() {
                bail!("certificate file {} holds no certificate", cert.display());
            }
            // Never include key material in errors or logs: only the path.
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|_| anyhow::anyhow!("cannot read private key {}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| anyhow::anyhow!("client certificate and key do not match: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => bail!("cert_file and key_file go together"),
    };
    Ok(config)
}
