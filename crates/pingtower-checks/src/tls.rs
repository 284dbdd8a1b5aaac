//! TLS: the trust store and client configurations shared by every check, the TLS check kind,
//! and reading a peer certificate's expiry.

use crate::net::{connect, resolve};
use crate::{Phase, Raw, Timings, micros};
use pingtower_core::assertion::Facts;
use pingtower_core::check::TlsSpec;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Which protocols to offer through ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alpn {
    None,
    Http1,
    Http2,
    Both,
}

impl Alpn {
    fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Alpn::None => vec![],
            Alpn::Http1 => vec![b"http/1.1".to_vec()],
            Alpn::Http2 => vec![b"h2".to_vec()],
            Alpn::Both => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

/// The trust roots, loaded once, and the client configurations built from them.
pub struct TlsContext {
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    verified: [Arc<ClientConfig>; 4],
}

impl TlsContext {
    /// The system trust store (`SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured).
    pub fn system() -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        let loaded = rustls_native_certs::load_native_certs();
        for e in &loaded.errors {
            tracing::warn!(error = %e, "some system CA certificates could not be loaded");
        }
        let (added, _) = roots.add_parsable_certificates(loaded.certs);
        if added == 0 {
            tracing::warn!(
                "no system CA certificates found: HTTPS and TLS checks of public certificates will fail verification"
            );
        }
        Self::with_roots(roots)
    }

    /// Trusts exactly `roots` (tests use their own CA).
    pub fn with_roots(roots: RootCertStore) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = Arc::new(roots);
        let build =
            |alpn: Alpn| Self::config(&provider, Verify::Roots(roots.clone()), alpn).map(Arc::new);
        let verified = [
            build(Alpn::None)?,
            build(Alpn::Http1)?,
            build(Alpn::Http2)?,
            build(Alpn::Both)?,
        ];
        Ok(Self {
            provider,
            roots,
            verified,
        })
    }

    fn config(
        provider: &Arc<CryptoProvider>,
        verify: Verify,
        alpn: Alpn,
    ) -> Result<ClientConfig, String> {
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?;
        let mut config = match verify {
            Verify::Roots(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
            Verify::Nothing => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider.clone())))
                .with_no_client_auth(),
        };
        config.alpn_protocols = alpn.protocols();
        Ok(config)
    }

    /// The configuration for one check: shared unless the monitor turns verification off or
    /// adds its own CA certificates.
    pub(crate) fn client_config(
        &self,
        verify: bool,
        extra_ca_pem: Option<&str>,
        alpn: Alpn,
    ) -> Result<Arc<ClientConfig>, String> {
        if !verify {
            return Self::config(&self.provider, Verify::Nothing, alpn).map(Arc::new);
        }
        match extra_ca_pem {
            None => Ok(self.verified[alpn as usize].clone()),
            Some(pem) => {
                let mut roots = (*self.roots).clone();
                let mut added = 0;
                for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(pem.as_bytes()) {
                    let cert: CertificateDer<'static> =
                        cert.map_err(|e| format!("tls_ca_pem: {e}"))?;
                    roots.add(cert).map_err(|e| format!("tls_ca_pem: {e}"))?;
                    added += 1;
                }
                if added == 0 {
                    return Err("tls_ca_pem holds no certificate".into());
                }
                Self::config(&self.provider, Verify::Roots(Arc::new(roots)), alpn).map(Arc::new)
            }
        }
    }
}

enum Verify {
    Roots(Arc<RootCertStore>),
    Nothing,
}

/// Accepts any certificate (a monitor with `tls_verify: false`), but still checks that the
/// handshake is signed by the certificate's key.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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

/// A peer certificate's figures.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CertInfo {
    pub(crate) subject: String,
    pub(crate) issuer: String,
    pub(crate) not_after_unix: i64,
}

impl CertInfo {
    pub(crate) fn of(cert: &CertificateDer<'_>) -> Option<Self> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
        Some(Self {
            subject: parsed.subject().to_string(),
            issuer: parsed.issuer().to_string(),
            not_after_unix: parsed.validity().not_after.timestamp(),
        })
    }

    pub(crate) fn expires_in_ms(&self) -> f64 {
        (self.not_after_unix * 1000 - chrono::Utc::now().timestamp_millis()) as f64
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        let expires_at =
            chrono::DateTime::from_timestamp(self.not_after_unix, 0).map(|d| d.to_rfc3339());
        json!({
            "subject": self.subject,
            "issuer": self.issuer,
            "expires_at": expires_at,
            "expires_in_days": (self.expires_in_ms() / 86_400_000.0 * 10.0).round() / 10.0,
        })
    }
}

/// Makes a TLS connection over `tcp`; returns the stream and the handshake time.
pub(crate) async fn handshake(
    tcp: TcpStream,
    config: Arc<ClientConfig>,
    server_name: &str,
    phase: &Phase,
) -> Result<(TlsStream<TcpStream>, i64), String> {
    let name = ServerName::try_from(
        server_name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
    .map_err(|_| format!("`{server_name}` is not a valid TLS server name"))?;
    phase.set("TLS handshake");
    let started = Instant::now();
    let stream = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| describe_tls_error(&e))?;
    Ok((stream, micros(started.elapsed())))
}

fn describe_tls_error(e: &std::io::Error) -> String {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(c)) => {
            let what = match c {
                rustls::CertificateError::Expired
                | rustls::CertificateError::ExpiredContext { .. } => {
                    "the certificate has expired".to_owned()
                }
                rustls::CertificateError::NotValidYet
                | rustls::CertificateError::NotValidYetContext { .. } => {
                    "the certificate is not valid yet".to_owned()
                }
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. } => {
                    "the certificate does not match the host name".to_owned()
                }
                rustls::CertificateError::UnknownIssuer => {
                    "the certificate is not signed by a trusted authority".to_owned()
                }
                rustls::CertificateError::Revoked => "the certificate is revoked".to_owned(),
                other => format!("invalid certificate: {other:?}"),
            };
            format!("TLS: {what}")
        }
        Some(other) => format!("TLS handshake failed: {other}"),
        None => format!("TLS handshake failed: {}", crate::net::describe_io(e)),
    }
}

/// The TLS check kind: handshake with SNI, verify the chain and the name, read the expiry.
pub(crate) async fn run(spec: &TlsSpec, tls: &TlsContext, phase: &Phase) -> Raw {
    let started = Instant::now();
    let mut timings = Timings::default();
    let fail = |reason: String, mut timings: Timings| {
        timings.total_us = micros(started.elapsed());
        Raw {
            failure: Some(reason),
            facts: Facts::default(),
            timings,
            details: json!({}),
            default_up: Ok(()),
        }
    };
    let config = match tls.client_config(true, spec.tls_ca_pem.as_deref(), Alpn::None) {
        Ok(c) => c,
        Err(e) => return fail(e, timings),
    };
    let (addrs, dns) = match resolve(&spec.host, spec.port, spec.ip_family, phase).await {
        Ok(r) => r,
        Err(e) => return fail(e, timings),
    };
    timings.dns_us = dns;
    let (tcp, addr, connect_us) = match connect(&addrs, phase).await {
        Ok(r) => r,
        Err(e) => return fail(e, timings),
    };
    timings.connect_us = Some(connect_us);
    let (stream, tls_us) = match handshake(tcp, config, &spec.server_name, phase).await {
        Ok(r) => r,
        Err(e) => return fail(e, timings),
    };
    timings.tls_us = Some(tls_us);
    timings.total_us = micros(started.elapsed());
    let (_, conn) = stream.get_ref();
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(CertInfo::of);
    let version = conn.protocol_version().map(|v| format!("{v:?}"));
    let facts = Facts {
        response_time_ms: timings.total_us as f64 / 1000.0,
        cert_expires_in_ms: cert.as_ref().map(CertInfo::expires_in_ms),
        ..Facts::default()
    };
    Raw {
        failure: None,
        facts,
        timings,
        details: json!({"tls": {"address": addr.to_string(), "version": version}, "cert": cert.as_ref().map(CertInfo::to_json)}),
        default_up: Ok(()),
    }
}
