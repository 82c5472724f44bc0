//! The student pages (being written; see issue 6).

use crate::AppState;
use axum::Router;

/// Routes of the student pages.
pub fn router() -> Router<AppState> {
    Router::new()
}
