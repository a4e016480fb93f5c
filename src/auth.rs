//! The two bearer tokens, two separate rights ([`TokenKind`]): the auth token
//! (`--auth-token-file` or `SYSTEM_MONITOR_AUTH_TOKEN`) guards reads — required by the REST
//! middleware ([`require_bearer`]) and the gRPC interceptor ([`GrpcAuth`]) on every API except
//! `/api/health`, and sent by the coordinator when it polls; the cluster token
//! (`--cluster-token-file` or `SYSTEM_MONITOR_CLUSTER_TOKEN`) is the registration secret, checked
//! by the coordinator's registration and sent by agents when they register.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The environment variable that carries the auth token when no file is given.
pub const TOKEN_ENV: &str = "SYSTEM_MONITOR_AUTH_TOKEN";

/// The environment variable that carries the cluster token when no file is given.
pub const CLUSTER_TOKEN_ENV: &str = "SYSTEM_MONITOR_CLUSTER_TOKEN";

/// Which right a token grants. The two are never interchangeable: a reader (the TrackLab
/// backend, a dashboard) must not be able to add agents, nor an agent's registration secret
/// read the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `--auth-token-file` / `SYSTEM_MONITOR_AUTH_TOKEN`: reading the APIs.
    Auth,
    /// `--cluster-token-file` / `SYSTEM_MONITOR_CLUSTER_TOKEN`: registering with a coordinator.
    Cluster,
}

impl TokenKind {
    /// The flag that names its file.
    pub const fn flag(self) -> &'static str {
        match self {
            Self::Auth => "--auth-token-file",
            Self::Cluster => "--cluster-token-file",
        }
    }

    /// The environment variable that holds it when no file is given.
    pub const fn env(self) -> &'static str {
        match self {
            Self::Auth => TOKEN_ENV,
            Self::Cluster => CLUSTER_TOKEN_ENV,
        }
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auth => "auth token",
            Self::Cluster => "cluster token",
        })
    }
}

/// The one path served without a token: liveness probes (Kubernetes, load balancers) carry none.
pub const UNAUTHENTICATED_PATH: &str = "/api/health";

/// Why a token could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the {kind} file {path}: {source}")]
    Read {
        kind: TokenKind,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the {kind} from {from} is empty")]
    Empty { kind: TokenKind, from: String },
    #[error("the {kind} from {from} must be printable ASCII without spaces")]
    Charset { kind: TokenKind, from: String },
    #[error(
        "the {kind} file {path} is writable by other users (mode {mode:03o}), so anyone could \
         replace the token: run chmod 600 {path}"
    )]
    Writable {
        kind: TokenKind,
        path: PathBuf,
        mode: u32,
    },
    #[error(
        "the auth token (reads) and the cluster token (registration) are the same secret, so \
         anyone who may read could register agents: give {} and {} different tokens",
        TokenKind::Auth.flag(),
        TokenKind::Cluster.flag()
    )]
    Same,
}

/// A shared secret. Never printed: `Debug` shows its length only.
#[derive(Clone)]
pub struct Token {
    /// The secret itself.
    secret: Arc<str>,
    /// `Bearer <secret>`, ready for outgoing requests (marked sensitive so that it is never logged).
    header: HeaderValue,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({} bytes)", self.secret.len())
    }
}

impl Token {
    /// Builds a `kind` token from its text (surrounding whitespace, such as a file's final
    /// newline, is dropped). `from` names the source in errors.
    pub fn new(kind: TokenKind, text: &str, from: &str) -> Result<Token, AuthError> {
        let secret = text.trim();
        if secret.is_empty() {
            return Err(AuthError::Empty {
                kind,
                from: from.into(),
            });
        }
        let charset = || AuthError::Charset {
            kind,
            from: from.into(),
        };
        // Visible ASCII only: it travels in an HTTP header and in gRPC metadata.
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(charset());
        }
        let mut header =
            HeaderValue::from_str(&format!("Bearer {secret}")).map_err(|_| charset())?;
        header.set_sensitive(true);
        Ok(Token {
            secret: secret.into(),
            header,
        })
    }

    /// The `kind` token of `file` if given, else of its environment variable
    /// ([`TokenKind::env`]) if set, else none.
    pub fn load(kind: TokenKind, file: Option<&Path>) -> Result<Option<Token>, AuthError> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
                kind,
                path: path.to_path_buf(),
                source,
            })?;
            file_mode::check(kind, path)?;
            return Token::new(kind, &text, &path.display().to_string()).map(Some);
        }
        match std::env::var(kind.env()) {
            Ok(text) => Token::new(kind, &text, kind.env()).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Whether two tokens hold the same secret (compared in constant time).
    pub fn same_secret(&self, other: &Token) -> bool {
        constant_time_eq(self.secret.as_bytes(), other.secret.as_bytes())
    }

    /// The `Authorization` header value for outgoing requests.
    pub fn header_value(&self) -> HeaderValue {
        self.header.clone()
    }

    /// Whether one of the WebSocket subprotocols offered carries this token (see
    /// [`WS_TOKEN_PROTOCOL_PREFIX`]).
    pub fn accepts_websocket_protocol(&self, headers: &HeaderMap) -> bool {
        use base64::Engine;
        headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|protocol| protocol.trim().strip_prefix(WS_TOKEN_PROTOCOL_PREFIX))
            .filter_map(|encoded| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(encoded)
                    .ok()
            })
            .any(|secret| constant_time_eq(&secret, self.secret.as_bytes()))
    }

    /// Whether an `Authorization` header value carries this token (`Bearer`, any case).
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Some((scheme, credentials)) = split_scheme(value) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(b"bearer")
            && constant_time_eq(credentials, self.secret.as_bytes())
    }
}

/// Who may read and write a token file: others writing it is refused, others reading it is
/// warned about (as ssh does for keys). Unix only: elsewhere the file's ACL is the system's.
#[cfg(unix)]
mod file_mode {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::{AuthError, TokenKind};

    /// Group or other write bits.
    const WRITABLE_BY_OTHERS: u32 = 0o022;
    /// Group or other read bits.
    const READABLE_BY_OTHERS: u32 = 0o044;

    /// Checks the mode of the file `path` leads to (through symbolic links, as Kubernetes
    /// mounts secrets).
    pub fn check(kind: TokenKind, path: &Path) -> Result<(), AuthError> {
        let mode = match std::fs::metadata(path) {
            Ok(metadata) => metadata.permissions().mode() & 0o777,
            Err(source) => {
                return Err(AuthError::Read {
                    kind,
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        if mode & WRITABLE_BY_OTHERS != 0 {
            return Err(AuthError::Writable {
                kind,
                path: path.to_path_buf(),
                mode,
            });
        }
        if mode & READABLE_BY_OTHERS != 0 {
            tracing::warn!(
                "the {kind} file {} is readable by other users (mode {mode:03o}): run chmod 600 {}",
                path.display(),
                path.display()
            );
        }
        Ok(())
    }
}

/// Other systems: no mode bits to check.
#[cfg(not(unix))]
mod file_mode {
    use std::path::Path;

    pub fn check(_kind: super::TokenKind, _path: &Path) -> Result<(), super::AuthError> {
        Ok(())
    }
}

/// `Bearer abc` → (`Bearer`, `abc`).
fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    let credentials = rest.trim_ascii();
    Some((scheme, credentials))
}

/// Compares two byte strings in time that depends on their length only, so that a wrong
/// token's timing does not tell how many of its first bytes were right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    difference == 0
}

/// The JSON answer to a missing or wrong token. It names nothing else: no node, no path.
pub fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        axum::Json(serde_json::json!({"error": "unauthorized"})),
    )
        .into_response()
}

/// The read right on one REST server: the auth token, asked of every request but
/// `/api/health`, CORS preflights and the paths that check a credential of their own.
#[derive(Clone, Debug, Default)]
pub struct ReadAuth {
    /// The auth token; `None`: reads are open (as node_exporter's).
    pub token: Option<Token>,
    /// Paths that check another credential themselves, so that the read token is not asked of
    /// them: the coordinator's registration (the cluster token). None on the agent, where
    /// every unknown path is a 401 too, so that a 401 is all an outsider learns.
    pub own_credential_paths: &'static [&'static str],
}

/// axum middleware: with a read token, every request but `GET /api/health`, CORS preflights
/// (`OPTIONS`, which browsers send without credentials) and the paths that check their own
/// credential must carry `Authorization: Bearer <auth token>`. Install with [`protect`].
pub async fn require_bearer(
    State(auth): State<ReadAuth>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &auth.token {
        let path = request.uri().path();
        let exempt = path == UNAUTHENTICATED_PATH
            || request.method() == Method::OPTIONS
            || auth.own_credential_paths.contains(&path);
        let headers = request.headers();
        let accepted =
            token.accepts(authorization(headers)) || token.accepts_websocket_protocol(headers);
        if !exempt && !accepted {
            return unauthorized();
        }
    }
    next.run(request).await
}

/// The WebSocket subprotocol that carries the read token where a client cannot set headers
/// (browsers' `new WebSocket(url, protocols)`): `bearer.` then the token in base64url without
/// padding, as Kubernetes carries its bearer tokens. Kept out of the URL, so that the token is
/// never written in access logs; the client offers [`WS_PROTOCOL`] beside it, which the server
/// selects (a browser refuses a handshake that selects none of several offered).
pub const WS_TOKEN_PROTOCOL_PREFIX: &str = "bearer.";

/// The subprotocol the WebSocket endpoint selects (`tracklab.metrics.v1`).
pub const WS_PROTOCOL: &str = "tracklab.metrics.v1";

/// The `Authorization` header's value, if there is one.
pub fn authorization(headers: &HeaderMap) -> Option<&[u8]> {
    headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
}

/// Wraps `router` in [`require_bearer`] (a no-op without a read token).
pub fn protect(router: axum::Router, auth: ReadAuth) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(auth, require_bearer))
}

/// gRPC interceptor: with a token, every call must carry `authorization: Bearer <token>`
/// metadata, else `UNAUTHENTICATED`.
#[derive(Clone, Debug)]
pub struct GrpcAuth {
    /// The expected token; `None` lets every call through.
    pub token: Option<Token>,
}

impl tonic::service::Interceptor for GrpcAuth {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let Some(token) = &self.token else {
            return Ok(request);
        };
        let value = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        if token.accepts(value) {
            Ok(request)
        } else {
            Err(tonic::Status::unauthenticated("unauthorized"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_trimmed_and_checked() {
        let token = Token::new(TokenKind::Auth, "s3cret\n", "test").unwrap();
        assert!(token.accepts(Some(b"Bearer s3cret")));
        assert!(token.accepts(Some(b"bearer s3cret")));
        assert!(!token.accepts(Some(b"Bearer s3cre")));
        assert!(!token.accepts(Some(b"Bearer s3cret2")));
        assert!(!token.accepts(Some(b"Basic s3cret")));
        assert!(!token.accepts(Some(b"s3cret")));
        assert!(!token.accepts(None));
        assert_eq!(format!("{token:?}"), "Token(6 bytes)");
        assert!(token.header_value().is_sensitive());
        assert!(Token::new(TokenKind::Auth, " \n", "x").is_err());
        assert!(Token::new(TokenKind::Auth, "two words", "x").is_err());
        assert!(Token::new(TokenKind::Auth, "é", "x").is_err());
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn token_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-file\n").unwrap();
        private(&path);
        let token = Token::load(TokenKind::Auth, Some(&path)).unwrap().unwrap();
        assert!(token.accepts(Some(b"Bearer from-file")));
        let missing = Token::load(TokenKind::Auth, Some(&dir.path().join("none"))).unwrap_err();
        assert!(missing.to_string().contains("none"), "{missing}");
    }

    #[test]
    fn the_cluster_token_names_its_own_flag_and_variable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster");
        std::fs::write(&path, "\n").unwrap();
        private(&path);
        let empty = Token::load(TokenKind::Cluster, Some(&path)).unwrap_err();
        assert!(
            matches!(
                empty,
                AuthError::Empty {
                    kind: TokenKind::Cluster,
                    ..
                }
            ),
            "{empty}"
        );
        assert!(
            empty.to_string().starts_with("the cluster token from "),
            "{empty}"
        );
        let missing = Token::load(TokenKind::Cluster, Some(&dir.path().join("none")));
        let missing = missing.unwrap_err().to_string();
        assert!(
            missing.starts_with("cannot read the cluster token file "),
            "{missing}"
        );
        assert_eq!(TokenKind::Cluster.flag(), "--cluster-token-file");
        assert_eq!(TokenKind::Cluster.env(), "SYSTEM_MONITOR_CLUSTER_TOKEN");
        assert_eq!(TokenKind::Auth.env(), "SYSTEM_MONITOR_AUTH_TOKEN");

        let read = Token::new(TokenKind::Auth, "r3ad", "x").unwrap();
        let register = Token::new(TokenKind::Cluster, "r3gister", "x").unwrap();
        assert!(!read.same_secret(&register));
        assert!(read.same_secret(&Token::new(TokenKind::Cluster, "r3ad\n", "x").unwrap()));
        assert!(!register.accepts(Some(b"Bearer r3ad")));
        let same = AuthError::Same.to_string();
        assert!(
            same.contains("--auth-token-file") && same.contains("--cluster-token-file"),
            "{same}"
        );
    }

    /// Owner read and write only.
    fn private(path: &Path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = path;
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        for mode in [0o600, 0o400, 0o640, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(
                Token::load(TokenKind::Auth, Some(&path)).unwrap().is_some(),
                "{mode:o}"
            );
        }
        for mode in [0o620, 0o602, 0o666, 0o622] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = Token::load(TokenKind::Auth, Some(&path)).unwrap_err();
            assert!(matches!(err, AuthError::Writable { .. }), "{mode:o}: {err}");
            let text = err.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains("chmod 600"), "{text}");
            assert!(text.contains(&format!("{mode:03o}")), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
    }
}
