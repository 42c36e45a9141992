//! What the integration tests share: real servers they talk to.

pub mod postgres;
