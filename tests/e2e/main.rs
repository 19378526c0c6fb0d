//! End-to-end tests: the real server on a loopback port.

mod foundation;
mod proxies;
