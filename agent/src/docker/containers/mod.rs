//! `/containers`: create ([`create`]), inspect and list ([`inspect`],
//! [`list`]), and the lifecycle ([`lifecycle`]: start, stop, restart,
//! kill, wait, remove) and [`prune`]. Logs and attach are the streams of
//! `super::logs` and `super::attach`.

mod create;
mod inspect;
mod lifecycle;
mod list;
mod prune;

use std::collections::HashMap;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::routing::MethodRouter;
use serde::Deserialize;

use super::Docker;

pub(super) type QueryMap = Result<Query<HashMap<String, String>>, QueryRejection>;

/// `{id}` of a path (the version, when there is one, is ignored).
#[derive(Debug, Deserialize)]
pub(super) struct IdPath {
    pub id: String,
}

pub fn create() -> MethodRouter<Docker> {
    create::route()
}

pub fn inspect() -> MethodRouter<Docker> {
    inspect::route()
}

pub fn list() -> MethodRouter<Docker> {
    list::route()
}

pub fn prune() -> MethodRouter<Docker> {
    prune::route()
}

pub fn start() -> MethodRouter<Docker> {
    lifecycle::start()
}

pub fn stop() -> MethodRouter<Docker> {
    lifecycle::stop()
}

pub fn restart() -> MethodRouter<Docker> {
    lifecycle::restart()
}

pub fn kill() -> MethodRouter<Docker> {
    lifecycle::kill()
}

pub fn wait() -> MethodRouter<Docker> {
    lifecycle::wait()
}

pub fn remove() -> MethodRouter<Docker> {
    lifecycle::remove()
}
