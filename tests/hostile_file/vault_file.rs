//! See tests/hostile_file.rs.

#[allow(unused_imports)]
use crate::support;
