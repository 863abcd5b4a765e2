//! The API's error shape for the answers actix builds itself (API.md "Error shape everywhere").
//!
//! Handlers and extractors configured in [`super::configure`] already answer with
//! [`ApiError`], but some answers never pass through our code: a body over the `Bytes`
//! extractor's limit (413 `text/plain`), a method a resource does not serve (405, empty), an
//! error from a library such as the websocket handshake. Instead of a special case for each, one
//! [`ErrorHandlers`] default handler rewrites every error response that is not JSON already into
//! `{"error": {"code", "message", "details"}}`, keeping its status and headers (`Allow`,
//! `WWW-Authenticate`). Its message is the error actix attached to the response, or the status's
//! reason when there is none.

use actix_web::{
    HttpResponse, Result,
    body::MessageBody,
    dev::ServiceResponse,
    http::{StatusCode, header},
    middleware::{ErrorHandlerResponse, ErrorHandlers},
};

use super::ApiError;

/// The middleware, wrapped around the whole app.
pub fn middleware<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(reshape)
}

/// The error code for a status nobody gave a more specific one.
pub fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    }
}

fn is_json(response: &HttpResponse<impl MessageBody>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn reshape<B: MessageBody + 'static>(res: ServiceResponse<B>) -> Result<ErrorHandlerResponse<B>> {
    if is_json(res.response()) {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let message = res
        .response()
        .error()
        .map(ToString::to_string)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_string()
        });
    let mut shaped =
        actix_web::ResponseError::error_response(&ApiError::new(status, code_for(status), message));
    // Keep what the original answer said about how to retry (`Allow`, `WWW-Authenticate`, …).
    for (name, value) in res.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            shaped.headers_mut().append(name.clone(), value.clone());
        }
    }
    let (req, _) = res.into_parts();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, shaped).map_into_right_body(),
    ))
}
