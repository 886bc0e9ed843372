//! The stylesheet and the script, compiled into the binary (no CDN: the dashboard works
//! offline). Their URLs carry the crate version, so browsers may cache them for a long time.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// URL of the stylesheet.
pub(crate) const CSS_PATH: &str = concat!("/assets/dashboard-", env!("CARGO_PKG_VERSION"), ".css");
/// URL of the script.
pub(crate) const JS_PATH: &str = concat!("/assets/dashboard-", env!("CARGO_PKG_VERSION"), ".js");

const CSS: &str = include_str!("../assets/dashboard.css");
const JS: &str = include_str!("../assets/dashboard.js");

/// `GET /assets/{file}`.
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let path = format!("/assets/{file}");
    let (body, content_type) = if path == CSS_PATH {
        (CSS, "text/css; charset=utf-8")
    } else if path == JS_PATH {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    response
}
