//! TLS for the client listener (`tls_cert` and `tls_key` in the config, `--tls-cert`,
//! `--tls-key`), with rustls: the certificate chain and private key are PEM files, read
//! at start (a missing or malformed file stops the start with a readable error) and again
//! on SIGHUP, when a pair that reads and matches replaces the old one for new connections
//! (a pair that does not is logged and the old one kept: a bad renewal never takes the
//! server down). Open connections keep the keys they agreed on.
//!
//! TLS 1.3 and 1.2, ring's AES-GCM and ChaCha20-Poly1305 (AES-GCM first: hardware AES on
//! every x86 server), ALPN `http/1.1` (WebSockets over HTTP/2 are not served). A
//! connection's `rustls::ServerConnection` keeps at most [`TLS_BUFFER_BYTES`] of records to
//! write, so TLS adds a bounded amount to what a slow client can make the server hold (and
//! the edge charges it to the shard's output budget).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Bytes of frames a connection seals ahead of the socket: four full 16 KiB records (rustls
/// applies the limit to the plaintext it accepts into an empty buffer), so one system call writes as much as a plain socket's 64 KiB of
/// frames; a batch is sealed only once the previous one is written. A socket that cannot
/// write holds this much besides its queue, charged to the shard's output budget.
/// Against 16 KiB: 1.4x the deliveries per server CPU-second for 1 KiB messages at
/// saturation (docs/benchmarks.md).
pub const TLS_BUFFER_BYTES: usize = 64 * 1024;

/// The client listener's TLS: the server configuration every handshake starts from, and
/// the files it reloads from.
#[derive(Debug)]
pub struct Tls {
    config: Arc<rustls::ServerConfig>,
    keys: Arc<Reloadable>,
}

/// The certificate and key in use, swapped whole on reload.
#[derive(Debug)]
struct Reloadable {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A poisoned lock only means a reload panicked midway; the key in it is whole.
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

impl Tls {
    /// Reads the PEM certificate chain at `cert` and private key at `key`.
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certified = read_pair(cert, key, &provider)?;
        let keys = Arc::new(Reloadable {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(certified)),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(keys.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls { config: Arc::new(config), keys })
    }

    /// Reads the files again; on success new connections use the new pair. Returns the
    /// certificate's subject-key summary for the log, or why the old pair stays.
    pub fn reload(&self) -> Result<(), String> {
        let certified = read_pair(&self.keys.cert, &self.keys.key, self.config.crypto_provider())?;
        *self.keys.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(certified);
        Ok(())
    }

    /// A new server-side session for an accepted socket.
    pub fn session(&self) -> Result<Box<rustls::ServerConnection>, rustls::Error> {
        let mut session = rustls::ServerConnection::new(self.config.clone())?;
        session.set_buffer_limit(Some(TLS_BUFFER_BYTES));
        Ok(Box::new(session))
    }

    /// The certificate chain's first certificate, DER (tests compare it after a reload).
    #[cfg(test)]
    pub fn leaf(&self) -> Vec<u8> {
        let current = self.keys.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        current.cert.first().map(|c| c.as_ref().to_vec()).unwrap_or_default()
    }
}

/// Reads and checks a certificate chain and its private key.
fn read_pair(
    cert: &Path,
    key: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("tls_cert {}: no PEM certificate in it", cert.display()));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls_key {}: {e}", key.display()))?;
    let certified = CertifiedKey::from_der(chain, private, provider)
        .map_err(|e| format!("tls_cert {} and tls_key {}: {e}", cert.display(), key.display()))?;
    Ok(certified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn pairs_load_reload_and_a_bad_reload_keeps_the_old_pair() {
        let dir = std::env::temp_dir().join(format!("partyline-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = write_pair(&dir, "a");
        let tls = Tls::load(&cert, &key).unwrap();
        let first = tls.leaf();
        assert!(!first.is_empty());
        assert!(tls.session().is_ok());
        // Renewed in place: the next handshakes use the new pair.
        let (cert_b, key_b) = write_pair(&dir, "b");
        std::fs::copy(&cert_b, &cert).unwrap();
        std::fs::copy(&key_b, &key).unwrap();
        tls.reload().unwrap();
        let second = tls.leaf();
        assert_ne!(first, second);
        // A half-written renewal: a key that does not match the certificate.
        let (_, key_c) = write_pair(&dir, "c");
        std::fs::copy(&key_c, &key).unwrap();
        let e = tls.reload().unwrap_err();
        assert!(e.contains("tls_cert"), "{e}");
        assert_eq!(tls.leaf(), second, "the old pair stays");
        // Readable errors at start.
        let e = Tls::load(&dir.join("nope.pem"), &key).unwrap_err();
        assert!(e.contains("nope.pem"), "{e}");
        std::fs::write(dir.join("empty.pem"), "").unwrap();
        let e = Tls::load(&dir.join("empty.pem"), &key).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = Tls::load(&cert, &cert).unwrap_err();
        assert!(e.contains("tls_key"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
