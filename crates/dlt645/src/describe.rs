//! Explaining captured bytes to a human or as JSON lines.
