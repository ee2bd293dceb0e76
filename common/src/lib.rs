//! What Husk's processes must agree on: where things live and how they
//! talk. Kept tiny and dependency-light because PID 1 links it.

pub mod atomic;
pub mod boot;
pub mod civil;
pub mod mountinfo;
pub mod notify;
pub mod paths;
