//! End-to-end tests: the real server on a loopback port.

mod edge;
mod foundation;
mod proxies;
