//! Sans-IO DL/T 645-2007 codec: bytes in, frames out. No tokio.
