//! The web app (`web/`), served by the server itself: `index.html` at `/`
//! and at every address a browser navigates to that is not the API's (the
//! app routes on the client), the hashed assets under `/assets/` for a
//! year, all under a strict Content-Security-Policy the app passes.
//!
//! A release build embeds `web/dist` (`build.rs` builds it when Node is
//! there); a debug build reads it from disk, so `npm run build` shows up
//! on the next reload. Without a built app, `/` says how to build it.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

#[derive(rust_embed::Embed)]
#[folder = "web/dist"]
#[allow_missing = true]
struct Assets;

/// What the app's pages are served with.
pub struct WebApp {
    /// The app's Content-Security-Policy.
    csp: HeaderValue,
}

impl WebApp {
    /// `origins`: where else the app loads from (signed URLs of the store:
    /// the public URL, and an S3 endpoint's origin), for previews.
    pub fn new(origins: &[String]) -> Self {
        let extra = origins.join(" ");
        let csp = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; \
             img-src 'self' blob: data: {extra}; media-src 'self' blob: {extra}; \
             frame-src 'self' {extra}; connect-src 'self' {extra}; font-src 'self'; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        );
        Self {
            csp: HeaderValue::from_str(&csp)
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'")),
        }
    }

    /// The app's page, whatever client route was asked for.
    pub fn index(&self) -> HttpResponse {
        match Assets::get("index.html") {
            Some(page) => HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
                .insert_header((header::CONTENT_SECURITY_POLICY, self.csp.clone()))
                // Always asked again: a new build names new assets.
                .insert_header((header::CACHE_CONTROL, "no-cache"))
                .body(page.data.into_owned()),
            None => not_built(),
        }
    }
}

/// What `/` says when this binary was built without the app.
fn not_built() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(NOT_BUILT)
}

const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Stowage</title></head><body><h1>Stowage is running</h1>\
<p>The API is at <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>. \
The web app was not built into this server.</p>\
<p>To build it, install Node.js 20 or newer and run <code>npm ci &amp;&amp; npm run build</code> \
in <code>web/</code> (a debug server shows it on the next reload), or build the server again \
with Node.js installed: <code>cargo build</code> builds the app when it is missing or stale.</p>\
</body></html>";

/// `GET /`.
pub async fn root(app: web::Data<WebApp>) -> HttpResponse {
    app.index()
}

/// `GET /assets/{file}` and the few files at the top (`/favicon.svg`):
/// named by their content's hash, so cached for a year.
pub async fn asset(req: HttpRequest) -> HttpResponse {
    let path = req.path().trim_start_matches('/');
    match Assets::get(path).filter(|_| path != "index.html") {
        Some(file) => {
            let cache = if path.starts_with("assets/") {
                "public, max-age=31536000, immutable"
            } else {
                "public, max-age=3600"
            };
            HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, file.metadata.mimetype()))
                .insert_header((header::CACHE_CONTROL, cache))
                .body(file.data.into_owned())
        }
        None => HttpResponse::NotFound().finish(),
    }
}

/// Whether `req` is a browser navigating to a page (not a script or an
/// API client asking for data): `Sec-Fetch-Mode: navigate`, or, from a
/// browser too old to say, a GET that prefers HTML.
pub fn is_navigation(req: &HttpRequest) -> bool {
    if !matches!(
        *req.method(),
        actix_web::http::Method::GET | actix_web::http::Method::HEAD
    ) {
        return false;
    }
    let headers = req.headers();
    if let Some(mode) = headers.get("sec-fetch-mode") {
        return mode.as_bytes() == b"navigate";
    }
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.starts_with("text/html"))
}

/// What an address without a route answers: the app's page to a browser
/// navigating there (a client route such as `/folders/…`), otherwise 404
/// (the problem layer writes its body). The API's own addresses are
/// always 404 when they do not exist.
pub async fn fallback(req: HttpRequest, app: Option<web::Data<WebApp>>) -> HttpResponse {
    match app {
        Some(app) if is_navigation(&req) && !req.path().starts_with("/api/") => app.index(),
        _ => HttpResponse::NotFound().finish(),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn navigations_are_told_from_data_requests() {
        let navigate = TestRequest::get()
            .insert_header(("sec-fetch-mode", "navigate"))
            .to_http_request();
        assert!(is_navigation(&navigate));
        let fetch = TestRequest::get()
            .insert_header(("sec-fetch-mode", "cors"))
            .insert_header(("accept", "text/html"))
            .to_http_request();
        assert!(!is_navigation(&fetch));
        let old_browser = TestRequest::get()
            .insert_header(("accept", "text/html,application/xhtml+xml,*/*;q=0.8"))
            .to_http_request();
        assert!(is_navigation(&old_browser));
        let curl = TestRequest::get()
            .insert_header(("accept", "*/*"))
            .to_http_request();
        assert!(!is_navigation(&curl));
        let post = TestRequest::post()
            .insert_header(("sec-fetch-mode", "navigate"))
            .to_http_request();
        assert!(!is_navigation(&post));
    }

    #[test]
    fn the_policy_names_the_stores_origin_and_allows_nothing_inline() {
        let app = WebApp::new(&["https://s3.example.com".into()]);
        let csp = app.csp.to_str().unwrap();
        assert!(csp.contains("img-src 'self' blob: data: https://s3.example.com"));
        assert!(csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe"));
    }
}
