//! HTTPS for the simulator: a throwaway CA and a server certificate for `127.0.0.1`/`localhost`
//! and Azure's host names (`management.azure.com`, `login.microsoftonline.com`,
//! `*.vault.azure.net`, for clients that come through the `proxy`) generated at start (rcgen on ring), and the accept loop that serves an axum router over
//! tokio-rustls + hyper-util on one loopback listener.

use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Failure to set up TLS or a listener.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen could not generate the CA or server certificate.
    #[error("generating the simulator's {which} certificate failed")]
    GenerateCertificate {
        /// `CA` or `server`.
        which: &'static str,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// rustls refused the generated certificate or key.
    #[error("building the rustls server configuration failed")]
    ServerConfig(#[source] rustls::Error),
    /// Binding a loopback port failed.
    #[error("binding a listener on 127.0.0.1 failed")]
    Bind(#[source] std::io::Error),
}

/// The CA (as PEM, for clients to trust) and the rustls configuration serving its leaf.
pub(crate) struct Tls {
    /// PEM of the CA certificate that signed the server certificate.
    pub(crate) ca_pem: String,
    /// Server configuration (HTTP/2 and HTTP/1.1 via ALPN).
    pub(crate) acceptor: TlsAcceptor,
}

impl Tls {
    /// Generates a CA and a server certificate with SANs `127.0.0.1`, `::1` and `localhost`.
    pub(crate) fn generate() -> Result<Tls, TlsError> {
        let ca_error = |source| TlsError::GenerateCertificate { which: "CA", source };
        let server_error = |source| TlsError::GenerateCertificate { which: "server", source };

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(ca_error)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "azsim test CA");
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_key = KeyPair::generate().map_err(ca_error)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(ca_error)?;
        let issuer = Issuer::from_params(&ca_params, &ca_key);

        // Loopback for direct use, and Azure's own names for clients that come through the
        // simulator's HTTPS proxy (`proxy`).
        let names = vec![
            "127.0.0.1".to_string(),
            "::1".to_string(),
            "localhost".to_string(),
            crate::proxy::ARM_HOST.to_string(),
            crate::proxy::LOGIN_HOST.to_string(),
            format!("*{}", crate::proxy::VAULT_SUFFIX),
        ];
        let mut server_params = CertificateParams::new(names).map_err(server_error)?;
        server_params.distinguished_name.push(DnType::CommonName, "azsim");
        let server_key = KeyPair::generate().map_err(server_error)?;
        let server_cert = server_params.signed_by(&server_key, &issuer).map_err(server_error)?;

        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let chain = vec![server_cert.der().clone(), ca_cert.der().clone()];
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::ServerConfig)?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(TlsError::ServerConfig)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls { ca_pem: ca_cert.pem(), acceptor: TlsAcceptor::from(Arc::new(config)) })
    }
}

/// Binds `127.0.0.1:0`.
pub(crate) async fn bind_loopback() -> Result<TcpListener, TlsError> {
    TcpListener::bind(("127.0.0.1", 0)).await.map_err(TlsError::Bind)
}

/// Serves `router` on `listener` over TLS until the task is aborted; aborting drops the
/// `JoinSet`, which aborts every open connection too.
pub(crate) async fn serve(listener: TcpListener, acceptor: TlsAcceptor, router: axum::Router) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a connection failed");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        connections.spawn(async move {
            let tls_stream = match acceptor.accept(stream).await {
                Ok(tls_stream) => tls_stream,
                Err(error) => {
                    tracing::debug!(%error, %peer, "TLS handshake failed");
                    return;
                }
            };
            let service = TowerToHyperService::new(router);
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder.serve_connection(TokioIo::new(tls_stream), service).await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
}
