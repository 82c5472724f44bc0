//! Me.
use super::PageResult;
use axum::response::IntoResponse;
pub async fn page() -> PageResult {
    Ok("todo".into_response())
}
pub async fn profile_page() -> PageResult {
    Ok("todo".into_response())
}
pub async fn profile_submit() -> PageResult {
    Ok("todo".into_response())
}
pub async fn messages_page() -> PageResult {
    Ok("todo".into_response())
}
pub async fn messages_read_all() -> PageResult {
    Ok("todo".into_response())
}
pub async fn message_read() -> PageResult {
    Ok("todo".into_response())
}
pub async fn meters_page() -> PageResult {
    Ok("todo".into_response())
}
pub async fn meter_default() -> PageResult {
    Ok("todo".into_response())
}
pub async fn meter_unbind() -> PageResult {
    Ok("todo".into_response())
}
pub async fn password_page() -> PageResult {
    Ok("todo".into_response())
}
pub async fn password_submit() -> PageResult {
    Ok("todo".into_response())
}
