//! Integration tests: the real `vc` binary against the fake Kubernetes API server.

mod bad_input;
mod connect;
mod doctor;
mod fidelity;
mod generated;
mod help;
mod install;
mod isolation;
mod lifecycle;
mod operator;
mod pause;
mod robustness;
mod snapshot_restore;
mod support;
mod tls;
mod verbose;
