//! Integration tests: the real `vc` binary against the fake Kubernetes API server.

mod bad_input;
mod charts;
mod ci_outputs;
mod connect;
mod doctor;
mod etcd;
mod fidelity;
mod generated;
mod help;
mod hosting;
mod install;
mod isolation;
mod lifecycle;
mod operator;
mod operator_create;
mod pause;
mod pool;
mod provision;
mod robustness;
mod snapshot_restore;
mod support;
mod tls;
mod verbose;
