//! The dashboard at `/`: one HTML page, one script and one stylesheet, compiled into the binary
//! (no build step, no CDN). The page is a client of the public API only: `GET /api/jobs` for
//! the table, `/api/ws` for live progress and the rate limiter, `/api/jobs/{id}/items` for the
//! items browser and the failed-items CSV, `/api/jobs/{id}/progress` and `/reasons` for a job's
//! history and outcomes, `/api/nodes` for the nodes page, the state-change routes (and a dry
//! run's `/run`) for its buttons and `POST /api/jobs` for CSV uploads. When the API needs a
//! token, the page asks for it once and keeps it in the browser.
//!
//! Every answer carries a Content-Security-Policy that allows only the page's own script, style
//! and API (so an injected `<script>` or a job name full of markup cannot run or phone home) and
//! forbids framing (`frame-ancestors 'none'`, and `X-Frame-Options: DENY` for older browsers), so
//! no other site can overlay the buttons (clickjacking). `Referrer-Policy: no-referrer` keeps the
//! dashboard's URLs out of other sites' logs.

use actix_web::{HttpResponse, http::header, web};

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/dashboard/app.js", web::get().to(app_js))
        .route("/dashboard/style.css", web::get().to(style_css));
}

/// The page's policy: its own files and API only (`'self'` covers its websocket too), the
/// `data:` favicon, no plugins, no framing, forms posted only to itself.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body)
}

async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style_css() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE_CSS)
}
