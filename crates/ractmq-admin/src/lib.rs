//! Operating a ractmq node: the REST API (axum), Prometheus metrics, and `ractmq ctl`, its command-line
//! client. EMQX's emqx_management and emqx_prometheus, in Rust's conventions.
//!
//! [`start`] serves the API for one node beside its broker; [`ctl::run`] is the client. The API reads what the
//! broker keeps outside its actors (the session store, the router, the counters; see
//! `ractmq_broker::BrokerView`) and the cluster's membership, so answering never waits on a busy session.
//!
//! | file | what it owns |
//! |---|---|
//! | `config.rs` | where the API listens, who may use it, whether chaos is on; the checks |
//! | `server.rs` | binding, the routes, authentication, errors as JSON |
//! | `login.rs`, `login_state.rs` | logging in for a dashboard: session tokens, their expiry, failed logins |
//! | `state.rs` | what every handler reads |
//! | `clients.rs`, `topics.rs`, `retained.rs` | clients (list, search, show, kick), subscriptions and routes, retained messages |
//! | `node.rs` | status, nodes and cluster, stats, listeners, publish over HTTP |
//! | `evacuate.rs` | evacuating the node, leaving the cluster, forgetting a member that is down |
//! | `data.rs` | the store in the data dir: what it holds, how its commits go |
//! | `bridges.rs` | bridges: list, show, create, replace, delete, start, stop, restart, dead letters and their replay |
//! | `rules.rs` | rules: list, show, create, replace, delete, enable, disable, and the rule test |
//! | `dashboard.rs` | the web dashboard's files (`GET /`, `/assets/...`) |
//! | `security.rs`, `acl.rs` | users, bans, flapping detection, reloading the ACL; the ACL in force |
//! | `supervision.rs` | the live supervision tree, with what chaos takes to kill each actor |
//! | `chaos.rs`, `trace.rs` | killing actors on purpose; one client's packets as they pass |
//! | `prometheus.rs` | the `/metrics` exposition |
//! | `openapi.rs` | the OpenAPI document of all of the above |
//! | `ctl.rs`, `table.rs` | `ractmq ctl`: HTTP calls, human tables or JSON |

#![deny(missing_docs)]

pub(crate) mod acl;
pub(crate) mod bridges;
pub(crate) mod chaos;
pub(crate) mod clients;
pub(crate) mod config;
pub mod ctl;
mod dashboard;
pub(crate) mod data;
mod error;
pub(crate) mod evacuate;
pub(crate) mod health;
pub(crate) mod login;
pub(crate) mod login_state;
pub(crate) mod node;
pub(crate) mod openapi;
pub(crate) mod prometheus;
pub(crate) mod retained;
pub(crate) mod rules;
pub(crate) mod security;
pub(crate) mod server;
pub(crate) mod state;
pub(crate) mod supervision;
pub(crate) mod table;
pub(crate) mod topics;
pub(crate) mod trace;

pub use config::ApiConfig;
pub use server::{start, ApiServer};
