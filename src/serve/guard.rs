//! The guard in front of every REST route, agent and coordinator alike: refuses requests whose
//! `Host` is not one this server answers to (DNS rebinding), answers an over-long URI or header
//! section with a JSON error before hyper's own, bodiless, limits are reached, and adds CORS
//! headers for the `--cors-allow-origin` origins only. Reads [`BrowserConfig`] and the bind
//! address.
//!
//! Why a Host check: a page on any site can make the browser send requests to
//! `127.0.0.1:8080`. Without CORS headers it cannot read the answers, but it can point its own
//! DNS name at 127.0.0.1 ("rebinding") and then read them as same-origin requests; the `Host`
//! header then still names the page's site, which is what this refuses (as Jupyter does).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::http::error;
use crate::config::BrowserConfig;
use crate::model::echo;

/// The longest request target answered (414 beyond). hyper's own limit is 64 KiB and its 414
/// has no body: below it, ours answers first, in JSON. 8 KiB is what common servers accept.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The most header bytes (names, values and their separators) answered (431 beyond). hyper
/// refuses a request head over about 400 KiB, or over 100 header fields, with a bodiless 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// How long browsers may cache a CORS preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The guard of one REST server, built once from the flags; cheap to clone.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Which `Host` values are served; `None`: all (an unspecified bind without
    /// `--allowed-host`).
    hosts: Option<Arc<HostRule>>,
    /// `--cors-allow-origin` origins, exactly as browsers send `Origin`; empty: no CORS headers.
    cors_origins: Arc<[HeaderValue]>,
}

/// The `Host` values a server answers to: loopback names and addresses always, then its bind
/// address and the `--allowed-host` entries.
#[derive(Debug)]
struct HostRule {
    /// The bind address, when it is one address (not 0.0.0.0 or ::).
    bind: Option<IpAddr>,
    /// Every IP address literal: an unspecified bind serves all of the host's addresses, and an
    /// address typed in a URL cannot be rebound.
    any_address: bool,
    /// `--allowed-host` addresses.
    addresses: Vec<IpAddr>,
    /// `--allowed-host` names, lowercase, without a trailing dot.
    names: Vec<String>,
}

impl Guard {
    /// The guard of a server listening on `bind`: the Host check is on unless `bind` is
    /// unspecified (0.0.0.0, ::) and no `--allowed-host` is given.
    pub fn new(bind: IpAddr, browser: &BrowserConfig) -> Guard {
        let mut addresses = Vec::new();
        let mut names = Vec::new();
        for allowed in &browser.allowed_hosts {
            match strip_brackets(allowed).parse::<IpAddr>() {
                Ok(ip) => addresses.push(ip.to_canonical()),
                Err(_) => names.push(normalise_name(allowed)),
            }
        }
        let unspecified = bind.is_unspecified();
        let hosts = (!unspecified || !browser.allowed_hosts.is_empty()).then(|| {
            Arc::new(HostRule {
                bind: (!unspecified).then(|| bind.to_canonical()),
                any_address: unspecified,
                addresses,
                names,
            })
        });
        let cors_origins = browser
            .cors_allow_origins
            .iter()
            .filter_map(|origin| match HeaderValue::from_str(origin) {
                Ok(value) => Some(value),
                Err(_) => {
                    tracing::warn!("--cors-allow-origin {origin:?} is not a header value; ignored");
                    None
                }
            })
            .collect();
        Guard {
            hosts,
            cors_origins,
        }
    }

    /// `router` behind this guard (and, with origins, behind CORS for them).
    pub fn apply(&self, router: Router) -> Router {
        let router = router.layer(axum::middleware::from_fn_with_state(self.clone(), guard));
        if self.cors_origins.is_empty() {
            return router;
        }
        // Outside the guard, so that a permitted page can read the guard's errors too.
        router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(self.cors_origins.iter().cloned()))
                .allow_methods([Method::GET, Method::HEAD, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
                .max_age(PREFLIGHT_MAX_AGE),
        )
    }

    /// The JSON error a request gets instead of an answer, if any.
    fn refusal(&self, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
        if target_len(uri) > MAX_URI_BYTES {
            return Some(error(
                StatusCode::URI_TOO_LONG,
                json!({"error": "URI too long", "limit_bytes": MAX_URI_BYTES}),
            ));
        }
        let header_bytes: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if header_bytes > MAX_HEADER_BYTES {
            return Some(error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                json!({"error": "request headers too large", "limit_bytes": MAX_HEADER_BYTES}),
            ));
        }
        let rule = self.hosts.as_ref()?;
        let mut hosts = headers.get_all(header::HOST).iter();
        let (Some(host), None) = (hosts.next(), hosts.next()) else {
            let detail = "one Host header is required";
            return Some(host_not_allowed(headers.get(header::HOST), detail));
        };
        let host_ok = host.to_str().ok().is_some_and(|h| rule.allows(h));
        // An absolute-form target (`GET http://name/ HTTP/1.1`) names a host too; both must pass.
        let target_ok = uri.authority().is_none_or(|a| rule.allows(a.as_str()));
        if !(host_ok && target_ok) {
            let detail = "start the monitor with --allowed-host NAME to serve this name";
            return Some(host_not_allowed(Some(host), detail));
        }
        None
    }
}

/// The middleware: a [`Guard::refusal`], or the routes' answer.
async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    match guard.refusal(request.uri(), request.headers()) {
        Some(refusal) => refusal,
        None => next.run(request).await,
    }
}

/// 403 naming the Host value received (cut short), or null without one.
fn host_not_allowed(host: Option<&HeaderValue>, detail: &str) -> Response {
    let host = host.map(|h| echo(&String::from_utf8_lossy(h.as_bytes())).into_owned());
    error(
        StatusCode::FORBIDDEN,
        json!({"error": "host not allowed", "host": host, "detail": detail}),
    )
}

impl HostRule {
    /// Whether `host` (a `Host` value: a name or address, optionally with a port) is served.
    fn allows(&self, host: &str) -> bool {
        let Some(host) = without_port(host) else {
            return false;
        };
        if let Ok(ip) = strip_brackets(host).parse::<IpAddr>() {
            let ip = ip.to_canonical();
            return ip.is_loopback()
                || self.any_address
                || self.bind == Some(ip)
                || self.addresses.contains(&ip);
        }
        if host.starts_with('[') {
            return false;
        }
        let name = normalise_name(host);
        // RFC 6761: `localhost` and its subdomains are loopback, resolved by browsers
        // themselves, so no page can rebind them.
        name == "localhost" || name.ends_with(".localhost") || self.names.contains(&name)
    }
}

/// `host` without its `:port` (which may be empty); `None` when what follows the host is not
/// a port, or for an IPv6 address without brackets.
fn without_port(host: &str) -> Option<&str> {
    let is_port = |text: &str| text.bytes().all(|b| b.is_ascii_digit());
    if host.starts_with('[') {
        let end = host.find(']')?;
        let (address, rest) = host.split_at(end + 1);
        return (rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)).then_some(address);
    }
    let (name, port) = host.rsplit_once(':').unwrap_or((host, ""));
    (!name.is_empty() && !name.contains(':') && is_port(port)).then_some(name)
}

/// `[::1]` → `::1`; anything else as it is.
fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// A name as compared: lowercase, without the trailing dot of a fully qualified name.
fn normalise_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.strip_suffix('.') {
        Some(stripped) => stripped.to_string(),
        None => lower,
    }
}

/// The request target's length as sent: path and query, plus the authority of an absolute
/// form.
fn target_len(uri: &Uri) -> usize {
    let path = uri.path_and_query().map_or(0, |p| p.as_str().len());
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    path + authority
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn rule(bind: IpAddr, allowed: &[&str]) -> Option<Arc<HostRule>> {
        let browser = BrowserConfig {
            allowed_hosts: allowed.iter().map(|h| h.to_string()).collect(),
            ..BrowserConfig::default()
        };
        Guard::new(bind, &browser).hosts
    }

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn loopback_names_and_addresses_are_served_on_loopback() {
        let rule = rule(LOOPBACK, &[]).unwrap();
        for good in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.",
            "app.localhost:3000",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.1.2.3:1",
            "[::1]",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:80",
            "localhost:",
        ] {
            assert!(rule.allows(good), "{good}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "mylocalhost",
            "10.0.0.5:8080",
            "[::2]:80",
            "::1",
            "[::1",
            "[::1]x",
            "localhost:80x",
            ":8080",
            "",
            "[localhost]",
        ] {
            assert!(!rule.allows(bad), "{bad}");
        }
    }

    #[test]
    fn a_specific_bind_serves_its_address_and_the_allowed_names() {
        let bind = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
        let rule = rule(bind, &["Node1.Lab.", "10.0.0.9", "[fd00::1]"]).unwrap();
        for good in [
            "10.0.0.5:8080",
            "node1.lab",
            "NODE1.LAB:1",
            "10.0.0.9",
            "[fd00::1]:9",
            "localhost",
        ] {
            assert!(rule.allows(good), "{good}");
        }
        for bad in ["10.0.0.6:8080", "node2.lab", "lab"] {
            assert!(!rule.allows(bad), "{bad}");
        }
    }

    #[test]
    fn an_unspecified_bind_checks_only_with_allowed_hosts() {
        assert!(rule(IpAddr::V4(Ipv4Addr::UNSPECIFIED), &[]).is_none());
        assert!(rule(IpAddr::V6(Ipv6Addr::UNSPECIFIED), &[]).is_none());
        let rule = rule(IpAddr::V4(Ipv4Addr::UNSPECIFIED), &["node1.lab"]).unwrap();
        for good in ["node1.lab:8080", "10.1.2.3:8080", "[fd00::7]", "localhost"] {
            assert!(rule.allows(good), "{good}");
        }
        assert!(!rule.allows("evil.example"));
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    async fn refused(guard: &Guard, uri: &str, pairs: &[(&str, &str)]) -> Option<(u16, String)> {
        let response = guard.refusal(&uri.parse().unwrap(), &headers(pairs))?;
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Some((status, String::from_utf8(body.to_vec()).unwrap()))
    }

    #[tokio::test]
    async fn refusals_are_json_and_quote_the_host_cut_short() {
        let guard = Guard::new(LOOPBACK, &BrowserConfig::default());
        assert!(refused(&guard, "/api/health", &[("host", "127.0.0.1:1")])
            .await
            .is_none());
        let long = format!("{}.example", "a".repeat(500));
        let (status, body) = refused(&guard, "/", &[("host", &long)]).await.unwrap();
        assert_eq!(status, 403);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "host not allowed");
        assert_eq!(body["host"].as_str().unwrap().chars().count(), 64);

        let (status, body) = refused(&guard, "/", &[]).await.unwrap();
        assert_eq!(status, 403);
        assert!(body.contains(r#""host":null"#), "{body}");
        let two = [("host", "localhost"), ("host", "evil.example")];
        assert_eq!(refused(&guard, "/", &two).await.unwrap().0, 403);
        let absolute = "http://evil.example/api/health";
        let (status, _) = refused(&guard, absolute, &[("host", "localhost")])
            .await
            .unwrap();
        assert_eq!(status, 403);
    }

    #[tokio::test]
    async fn over_long_targets_and_headers_are_json_errors() {
        let guard = Guard::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), &BrowserConfig::default());
        let long = format!("/{}", "a".repeat(MAX_URI_BYTES));
        let (status, body) = refused(&guard, &long, &[]).await.unwrap();
        assert_eq!(status, 414);
        assert!(body.contains("URI too long"), "{body}");
        let fits = format!("/{}", "a".repeat(MAX_URI_BYTES - 1));
        assert!(refused(&guard, &fits, &[]).await.is_none());

        let value = "v".repeat(8 * 1024);
        let many: Vec<(String, &str)> = (0..9).map(|i| (format!("x-h{i}"), &*value)).collect();
        let pairs: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let (status, body) = refused(&guard, "/", &pairs).await.unwrap();
        assert_eq!(status, 431);
        assert!(body.contains("request headers too large"), "{body}");
    }
}
