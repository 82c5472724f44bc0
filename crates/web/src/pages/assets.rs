//! Static assets, embedded in the binary (no CDN: the campus network or a
//! weak phone connection must not depend on a third party).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The stylesheet.
pub const CSS: &str = include_str!("../../assets/app.css");
/// The one script (order status polling, WeixinJSBridge), after the
/// polling it shares with the console's.
pub const JS: &str = concat!(
    include_str!("../../assets/poll.js"),
    include_str!("../../assets/app.js")
);
/// Where pages link the stylesheet; the query changes with the release so
/// the long cache lifetime below is safe.
pub const CSS_PATH: &str = concat!("/assets/app.css?v=", env!("CARGO_PKG_VERSION"), "-4");
/// Where pages link the script.
pub const JS_PATH: &str = concat!("/assets/app.js?v=", env!("CARGO_PKG_VERSION"), "-5");

/// `GET /assets/{name}`.
pub async fn serve(Path(name): Path<String>) -> Response {
    let (body, ctype) = match name.as_str() {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}
