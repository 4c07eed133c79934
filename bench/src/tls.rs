//! HealthLake over HTTPS on loopback: a private CA made for this run (root → intermediate →
//! server certificate for `localhost` and 127.0.0.1, all RSA-2048: the shape of the chains AWS
//! endpoints present, Amazon Root CA 1 → Amazon RSA 2048 M0x → endpoint), and a TLS
//! front that terminates TLS and forwards the bytes to the plain-HTTP loopback stand-in.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::oneshot;

/// The CA and the server's chain and key.
pub struct Pki {
    /// The root certificate, PEM: what a client must trust.
    pub root_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "export-job-status benchmark");
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

impl Pki {
    /// A fresh root, intermediate and server certificate (RSA-2048, SHA-256).
    pub fn generate() -> Pki {
        let gen = || KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("an RSA key pair");
        let root = CertifiedIssuer::self_signed(ca_params("Benchmark Root CA"), gen()).expect("root");
        let intermediate = CertifiedIssuer::signed_by(ca_params("Benchmark Issuing CA"), gen(), &root)
            .expect("intermediate");
        let server_key = gen();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("names");
        params.distinguished_name.push(DnType::CommonName, "localhost");
        let server = params
            .signed_by(&server_key, &intermediate)
            .expect("server certificate");
        Pki {
            root_pem: root.pem(),
            chain: vec![server.der().clone(), intermediate.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        }
    }

    /// Writes the trust bundle the functions get through `SSL_CERT_FILE` / `AWS_CA_BUNDLE`:
    /// `base` (a system bundle, so that the functions parse a trust store of realistic size, as
    /// they do in Lambda) followed by this run's root. Returns how many certificates it holds.
    pub fn write_bundle(&self, base: Option<&Path>, out: &Path) -> usize {
        let mut text = base
            .map(|p| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
            .unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&self.root_pem);
        std::fs::write(out, &text).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
        text.matches("-----BEGIN CERTIFICATE-----").count()
    }
}

/// A running TLS front; stops when dropped.
pub struct HttpsFront {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl HttpsFront {
    /// Serves TLS on 127.0.0.1 (a free port) and forwards each connection to `backend`.
    pub fn start(pki: &Pki, backend: SocketAddr) -> HttpsFront {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(pki.chain.clone(), pki.key.clone_key())
            .expect("server certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (addr, stop) = loopback::spawn_server(
            "https-front",
            "127.0.0.1:0".parse().expect("a socket address"),
            move |tcp| {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = plain.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            },
        );
        HttpsFront {
            addr,
            stop: Some(stop),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for HttpsFront {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
