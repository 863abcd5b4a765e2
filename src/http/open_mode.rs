//! The guards of open mode (API.md "Open mode"): with no `OVERSEER_API_TOKEN`, nothing but the
//! network stands between the API and whoever can reach it, and a browser can reach it from any
//! page its user visits. Two attacks follow, and one check stops each:
//!
//! - **DNS rebinding.** A page on `evil.example` makes its own name resolve to 127.0.0.1 and then
//!   reads `/api/config` as a same-origin request. The browser still sends `Host: evil.example`,
//!   so only requests whose `Host` is a loopback name or address, the listen address, or a name in
//!   `OVERSEER_ALLOWED_HOSTS` are served; others get `403 forbidden_host`.
//! - **Cross-site requests.** A form on any page can `POST` to `localhost:8080/api/jobs/1/cancel`
//!   (the browser sends it without asking), and a page can open a websocket to any address. Browsers
//!   name the page in `Origin`, so a state-changing request or a websocket handshake whose `Origin`
//!   does not match its `Host` gets `403 forbidden_origin`. A request without `Origin` comes from a
//!   program, not a page (browsers always send it on these requests), and passes.
//!
//! With a token set both checks are off: the bearer token is the guard, and a browser never sends
//! it on its own. Only the `Host` header (or the URI's authority) is read, never
//! `X-Forwarded-Host` or `Forwarded`, which any client can set.

use actix_web::{
    Error,
    body::{EitherBody, MessageBody},
    dev::ServiceRequest,
    dev::ServiceResponse,
    http::{Method, StatusCode, header},
    middleware::Next,
    web,
};

use super::{ApiError, AppState, ws};
use crate::config::hosts::{Authority, HostAllowList};

/// The request's `Host`: the header (HTTP/1.1) or the URI's authority (HTTP/2).
fn request_host(req: &ServiceRequest) -> Option<String> {
    match req.headers().get(header::HOST) {
        Some(value) => value.to_str().ok().map(str::to_string),
        None => req.uri().authority().map(|a| a.as_str().to_string()),
    }
}

/// True when the browser's `Origin` names the same host and port as `host`.
pub fn origin_matches(origin: &str, host: &Authority) -> bool {
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    let Some(origin_host) = url.host_str() else {
        return false;
    };
    let origin_host = origin_host.trim_start_matches('[').trim_end_matches(']');
    let host_name = host.host.trim_start_matches('[').trim_end_matches(']');
    if !origin_host.eq_ignore_ascii_case(host_name.trim_end_matches('.')) {
        return false;
    }
    match host.port {
        Some(port) => url.port_or_known_default() == Some(port),
        // No port in `Host` means the scheme's default, which `Origin` then leaves out too.
        None => url.port().is_none(),
    }
}

/// Requests a page could send to change something, or to open a feed.
fn needs_origin_check(req: &ServiceRequest) -> bool {
    let changes_state =
        [Method::POST, Method::PUT, Method::DELETE, Method::PATCH].contains(req.method());
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    changes_state || upgrade || ws::is_feed_route(req)
}

/// Why a request is refused in open mode, if it is.
fn refusal(req: &ServiceRequest, allow: &HostAllowList) -> Option<ApiError> {
    let forbidden_host = |why: String| ApiError::new(StatusCode::FORBIDDEN, "forbidden_host", why);
    let Some(raw_host) = request_host(req) else {
        return Some(forbidden_host(
            "the request names no Host; open mode serves only known hosts".into(),
        ));
    };
    let Some(host) = Authority::parse(&raw_host).filter(|h| allow.allows(h)) else {
        return Some(forbidden_host(format!(
            "Host {raw_host:?} is not served: without OVERSEER_API_TOKEN only loopback, the \
             listen address and OVERSEER_ALLOWED_HOSTS are"
        )));
    };
    if !needs_origin_check(req) {
        return None;
    }
    let origin = req.headers().get(header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or("");
    (!origin_matches(origin, &host)).then(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            format!(
                "Origin {origin:?} does not match Host {raw_host:?}: without \
                 OVERSEER_API_TOKEN a page of another site may not change anything"
            ),
        )
    })
}

/// The open-mode guard, wrapped around the whole app (the dashboard and `/metrics` too).
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    if state
        .config
        .api_token
        .as_deref()
        .is_some_and(|t| !t.is_empty())
    {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let allow = HostAllowList::new(&state.config.http_addr, &state.config.allowed_hosts);
    match refusal(&req, &allow) {
        None => Ok(next.call(req).await?.map_into_left_body()),
        Some(error) => {
            let response = actix_web::ResponseError::error_response(&error);
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> Authority {
        Authority::parse(text).expect("a host")
    }

    #[test]
    fn origin_must_name_host_and_port() {
        let h = host("localhost:8080");
        assert!(origin_matches("http://localhost:8080", &h));
        assert!(origin_matches("http://LOCALHOST:8080", &h));
        assert!(!origin_matches("http://localhost:8081", &h));
        assert!(!origin_matches("http://evil.example:8080", &h));
        assert!(!origin_matches("null", &h));
        assert!(origin_matches(
            "http://overseer.internal",
            &host("overseer.internal")
        ));
        assert!(origin_matches(
            "https://ops.example",
            &host("ops.example:443")
        ));
        assert!(origin_matches("http://[::1]:8080", &host("[::1]:8080")));
    }
}
