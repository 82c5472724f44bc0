//! `POST /pay/wechat/notify`: payment and refund notifications from WeChat
//! Pay (or the sandbox). The checks and the recording are
//! [`service::notify::handle`]; this maps its answer to a status (WeChat
//! stops retrying on any 2xx, which is sent only after the commit).

use super::ApiError;
use crate::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use service::notify::Answer;

/// Path of the notify endpoint (payments and refunds share it); the notify
/// URL given to WeChat is the public URL followed by this.
pub const NOTIFY_PATH: &str = "/pay/wechat/notify";

pub(super) fn router() -> Router<AppState> {
    Router::new().route(NOTIFY_PATH, post(notify))
}

async fn notify(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = service::notify::handle(state.service(), |provider| {
        provider.parse_notification(&headers, &body)
    })
    .await;
    let status = match answer {
        Answer::Accepted => return StatusCode::NO_CONTENT.into_response(),
        Answer::Unauthorized => StatusCode::UNAUTHORIZED,
        Answer::BadRequest => StatusCode::BAD_REQUEST,
        Answer::NotFound => StatusCode::NOT_FOUND,
        Answer::Conflict => StatusCode::CONFLICT,
        Answer::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Answer::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    // WeChat's failure body; WeChat looks at the status, the body is for people.
    ApiError::new(status, "FAIL", "失败").into_response()
}
