//! TLS to a TAK server (`ssl://`) with rustls and the ring provider, like the gateway's MQTT
//! TLS: a CA file (TAK servers mostly use a private CA) or the system roots, and the client
//! certificate and key TAK servers require. Read at start-up, so a bad file is a config error.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// The rustls client configuration from PEM files; errors name the file, never key material.
pub fn client_config(
    ca_file: Option<&Path>,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(ca) => {
            let certs = read_certs(ca)?;
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| format!("bad CA certificate in {}: {e}", ca.display()))?;
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
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_root_certificates(roots);
    let config = match (cert_file, key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let k = PrivateKeyDer::from_pem_file(key)
                .map_err(|_| format!("cannot read private key {}", key.display()))?;
            builder
                .with_client_auth_cert(chain, k)
                .map_err(|e| format!("client certificate and key do not match: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("cert_file and key_file go together".into()),
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad PEM in {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// Where a TAK server is: `tcp://host:port` or `ssl://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses a `[[tak]] url`; the ports default to TAK's 8087 (tcp) and 8089 (ssl).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("ssl://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("tcp://") {
            (false, r)
        } else {
            return Err(format!("{url:?}: scheme must be tcp:// or ssl://"));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{url:?}: bad port {p:?}"))?;
                (h, port)
            }
            _ => (rest, if tls { 8089 } else { 8087 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(['/', '@', '?']) {
            return Err(format!("{url:?}: missing or bad host"));
        }
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = Endpoint::parse("ssl://tak.example.org").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port),
            (true, "tak.example.org", 8089)
        );
        let e = Endpoint::parse("tcp://127.0.0.1:9000").unwrap();
        assert_eq!((e.tls, e.port), (false, 9000));
        let e = Endpoint::parse("tcp://[::1]:8087").unwrap();
        assert_eq!(e.host, "::1");
        assert!(Endpoint::parse("udp://x:1").is_err());
        assert!(Endpoint::parse("tcp://:1").is_err());
        assert!(Endpoint::parse("tcp://h:0").is_err());
    }
}
