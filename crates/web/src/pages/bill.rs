//! Bill.
use super::PageResult;
use axum::response::IntoResponse;
pub async fn page() -> PageResult {
    Ok("todo".into_response())
}
