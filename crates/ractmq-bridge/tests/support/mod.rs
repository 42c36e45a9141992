//! What the integration tests share: real servers they talk to (each test file uses some of them).
#![allow(dead_code)]

pub mod kafka;
pub mod postgres;
