//! Certificates for TLS tests, made at test time: a throwaway certificate authority that
//! issues leaves for `localhost` and 127.0.0.1 into a test's data folder, and clients
//! (rustls under tungstenite, raw HTTPS) that trust only it. No key material lives in the
//! tree.

use super::data_dir;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;
pub type Wss = tungstenite::WebSocket<TlsStream>;

/// A throwaway certificate authority that issues leaves for `localhost` and 127.0.0.1.
pub struct Pki {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    dir: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "partyline test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let dir = data_dir().join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki { ca, dir }
    }

    /// Issues a leaf into `cert.pem`/`key.pem` (replacing what is there); returns its DER.
    pub fn issue(&self) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        std::fs::write(self.cert(), cert.pem()).unwrap();
        std::fs::write(self.key(), key.serialize_pem()).unwrap();
        cert.der().clone()
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// The CA's certificate (PEM), for clients told to trust it (`NODE_EXTRA_CA_CERTS`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// A TLS connection to `addr` that trusts only this CA.
    pub fn connect(&self, addr: SocketAddr) -> TlsStream {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(self.client_config(), name).unwrap();
        rustls::StreamOwned::new(conn, tcp)
    }

    pub fn wss(&self, addr: SocketAddr, path: &str) -> Wss {
        let stream = self.connect(addr);
        let url = format!("wss://localhost:{}{path}", addr.port());
        let (ws, response) = tungstenite::client::client(url, stream)
            .unwrap_or_else(|e| panic!("wss upgrade to {path}: {e}"));
        assert_eq!(response.status(), 101);
        ws
    }

    /// One HTTPS request (`Connection: close`); the whole response.
    pub fn https(&self, addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
        let mut stream = self.connect(addr);
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        // A peer that closes without close_notify is an error to rustls: keep what came.
        let _ = stream.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    }
}
