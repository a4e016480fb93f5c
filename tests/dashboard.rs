//! `GET /` and the dashboard's files on the agent and on the coordinator: served without the read
//! token while the API keeps asking for it, gzip when accepted (and the same bytes once
//! inflated), a strong ETag answered 304, the right content types, and a Content-Security-Policy
//! that names no outside host. The page itself is tested in a browser by
//! tests/python/test_dashboard.py.

mod common;

use common::cluster::{coordinator, token_file};
use common::Monitor;
use reqwest::header::HeaderMap;

const TOKEN: &str = "dashboard-test-token";

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let client = reqwest::Client::new();
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body").to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The body of a gzip member (RFC 1952 with the fixed header build.rs writes), inflated.
fn gunzip(data: &[u8]) -> Vec<u8> {
    assert_eq!(&data[..3], &[0x1f, 0x8b, 8], "not gzip");
    assert_eq!(data[3], 0, "build.rs writes no optional gzip fields");
    let deflated = &data[10..data.len() - 8];
    let raw = miniz_oxide::inflate::decompress_to_vec(deflated).expect("valid deflate");
    let size = u32::from_le_bytes(data[data.len() - 4..].try_into().unwrap());
    assert_eq!(size as usize, raw.len());
    raw
}

/// Every check on one server whose base URL is `base`.
async fn check_served(base: &str) {
    let page = get(&format!("{base}/"), &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    let html = String::from_utf8(page.body.clone()).unwrap();
    assert!(
        html.contains(r#"<script defer src="/dashboard/app.js"></script>"#),
        "{html}"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );

    let csp = header(&page, "content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(!csp.contains("http") && !csp.contains("unsafe"), "{csp}");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert_eq!(header(&page, "vary"), "Accept-Encoding");
    assert!(header(&page, "content-encoding").is_empty());

    // gzip when accepted: the same bytes once inflated, under another ETag.
    let zipped = get(&format!("{base}/"), &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(zipped.status, 200);
    assert_eq!(header(&zipped, "content-encoding"), "gzip");
    assert!(zipped.body.len() < page.body.len());
    assert_eq!(gunzip(&zipped.body), page.body);
    let etag = header(&page, "etag").to_string();
    let zipped_etag = header(&zipped, "etag").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "{etag}"
    );
    assert_ne!(etag, zipped_etag);

    // A copy the client holds is not sent again (either form's tag names the file).
    for tag in [&etag, &zipped_etag] {
        let again = get(
            &format!("{base}/"),
            &[("if-none-match", tag), ("accept-encoding", "gzip")],
        )
        .await;
        assert_eq!(again.status, 304, "{tag}");
        assert!(again.body.is_empty());
        assert_eq!(header(&again, "etag"), zipped_etag);
    }
    let changed = get(&format!("{base}/"), &[("if-none-match", "\"stale\"")]).await;
    assert_eq!(changed.status, 200);
    assert_eq!(changed.body, page.body);

    for (path, content_type) in [
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/app.css", "text/css; charset=utf-8"),
        (
            "/dashboard/vendor/uplot/uPlot.iife.min.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "/dashboard/vendor/uplot/uPlot.min.css",
            "text/css; charset=utf-8",
        ),
        (
            "/dashboard/vendor/uplot/LICENSE",
            "text/plain; charset=utf-8",
        ),
    ] {
        let file = get(&format!("{base}{path}"), &[("accept-encoding", "gzip")]).await;
        assert_eq!(file.status, 200, "{path}");
        assert_eq!(header(&file, "content-type"), content_type, "{path}");
        assert_eq!(header(&file, "content-encoding"), "gzip", "{path}");
        assert!(!gunzip(&file.body).is_empty(), "{path}");
    }
    let license = get(&format!("{base}/dashboard/vendor/uplot/LICENSE"), &[]).await;
    assert!(String::from_utf8_lossy(&license.body).contains("MIT"));

    // The data stays behind the token; paths that are not the dashboard's are not opened.
    for path in [
        "/api/system/metrics",
        "/dashboard/missing.js",
        "/index.html",
    ] {
        let refused = get(&format!("{base}{path}"), &[]).await;
        assert_eq!(refused.status, 401, "{path}");
    }
    let bearer = format!("Bearer {TOKEN}");
    let data = get(
        &format!("{base}/api/system/metrics"),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(data.status, 200);
}

#[tokio::test]
async fn the_agent_serves_the_dashboard_without_the_token_and_the_api_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = token_file(dir.path(), TOKEN);
    let agent = Monitor::on_fixture("server", &["--auth-token-file", &file]);
    check_served(&agent.url("")).await;
    // A HEAD gets the headers alone.
    let head = reqwest::Client::new()
        .head(agent.url("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.headers().contains_key("etag"));
}

#[tokio::test]
async fn the_coordinator_serves_the_same_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let file = token_file(dir.path(), TOKEN);
    let coord = coordinator(&["--auth-token-file", &file]);
    check_served(&coord.base()).await;
}
