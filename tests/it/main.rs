//! The integration tests, built as one binary.
//!
//! Each module speaks to a real broker: in-process over loopback sockets with real clients (rumqttc, raw
//! bytes), or as separate `ractmq` processes for the CLI, the REST API and the cluster. They live in one test
//! binary rather than one per file because each binary links the whole broker: 26 of them took 3 GB of disk
//! and most of the link time, which ran CI out of space. Run one module with `cargo test --test it cluster_`.

mod common;

mod abuse;
mod admin_api;
mod admin_dashboard;
mod bad_input;
mod bridge_mqtt;
mod bridge_ops;
mod chaos;
mod cli;
mod cluster_discovery;
mod cluster_evacuate;
mod cluster_membership;
mod cluster_partition;
mod cluster_routing;
mod cluster_rules;
mod cluster_sessions;
mod cluster_supervision;
mod cluster_tls;
mod config_file;
mod connack;
mod ctl;
mod ctl_security;
mod data;
mod dead_letters;
mod durability;
mod flow_control;
mod health;
mod hibernate;
mod listeners;
mod mqtt5;
mod pubsub;
mod qos2_exactly_once;
mod queue_rules;
mod reason_codes;
mod retained;
mod rules_actions;
mod rules_ops;
mod rules_sql;
mod security;
mod security_http;
mod sessions;
mod shared_subscriptions;
mod shutdown;
mod supervision;
mod sys_topics;
mod user_topology;
mod will;
