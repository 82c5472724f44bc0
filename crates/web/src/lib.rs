//! The only crate that knows HTTP: axum routers, student pages, JSON API, static assets.
