//! Buying (S10).
use super::PageResult;
use axum::response::IntoResponse;
pub async fn page() -> PageResult {
    Ok("todo".into_response())
}
pub async fn order_page() -> PageResult {
    Ok("todo".into_response())
}
pub async fn create_order() -> PageResult {
    Ok("todo".into_response())
}
pub async fn order_status_page() -> PageResult {
    Ok("todo".into_response())
}
pub async fn order_status_json() -> PageResult {
    Ok("todo".into_response())
}
pub async fn pay_page() -> PageResult {
    Ok("todo".into_response())
}
pub async fn pay() -> PageResult {
    Ok("todo".into_response())
}
pub async fn cancel() -> PageResult {
    Ok("todo".into_response())
}
