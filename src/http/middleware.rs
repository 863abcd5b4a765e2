//! Middleware: bearer-token authentication of `/api`, `HEAD` as `GET`, and request latency
//! metrics. The open-mode guards are in [`super::open_mode`], the error shape of responses that
//! actix itself builds in [`super::error_shape`].
//!
//! Authentication (API.md): when `OVERSEER_API_TOKEN` is set, every `/api` route except
//! `GET /api/health` and `GET /api/health/ready` needs `Authorization: Bearer <token>`. The two
//! websocket routes may take `?token=<token>` instead (browsers cannot set headers on a
//! websocket); no other route may, so tokens stay out of URLs and access logs. Which route a
//! request is for comes from the route table (its matched pattern), never from a header the
//! client chooses such as `Upgrade`. The check wraps the whole `/api` scope, so every route added
//! under it, websockets included, is covered without doing anything. Tokens are compared in
//! constant time (`subtle`).

use std::time::Instant;

use actix_web::{
    Error,
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{Method, StatusCode, header},
    middleware::Next,
    web,
};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::telemetry::metrics as m;

/// Routes that stay open with a token configured (load balancers probe them).
const OPEN_ROUTES: [&str; 2] = ["/api/health", "/api/health/ready"];

/// True when `given` equals `expected`, in time independent of where they differ.
pub fn token_matches(given: &str, expected: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// The bearer token of an `Authorization` header, if it has one.
pub fn bearer(req: &actix_web::HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn query_token(req: &ServiceRequest) -> Option<String> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .ok()?
        .into_inner()
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
}

/// The 401 every refused request gets, in the API's error shape.
pub fn unauthorized(message: &str) -> actix_web::HttpResponse {
    let mut response = actix_web::ResponseError::error_response(&ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        message,
    ));
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Checks the token of a request under `/api`.
pub async fn require_api_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let expected = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| state.config.api_token.clone())
        .filter(|t| !t.is_empty());
    let Some(expected) = expected else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    if req.method() == Method::GET && OPEN_ROUTES.contains(&req.path()) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let given = bearer(req.request()).map(str::to_string).or_else(|| {
        super::ws::is_feed_route(&req)
            .then(|| query_token(&req))
            .flatten()
    });
    match given {
        Some(given) if token_matches(&given, &expected) => {
            Ok(next.call(req).await?.map_into_left_body())
        }
        Some(_) => Ok(req
            .into_response(unauthorized("the bearer token is wrong"))
            .map_into_right_body()),
        None => Ok(req
            .into_response(unauthorized(
                "this route needs Authorization: Bearer <token> (OVERSEER_API_TOKEN)",
            ))
            .map_into_right_body()),
    }
}

/// Serves `HEAD` wherever `GET` is served (API.md "Tokens and methods"), with the same
/// authentication: the request goes through as a `GET`, and the HTTP codec, which remembers that
/// the request line said `HEAD`, sends the head of the answer without its body.
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    next.call(req).await
}

/// Routes that stream their bodies under limits of their own (`max_json_body_bytes`,
/// `max_csv_body_bytes`): the submission.
const STREAMED_BODY_ROUTES: [(Method, &str); 1] = [(Method::POST, "/api/jobs")];

/// Refuses a body announced larger than [`super::MAX_SMALL_BODY`] on every route but the
/// submission, before any handler runs, so the limit holds on routes that never read their body
/// too (API.md "Error shape everywhere": an oversized body on any route is a 413). A body whose
/// size is not announced meets the same limit in the `Bytes` extractor of the routes that read it.
pub async fn limit_bodies(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let streamed = || {
        let pattern = req.match_pattern();
        STREAMED_BODY_ROUTES
            .iter()
            .any(|(method, route)| req.method() == method && pattern.as_deref() == Some(*route))
    };
    if declared <= super::MAX_SMALL_BODY as u64 || streamed() {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let error = ApiError::too_large(format!(
        "the body is {declared} bytes; this route takes at most {} bytes",
        super::MAX_SMALL_BODY
    ));
    let response = actix_web::ResponseError::error_response(&error);
    Ok(req.into_response(response).map_into_right_body())
}

/// Records every request's latency by matched route pattern, method and status.
pub async fn record_latency(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = m::method_label(req.method());
    let response = next.call(req).await;
    let seconds = started.elapsed().as_secs_f64();
    let (route, status) = match &response {
        Ok(response) => (
            response
                .request()
                .match_pattern()
                .unwrap_or_else(|| "unmatched".into()),
            response.status().as_u16(),
        ),
        Err(error) => (
            "unmatched".to_string(),
            error.as_response_error().status_code().as_u16(),
        ),
    };
    metrics::histogram!(m::HTTP_REQUEST_SECONDS, "route" => route, "method" => method,
        "status" => status.to_string())
    .record(seconds);
    response
}

/// The first query parameter that is not valid UTF-8 or holds U+0000 once percent-decoded, and
/// why. Decoding leniently would store U+FFFD in place of what the client meant, and a NUL
/// cannot be stored at all (API.md "Input": 400 naming the parameter).
pub fn query_problem(query: &str) -> Option<(String, String)> {
    let decode = |text: &str| {
        let spaced = text.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced).collect::<Vec<u8>>()
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key_bytes = decode(key);
        let name = String::from_utf8_lossy(&key_bytes).into_owned();
        let problem = match (
            std::str::from_utf8(&key_bytes),
            std::str::from_utf8(&decode(value)),
        ) {
            (Err(_), _) => Some("the parameter's name is not valid UTF-8"),
            (_, Err(_)) => Some("is not valid UTF-8"),
            (Ok(k), _) if k.contains('\0') => Some("the parameter's name contains U+0000 (NUL)"),
            (_, Ok(v)) if v.contains('\0') => Some("contains U+0000 (NUL)"),
            _ => None,
        };
        if let Some(problem) = problem {
            return Some((name.replace('\0', "\\u0000"), problem.to_string()));
        }
    }
    None
}

/// Refuses a request whose query string has a parameter [`query_problem`] finds, before any
/// handler (or lenient extractor) sees it.
pub async fn strict_query(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some((parameter, problem)) = query_problem(req.query_string()) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let error = ApiError::bad_request(
        "invalid_query",
        format!("query parameter {parameter:?} {problem}"),
    )
    .with_details(vec![
        serde_json::json!({"parameter": parameter, "problem": problem}),
    ]);
    let response = actix_web::ResponseError::error_response(&error);
    Ok(req.into_response(response).map_into_right_body())
}

/// Gives every body but the submission's (which has its own, in `submit`) the same deadline:
/// one not fully arrived `OVERSEER_BODY_TIMEOUT_MS` after the request started ends in a 408, so
/// a client that stops sending (or asked for an upgrade, after which no body is delivered)
/// cannot keep a handler waiting. The deadline cuts the body stream short; when it fired, the
/// answer is the 408, whatever the handler made of the cut body.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    use std::{cell::Cell, rc::Rc};

    use actix_web::HttpMessage;

    let timeout_ms = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.config.body_timeout_ms);
    let streamed = {
        let pattern = req.match_pattern();
        STREAMED_BODY_ROUTES
            .iter()
            .any(|(method, route)| req.method() == method && pattern.as_deref() == Some(*route))
    };
    let Some(timeout_ms) = timeout_ms.filter(|_| !streamed) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    let fired = Rc::new(Cell::new(false));
    let flag = fired.clone();
    let body = futures_util::stream::unfold(Some(req.take_payload()), move |payload| {
        let flag = flag.clone();
        async move {
            let mut payload = payload?;
            match tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut payload))
                .await
            {
                Ok(Some(item)) => Some((item, Some(payload))),
                Ok(None) => None,
                Err(_) => {
                    flag.set(true);
                    let error = std::io::Error::new(std::io::ErrorKind::TimedOut, "body timeout");
                    Some((Err(actix_web::error::PayloadError::Io(error)), None))
                }
            }
        }
    });
    req.set_payload(actix_web::dev::Payload::Stream {
        payload: Box::pin(body),
    });
    let response = next.call(req).await?;
    if !fired.get() {
        return Ok(response.map_into_left_body());
    }
    let error = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        format!("the body had not fully arrived {timeout_ms} ms after the request started"),
    );
    let answer = actix_web::ResponseError::error_response(&error);
    Ok(response.into_response(answer).map_into_right_body())
}

#[cfg(test)]
mod query_tests {
    use super::query_problem;

    #[test]
    fn invalid_utf8_and_nul_name_the_parameter() {
        assert_eq!(query_problem("operation=noop&name=a+b%C3%A9"), None);
        let (name, problem) = query_problem("operation=noop&name=%FF").expect("bad utf-8");
        assert_eq!(name, "name");
        assert!(problem.contains("UTF-8"), "{problem}");
        let (name, problem) = query_problem("name=x&params=%00").expect("nul");
        assert_eq!(name, "params");
        assert!(problem.contains("U+0000"), "{problem}");
    }
}
