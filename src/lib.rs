//! `vc`: ephemeral virtual Kubernetes clusters on any host cluster.
//! This file only declares the modules; see `shared/DESIGN.md` for the layers.

pub mod chart;
pub mod ci;
pub mod cli;
pub mod commands;
pub mod complete;
pub mod connection;
pub mod engine;
pub mod error;
pub mod forward;
pub mod host;
pub mod http_log;
pub mod kubeconfig;
pub mod operator;
pub mod output;
pub mod pool;
pub mod provision;
pub mod snapshot;
pub mod spec;
