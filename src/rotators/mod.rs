//! Built-in rotators: set a new secret value at its peer and prove it works.
pub mod ldap;
