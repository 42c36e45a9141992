//! ractmq: placeholder until the broker crate lands.
