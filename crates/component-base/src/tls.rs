//! TLS helpers: PEM loading, rustls server/client configuration and
//! extraction of the Kubernetes identity (CN = user, O = groups) from a
//! client certificate.
//!
//! All configurations use the `ring` crypto provider explicitly, so they work
//! whatever process-wide default provider is (or is not) installed.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WantsClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ConfigBuilder, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};

pub use rustls;
pub use tokio_rustls;

/// The crypto provider every ferrokube TLS config uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parse every certificate in a PEM buffer. Errors when there is none.
pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let mut rd = pem;
    let certs = rustls_pemfile::certs(&mut rd)
        .collect::<std::result::Result<Vec<_>, _>>()
        .context("parsing PEM certificates")?;
    if certs.is_empty() {
        bail!("no certificates found in PEM data");
    }
    Ok(certs)
}

/// Parse the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM buffer.
pub fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    let mut rd = pem;
    rustls_pemfile::private_key(&mut rd)
        .context("parsing PEM private key")?
        .ok_or_else(|| anyhow!("no private key found in PEM data"))
}

/// Load every certificate from a PEM file.
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>> {
    let path = path.as_ref();
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_certs(&data).with_context(|| format!("loading certificates from {}", path.display()))
}

/// Load the first private key from a PEM file.
pub fn load_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>> {
    let path = path.as_ref();
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_key(&data).with_context(|| format!("loading private key from {}", path.display()))
}

/// A root store holding the given certificates.
pub fn root_store(certs: &[CertificateDer<'static>]) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots
            .add(c.clone())
            .map_err(|e| anyhow!("invalid CA certificate: {e}"))?;
    }
    Ok(roots)
}

/// Build a server config from in-memory certificates. Client certificates are
/// requested but optional; when `client_ca` is given, presented certificates
/// must chain to it. ALPN offers h2 and http/1.1.
pub fn server_config_from(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<Vec<CertificateDer<'static>>>,
) -> Result<ServerConfig> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("selecting TLS protocol versions")?;
    let builder = match client_ca {
        Some(ca) => {
            let roots = Arc::new(root_store(&ca)?);
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| anyhow!("building client certificate verifier: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .context("serving certificate and key do not match or are invalid")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Build a server config from PEM files (see [`server_config_from`]).
pub fn server_config(
    cert: impl AsRef<Path>,
    key: impl AsRef<Path>,
    client_ca: Option<&Path>,
) -> Result<ServerConfig> {
    let chain = load_certs(cert)?;
    let key = load_key(key)?;
    let ca = match client_ca {
        Some(p) => Some(load_certs(p)?),
        None => None,
    };
    server_config_from(chain, key, ca)
}

/// Build a client config trusting `ca` and, optionally, authenticating with a
/// client certificate. ALPN is left empty (HTTP/1.1 is assumed by servers);
/// callers may set `alpn_protocols` themselves.
pub fn client_config_from(
    ca: &[CertificateDer<'static>],
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("selecting TLS protocol versions")?
        .with_root_certificates(root_store(ca)?);
    let cfg = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .context("client certificate and key do not match or are invalid")?,
        None => builder.with_no_client_auth(),
    };
    Ok(cfg)
}

/// Accepts any server certificate; the handshake's signatures are still
/// checked.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client config builder that does not verify the server's certificate
/// (as upstream talks to kubelets without `--kubelet-certificate-authority`,
/// and HTTPS probes); finish it with `with_client_auth_cert` or
/// `with_no_client_auth`. ALPN is left to the caller.
pub fn insecure_client_builder() -> Result<ConfigBuilder<ClientConfig, WantsClientCert>> {
    let provider = provider();
    Ok(ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("selecting TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider))))
}

/// The Kubernetes identity in a client certificate: the subject CommonName is
/// the user name, each Organization is a group. `None` when the certificate
/// does not parse or has no usable CommonName.
pub fn peer_identity(cert: &CertificateDer<'_>) -> Option<(String, Vec<String>)> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let cn = subject
        .iter_common_name()
        .find_map(|a| a.as_str().ok())
        .map(str::to_string)
        .filter(|s| !s.is_empty())?;
    let groups = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(str::to_string)
        .collect();
    Some((cn, groups))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs;

    #[test]
    fn parse_errors_do_not_panic() {
        assert!(parse_certs(b"").is_err());
        assert!(parse_certs(b"garbage").is_err());
        assert!(
            parse_key(b"-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n").is_err()
        );
        assert!(load_certs("/nonexistent/file.crt").is_err());
        assert!(peer_identity(&CertificateDer::from(vec![1u8, 2, 3])).is_none());
    }

    #[test]
    fn server_config_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, ca_key) = certs::generate_ca("test-ca").unwrap();
        let (crt, key) = certs::generate_serving_cert(
            &ca,
            &ca_key,
            "srv",
            &["localhost".to_string()],
            &["127.0.0.1".parse().unwrap()],
        )
        .unwrap();
        std::fs::write(dir.path().join("ca.crt"), &ca).unwrap();
        std::fs::write(dir.path().join("s.crt"), &crt).unwrap();
        std::fs::write(dir.path().join("s.key"), &key).unwrap();
        let cfg = server_config(
            dir.path().join("s.crt"),
            dir.path().join("s.key"),
            Some(&dir.path().join("ca.crt")),
        )
        .unwrap();
        assert_eq!(
            cfg.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        // Mismatched key is an error, not a panic.
        let (_, other_key) = certs::generate_ca("other").unwrap();
        std::fs::write(dir.path().join("o.key"), &other_key).unwrap();
        assert!(server_config(dir.path().join("s.crt"), dir.path().join("o.key"), None).is_err());
    }

    #[tokio::test]
    async fn insecure_client_accepts_an_untrusted_server() {
        let (ca, ca_key) = certs::generate_ca("untrusted-ca").unwrap();
        let (crt, key) =
            certs::generate_serving_cert(&ca, &ca_key, "srv", &["srv.example".into()], &[])
                .unwrap();
        let server = server_config_from(
            parse_certs(crt.as_bytes()).unwrap(),
            parse_key(key.as_bytes()).unwrap(),
            None,
        )
        .unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
            loop {
                let (tcp, _) = l.accept().await.unwrap();
                let _ = acceptor.accept(tcp).await;
            }
        });
        let connect = |cfg: ClientConfig| async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            // A name the certificate does not hold either.
            let name = ServerName::try_from("other.example").unwrap();
            tokio_rustls::TlsConnector::from(Arc::new(cfg))
                .connect(name, tcp)
                .await
        };
        let insecure = insecure_client_builder().unwrap().with_no_client_auth();
        assert!(connect(insecure).await.is_ok());
        // A verifying client refuses the same server.
        let (other_ca, _) = certs::generate_ca("other").unwrap();
        let verifying =
            client_config_from(&parse_certs(other_ca.as_bytes()).unwrap(), None).unwrap();
        assert!(connect(verifying).await.is_err());
    }
}
