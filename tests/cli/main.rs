//! Integration tests: the real `vc` binary against the fake Kubernetes API server.

mod bad_input;
mod connect;
mod fidelity;
mod help;
mod isolation;
mod lifecycle;
mod robustness;
mod snapshot_restore;
mod support;
mod tls;
