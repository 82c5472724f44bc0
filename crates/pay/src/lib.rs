//! WeChat Pay API v3 (JSAPI, direct merchant) and the built-in payment sandbox.
