//! Built-in rotators: the protocols that replace a credential at its peer.

pub mod duo;
