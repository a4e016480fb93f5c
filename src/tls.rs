//! TLS for the servers and the clients: reads the PEM files of `--tls-cert`, `--tls-key` and
//! `--tls-ca` into rustls configurations — for REST (served over tokio-rustls by
//! `serve::tls_listener`), gRPC (tonic's own TLS) and the HTTP client (reqwest) with exactly
//! the roots given.
//!
//! Every file is read and checked here, once, so a bad file fails at start with its path and what
//! is wrong, rather than as an opaque handshake error later. Only the ring crypto provider is used
//! (no aws-lc: it doubles the build time and needs cmake).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use std::sync::OnceLock;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// A client that has connected but not finished its handshake in this time is dropped, so a
/// stalled or hostile peer cannot hold a slot forever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// ALPN of the REST server and the HTTP client: axum is built with HTTP/1.1 only.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Why a TLS file or setting cannot be used. Each names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} file {path} does not exist")]
    Missing { what: &'static str, path: PathBuf },
    #[error("cannot read {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} file {path} is not valid PEM: {detail}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error(
        "{what} file {path} holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----` blocks)"
    )]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error(
        "TLS key file {path} holds no private key (expected a PEM `PRIVATE KEY`, `RSA PRIVATE KEY` \
         or `EC PRIVATE KEY` block)"
    )]
    NoKey { path: PathBuf },
    #[error("TLS key {key} does not match the certificate {cert} (the first certificate of the chain must be the key's)")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS certificate {cert} with key {key} cannot be used: {source}")]
    Rejected {
        cert: PathBuf,
        key: PathBuf,
        // Boxed: rustls' error is large, and every `Result` carrying a `TlsError` pays for it.
        #[source]
        source: Box<rustls::Error>,
    },
    #[error("CA bundle {path}: certificate #{index} cannot be a trust anchor: {source}")]
    BadCa {
        path: PathBuf,
        index: usize,
        #[source]
        source: Box<rustls::Error>,
    },
    #[error(
        "no usable system root certificate was found ({detail}); give a CA bundle with --tls-ca"
    )]
    NoSystemRoots { detail: String },
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[source] Box<rustls::Error>),
}

/// What a file is, in error messages.
const CERT: &str = "TLS certificate";
/// What a file is, in error messages.
const KEY: &str = "TLS key";
/// What a file is, in error messages.
const CA: &str = "TLS CA bundle";

/// The crypto provider of every config built here: ring, named explicitly so the choice does not
/// depend on which rustls features other crates in the build turn on.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a whole file, telling a missing file from an unreadable one.
fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            TlsError::Missing {
                what,
                path: path.to_path_buf(),
            }
        } else {
            TlsError::Read {
                what,
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Every certificate in a PEM file; at least one.
fn certificates(
    what: &'static str,
    path: &Path,
    pem_bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem_bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// A server's certificate chain and private key, read from `--tls-cert` and `--tls-key` and
/// checked to belong together. Builds the REST and the gRPC server configurations.
#[derive(Clone)]
pub struct Identity {
    /// `--tls-cert`, for error messages.
    cert_path: PathBuf,
    /// `--tls-key`, for error messages.
    key_path: PathBuf,
    /// The chain as read, for tonic (which takes PEM).
    cert_pem: Vec<u8>,
    /// The key as read, for tonic (which takes PEM).
    key_pem: Vec<u8>,
    /// The REST server's configuration, built (and so checked) once at load.
    rest: Arc<ServerConfig>,
}

impl std::fmt::Debug for Identity {
    /// Names the files, never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cert", &self.cert_path)
            .field("key", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The identity of `--tls-cert`/`--tls-key`, or `None` when TLS is not served.
    pub fn from_config(config: &crate::config::TlsConfig) -> Result<Option<Self>, TlsError> {
        config
            .identity
            .as_ref()
            .map(|files| Self::load(&files.cert, &files.key))
            .transpose()
    }

    /// Reads the PEM chain at `cert` (leaf first, then intermediates) and the PEM private key at
    /// `key` (PKCS#8, PKCS#1 or SEC1), and checks that the key is the leaf's.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let cert_pem = read(CERT, cert)?;
        let chain = certificates(CERT, cert, &cert_pem)?;
        let key_pem = read(KEY, key)?;
        let private_key = match PrivateKeyDer::from_pem_slice(&key_pem) {
            Ok(k) => k,
            Err(pem::Error::NoItemsFound) => {
                return Err(TlsError::NoKey {
                    path: key.to_path_buf(),
                })
            }
            Err(e) => {
                return Err(TlsError::Pem {
                    what: KEY,
                    path: key.to_path_buf(),
                    detail: e.to_string(),
                })
            }
        };
        let mut rest = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(Box::new(e)))?
            .with_no_client_auth()
            .with_single_cert(chain, private_key)
            .map_err(|source| match source {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    TlsError::KeyMismatch {
                        cert: cert.to_path_buf(),
                        key: key.to_path_buf(),
                    }
                }
                source => TlsError::Rejected {
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                    source: Box::new(source),
                },
            })?;
        rest.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        Ok(Self {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            cert_pem,
            key_pem,
            rest: Arc::new(rest),
        })
    }

    /// The REST server's rustls configuration (ALPN `http/1.1`), for `serve::tls_listener`.
    pub fn rest_server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.rest)
    }

    /// The gRPC server's TLS settings, for `tonic::transport::Server::builder().tls_config(…)`
    /// (tonic sets ALPN `h2` itself).
    pub fn grpc_server_config(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(
                &self.cert_pem,
                &self.key_pem,
            ))
            .timeout(HANDSHAKE_TIMEOUT)
    }
}

/// The certificates a client trusts: the `--tls-ca` bundle alone when given, else the system's
/// roots. Builds the HTTP client's and the gRPC client's TLS settings.
#[derive(Clone)]
pub struct TrustRoots {
    /// The CA bundle as read, for tonic (which takes PEM); `None` for the system roots.
    ca_pem: Option<Vec<u8>>,
    /// The parsed roots, for rustls.
    store: Arc<RootCertStore>,
}

impl std::fmt::Debug for TrustRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustRoots")
            .field("system", &self.ca_pem.is_none())
            .field("roots", &self.store.len())
            .finish()
    }
}

impl TrustRoots {
    /// The certificates of the PEM bundle at `ca` (`--tls-ca`), or the system's roots when `None`.
    pub fn load(ca: Option<&Path>) -> Result<Self, TlsError> {
        let Some(path) = ca else {
            return Self::system();
        };
        let ca_pem = read(CA, path)?;
        let mut store = RootCertStore::empty();
        for (index, cert) in certificates(CA, path, &ca_pem)?.into_iter().enumerate() {
            store.add(cert).map_err(|source| TlsError::BadCa {
                path: path.to_path_buf(),
                index: index + 1,
                source: Box::new(source),
            })?;
        }
        Ok(Self {
            ca_pem: Some(ca_pem),
            store: Arc::new(store),
        })
    }

    /// The operating system's roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` are honoured).
    fn system() -> Result<Self, TlsError> {
        Self::from_system_store(rustls_native_certs::load_native_certs())
    }

    /// The roots of a system store reading; an error when none is usable.
    fn from_system_store(found: rustls_native_certs::CertificateResult) -> Result<Self, TlsError> {
        let mut store = RootCertStore::empty();
        let (added, _ignored) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            let detail = if found.errors.is_empty() {
                "the system store is empty".to_string()
            } else {
                found
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return Err(TlsError::NoSystemRoots { detail });
        }
        Ok(Self {
            ca_pem: None,
            store: Arc::new(store),
        })
    }

    /// A rustls client configuration trusting these roots, offering `alpn` (most preferred first).
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<ClientConfig, TlsError> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(Box::new(e)))?
            .with_root_certificates(Arc::clone(&self.store))
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// A reqwest client builder whose TLS trusts these roots and nothing else (reqwest's built-in
    /// roots are not used). The caller adds its timeouts and builds it.
    pub fn http_client_builder(&self) -> Result<reqwest::ClientBuilder, TlsError> {
        let config = self.client_config(&[ALPN_HTTP1])?;
        Ok(reqwest::Client::builder().use_preconfigured_tls(config))
    }

    /// The gRPC client's TLS settings, for `tonic::transport::Endpoint::tls_config(…)`.
    pub fn grpc_client_config(&self) -> tonic::transport::ClientTlsConfig {
        let config = tonic::transport::ClientTlsConfig::new().timeout(HANDSHAKE_TIMEOUT);
        match &self.ca_pem {
            Some(pem) => config.ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            None => config.with_native_roots(),
        }
    }
}

/// A reqwest client builder that verifies https peers against the system's roots, read at the
/// first https handshake rather than now: a coordinator may be sent an https agent by a
/// registration long after it started, and one that only ever meets plain-http agents never
/// reads the store (nor fails for want of one). Without a usable store, every https handshake
/// fails with [`TlsError::NoSystemRoots`], which says to give `--tls-ca`.
pub fn http_client_builder_system_roots_on_demand() -> Result<reqwest::ClientBuilder, TlsError> {
    let provider = provider();
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(Box::new(e)))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SystemRootsOnDemand {
            provider,
            verifier: OnceLock::new(),
        }))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(reqwest::Client::builder().use_preconfigured_tls(config))
}

/// rustls' standard (WebPKI) verification against the system's roots, which are read once, at
/// the first certificate to verify. A failed read is kept too: it is not retried at every
/// handshake (thousands of agents), and the error names the remedy.
#[derive(Debug)]
struct SystemRootsOnDemand {
    /// The signature algorithms, for the handshake signatures (checked without the roots).
    provider: Arc<CryptoProvider>,
    /// The verifier over the system's roots, or why there is none.
    verifier: OnceLock<Result<Arc<WebPkiServerVerifier>, Arc<TlsError>>>,
}

impl SystemRootsOnDemand {
    fn verifier(&self) -> Result<&Arc<WebPkiServerVerifier>, rustls::Error> {
        self.verifier
            .get_or_init(|| {
                let roots = TrustRoots::system()?;
                WebPkiServerVerifier::builder_with_provider(
                    Arc::clone(&roots.store),
                    Arc::clone(&self.provider),
                )
                .build()
                .map_err(|e| {
                    Arc::new(TlsError::NoSystemRoots {
                        detail: e.to_string(),
                    })
                })
            })
            .as_ref()
            .map_err(|why| {
                let why: Arc<dyn std::error::Error + Send + Sync> = why.clone();
                rustls::Error::Other(rustls::OtherError(why))
            })
    }
}

impl ServerCertVerifier for SystemRootsOnDemand {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Whether `error` (or one of its causes) is a failed TLS handshake: a certificate the roots do
/// not vouch for, a name it does not cover, a peer that does not speak TLS, no roots at all.
pub fn is_handshake_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<rustls::Error>() {
            return true;
        }
        // tokio-rustls wraps rustls' error in an io::Error (which hyper wraps in another), and an
        // io::Error's `source` skips the error it wraps: follow `get_ref` through those.
        cause = match e.downcast_ref::<io::Error>() {
            Some(wrapper) => wrapper
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA and a server certificate for `localhost`/127.0.0.1 signed by it, as PEM files.
    struct Pki {
        dir: tempfile::TempDir,
    }

    impl Pki {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
                .unwrap()
                .signed_by(&key, &ca)
                .unwrap();
            let other_key = rcgen::KeyPair::generate().unwrap();
            let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text);
            write("ca.pem", ca.pem()).unwrap();
            write("cert.pem", cert.pem()).unwrap();
            write("key.pem", key.serialize_pem()).unwrap();
            write("other-key.pem", other_key.serialize_pem()).unwrap();
            write("empty.pem", String::new()).unwrap();
            Self { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
    }

    #[test]
    fn matching_pair_loads() {
        let pki = Pki::new();
        let identity = Identity::load(&pki.path("cert.pem"), &pki.path("key.pem")).unwrap();
        assert_eq!(
            identity.rest_server_config().alpn_protocols,
            vec![b"http/1.1".to_vec()]
        );
        let debug = format!("{identity:?}");
        assert!(!debug.contains("PRIVATE"), "{debug}");
    }

    #[test]
    fn missing_files_are_named() {
        let pki = Pki::new();
        let err = Identity::load(&pki.path("nope.pem"), &pki.path("key.pem")).unwrap_err();
        assert!(matches!(err, TlsError::Missing { what: CERT, .. }), "{err}");
        assert!(err.to_string().contains("nope.pem"), "{err}");
        let err = Identity::load(&pki.path("cert.pem"), &pki.path("nokey.pem")).unwrap_err();
        assert!(matches!(err, TlsError::Missing { what: KEY, .. }), "{err}");
        let err = TrustRoots::load(Some(&pki.path("noca.pem"))).unwrap_err();
        assert!(matches!(err, TlsError::Missing { what: CA, .. }), "{err}");
    }

    #[test]
    fn a_key_given_as_certificate_has_no_certificate() {
        let pki = Pki::new();
        let err = Identity::load(&pki.path("key.pem"), &pki.path("key.pem")).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("key.pem"), "{err}");
        let err = TrustRoots::load(Some(&pki.path("empty.pem"))).unwrap_err();
        assert!(
            matches!(err, TlsError::NoCertificate { what: CA, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_certificate_given_as_key_has_no_key() {
        let pki = Pki::new();
        let err = Identity::load(&pki.path("cert.pem"), &pki.path("cert.pem")).unwrap_err();
        assert!(matches!(err, TlsError::NoKey { .. }), "{err}");
    }

    #[test]
    fn another_key_is_a_mismatch_naming_both_files() {
        let pki = Pki::new();
        let err = Identity::load(&pki.path("cert.pem"), &pki.path("other-key.pem")).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("cert.pem") && text.contains("other-key.pem"),
            "{text}"
        );
    }

    #[test]
    fn broken_pem_is_reported_with_the_path() {
        let pki = Pki::new();
        let broken = pki.path("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = TrustRoots::load(Some(&broken)).unwrap_err();
        assert!(matches!(err, TlsError::Pem { what: CA, .. }), "{err}");
        assert!(err.to_string().contains("broken.pem"), "{err}");
    }

    #[test]
    fn system_store_without_usable_roots_is_an_error_saying_what_to_do() {
        let err = TrustRoots::from_system_store(Default::default()).unwrap_err();
        assert!(err.to_string().contains("--tls-ca"), "{err}");
        let pki = Pki::new();
        let ca_pem = std::fs::read(pki.path("ca.pem")).unwrap();
        let mut found = rustls_native_certs::CertificateResult::default();
        found.certs = CertificateDer::pem_slice_iter(&ca_pem)
            .collect::<Result<_, _>>()
            .unwrap();
        let roots = TrustRoots::from_system_store(found).unwrap();
        assert_eq!(roots.store.len(), 1);
        assert!(
            roots.ca_pem.is_none(),
            "system roots: tonic uses its native roots"
        );
    }

    #[test]
    fn ca_bundle_becomes_the_only_root() {
        let pki = Pki::new();
        let roots = TrustRoots::load(Some(&pki.path("ca.pem"))).unwrap();
        assert_eq!(roots.store.len(), 1);
        let config = roots.client_config(&[b"h2"]).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
    }
}
