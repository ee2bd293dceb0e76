//! Docker's exec (`docker exec`): `POST /containers/{id}/exec` makes an
//! exec instance (checked, not run: 201 `{"Id": …}`), `POST
//! /exec/{id}/start` runs it — on the taken-over connection as attach
//! does (`101 UPGRADED`; raw for a tty, multiplexed otherwise; the
//! client's bytes to its stdin, its EOF the stdin's end, the detach keys
//! the end of the session), as a 200 streamed body without the upgrade,
//! or detached (its output dropped) — `GET /exec/{id}/json` is what the
//! CLI asks for the exit code once the stream ended, `POST
//! /exec/{id}/resize` sets its pty's size. The instances are the
//! container manager's (`containers::exec`: in memory, bounded, a
//! finished one forgotten a few minutes after its end or with its
//! container); an unknown one is 404 `No such exec instance: ID`, as
//! dockerd's.
//!
//! The process is the container's own kind (its namespaces, cgroup,
//! capabilities, seccomp filter, no_new_privs): `Privileged` is refused
//! by name, as Husk's security policy never grants it to an exec.

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::io::AsyncReadExt;

use super::containers::{IdPath, QueryMap};
use super::error::DockerError;
use super::frame::CONTENT_TYPE;
use super::{Docker, ids};
use crate::api::attach::{splice, take_over};
use crate::containers::{ExecConfig, ExecView};
use husk_api::client::{DEFAULT_DETACH_KEYS, parse_detach_keys};
use husk_api::containers::ExecRequest;

/// What a start's body may hold (the CLI sends a few bytes).
const MAX_START_BODY: usize = 64 * 1024;

/// `POST /containers/{id}/exec`'s body (Docker's `ExecConfig`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    user: Option<String>,
    working_dir: Option<String>,
    detach_keys: Option<String>,
    privileged: bool,
    /// `[height, width]` (API 1.42).
    console_size: Option<[u32; 2]>,
    /// Only the start's `Detach` counts, as dockerd's.
    #[allow(dead_code)]
    detach: bool,
    /// Anything else: refused unless it is Docker's zero value.
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// `POST /exec/{id}/start`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
    /// The stream's format follows the exec's own `Tty`, as dockerd's.
    #[allow(dead_code)]
    tty: bool,
    console_size: Option<[u32; 2]>,
}

pub fn create() -> MethodRouter<Docker> {
    post(
        |State(docker): State<Docker>, UrlPath(path): UrlPath<IdPath>, body: Bytes| async move {
            let body: CreateBody = serde_json::from_slice(&body)
                .map_err(|e| DockerError::bad_request(format!("exec: {e}")))?;
            let name = ids::name_of(&docker.manager, &path.id)?;
            let id = docker.manager.exec_create(&name, config(body)?)?;
            Ok::<_, DockerError>((StatusCode::CREATED, axum::Json(json!({ "Id": id }))))
        },
    )
}

/// The exec Docker's body asks for, or why not.
fn config(body: CreateBody) -> Result<ExecConfig, DockerError> {
    if body.privileged {
        return Err(DockerError::bad_request(
            "exec: Privileged is refused: Husk's security policy never gives an exec more than its container has",
        ));
    }
    super::fields::refuse_rest(&body.rest, "exec: ")?;
    let cmd = body.cmd.unwrap_or_default();
    if cmd.is_empty() {
        return Err(DockerError::bad_request("No exec command specified"));
    }
    if let Some(keys) = &body.detach_keys {
        parse_detach_keys(keys).map_err(DockerError::bad_request)?;
    }
    let given = |text: Option<String>| text.filter(|t| !t.is_empty());
    Ok(ExecConfig {
        request: ExecRequest {
            cmd,
            env: body.env.unwrap_or_default(),
            user: given(body.user),
            workdir: given(body.working_dir),
            tty: body.tty,
            interactive: body.attach_stdin,
        },
        stdout: body.attach_stdout,
        stderr: body.attach_stderr,
        detach_keys: given(body.detach_keys),
        size: body.console_size.and_then(size),
    })
}

/// `[height, width]` as a pty size; zeros (the CLI's "no terminal") are
/// none.
fn size([height, width]: [u32; 2]) -> Option<(u16, u16)> {
    let rows = u16::try_from(height).ok().filter(|&r| r > 0)?;
    let cols = u16::try_from(width).ok().filter(|&c| c > 0)?;
    Some((rows, cols))
}

pub fn start() -> MethodRouter<Docker> {
    post(
        |State(docker): State<Docker>, UrlPath(path): UrlPath<IdPath>, request: Request| async move {
            start_exec(&docker, &path.id, request).await
        },
    )
}

async fn start_exec(
    docker: &Docker,
    id: &str,
    mut request: Request,
) -> Result<Response, DockerError> {
    // hyper leaves this only on a request that asked for the upgrade.
    let upgrade = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>();
    let bytes = axum::body::to_bytes(request.into_body(), MAX_START_BODY)
        .await
        .map_err(|e| DockerError::bad_request(format!("exec start: {e}")))?;
    let body: StartBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        StartBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| DockerError::bad_request(format!("exec start: {e}")))?
    };
    let view = docker.manager.exec_inspect(id)?;
    let size = body.console_size.and_then(size);
    if body.detach {
        docker.manager.exec_start(id, false, size).await?;
        return Ok(StatusCode::OK.into_response());
    }
    let keys = view
        .config
        .detach_keys
        .as_deref()
        .unwrap_or(DEFAULT_DETACH_KEYS);
    let keys = parse_detach_keys(keys).map_err(DockerError::bad_request)?;
    let stream = docker
        .manager
        .exec_start(id, true, size)
        .await?
        .ok_or_else(|| DockerError::internal(format!("exec {id}: no stream to attach to")))?;
    let content_type = if view.config.request.tty {
        "application/vnd.docker.raw-stream"
    } else {
        CONTENT_TYPE
    };
    let Some(upgrade) = upgrade else {
        // A plain streamed answer: nothing comes from the client, so the
        // stdin ends at once.
        let (reader, writer) = stream.into_split();
        drop(writer);
        let chunks = futures_util::stream::unfold(reader, |mut reader| async move {
            let mut buf = vec![0u8; 32 * 1024];
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::convert::Infallible>(Bytes::from(buf)), reader))
                }
            }
        });
        return Ok((
            [(header::CONTENT_TYPE, content_type)],
            Body::from_stream(chunks),
        )
            .into_response());
    };
    let what = format!("Docker API: exec {id}");
    // If the upgrade fails, the exec runs on; its output is dropped.
    Ok(take_over(
        upgrade,
        content_type,
        what,
        move |upgraded, _| async move { splice(upgraded, stream, keys).await },
    ))
}

pub fn inspect() -> MethodRouter<Docker> {
    get(
        |State(docker): State<Docker>, UrlPath(path): UrlPath<IdPath>| async move {
            let view = docker.manager.exec_inspect(&path.id)?;
            let container = ids::resolve(&docker.manager, &view.container)?;
            Ok::<_, DockerError>(axum::Json(inspect_json(&view, &ids::id_of(&container))))
        },
    )
}

/// Docker's `ContainerExecInspect`.
fn inspect_json(view: &ExecView, container_id: &str) -> Value {
    let request = &view.config.request;
    json!({
        "ID": view.id,
        "Running": view.running,
        "ExitCode": view.exit_code,
        "ProcessConfig": {
            "tty": request.tty,
            "entrypoint": request.cmd.first(),
            "arguments": request.cmd.get(1..).unwrap_or_default(),
            "privileged": false,
            "user": request.user.as_deref().unwrap_or_default(),
        },
        "OpenStdin": request.interactive,
        "OpenStdout": view.config.stdout,
        "OpenStderr": view.config.stderr,
        "CanRemove": false,
        "ContainerID": container_id,
        "DetachKeys": view.config.detach_keys.as_deref().unwrap_or_default(),
        "Pid": view.pid.unwrap_or(0),
    })
}

/// `POST /exec/{id}/resize?h=&w=`: the CLI sends it once started, and
/// at every SIGWINCH.
pub fn resize() -> MethodRouter<Docker> {
    post(
        |State(docker): State<Docker>, UrlPath(path): UrlPath<IdPath>, query: QueryMap| async move {
            let (rows, cols) = super::attach::terminal_size(query)?;
            docker.manager.exec_resize(&path.id, rows, cols)?;
            Ok::<_, DockerError>(StatusCode::OK)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> CreateBody {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_clis_create_body_maps_to_an_exec() {
        // What Debian's 20.10 CLI sends for `exec -it -u 1000 -w /srv -e A=1 box sh`.
        let config = config(body(
            r#"{"User":"1000","Privileged":false,"Tty":true,"AttachStdin":true,
                "AttachStderr":true,"AttachStdout":true,"Detach":false,"DetachKeys":"",
                "Env":["A=1"],"WorkingDir":"/srv","Cmd":["sh"]}"#,
        ))
        .unwrap();
        assert_eq!(config.request.cmd, ["sh"]);
        assert_eq!(config.request.user.as_deref(), Some("1000"));
        assert_eq!(config.request.workdir.as_deref(), Some("/srv"));
        assert_eq!(config.request.env, ["A=1"]);
        assert!(config.request.tty && config.request.interactive);
        assert!(config.stdout && config.stderr);
        assert_eq!(config.detach_keys, None);
        // `-d`: nothing attached; empty strings are not given.
        let config = config_of(r#"{"Cmd":["true"],"User":"","WorkingDir":"","Env":null}"#);
        assert!(!config.request.interactive && !config.stdout && !config.stderr);
        assert_eq!(config.request.user, None);
        assert_eq!(config.request.workdir, None);
        // API 1.42's ConsoleSize: [height, width]; zeros are none.
        assert_eq!(
            config_of(r#"{"Cmd":["sh"],"ConsoleSize":[30,90]}"#).size,
            Some((30, 90))
        );
        assert_eq!(
            config_of(r#"{"Cmd":["sh"],"ConsoleSize":[0,0]}"#).size,
            None
        );
    }

    fn config_of(json: &str) -> ExecConfig {
        config(body(json)).unwrap()
    }

    #[test]
    fn what_husk_cannot_honour_is_refused_by_name() {
        let refused = |json: &str| config(body(json)).unwrap_err().message;
        let privileged = refused(r#"{"Cmd":["sh"],"Privileged":true}"#);
        assert!(privileged.contains("Privileged is refused"), "{privileged}");
        assert_eq!(refused(r#"{"Cmd":[]}"#), "No exec command specified");
        assert_eq!(refused(r#"{}"#), "No exec command specified");
        let unknown = refused(r#"{"Cmd":["sh"],"Capabilities":["CAP_SYS_ADMIN"]}"#);
        assert!(unknown.contains("Capabilities"), "{unknown}");
        let keys = refused(r#"{"Cmd":["sh"],"DetachKeys":"ctrl-1"}"#);
        assert!(keys.contains("ctrl-1"), "{keys}");
        // Docker's zero values of fields Husk does not know are fine.
        config_of(r#"{"Cmd":["sh"],"Capabilities":null,"Extra":false}"#);
    }

    #[test]
    fn the_inspect_is_dockers() {
        let view = ExecView {
            id: "e".repeat(64),
            container: "box".into(),
            config: config_of(r#"{"Cmd":["sh","-c","exit 3"],"AttachStdout":true,"User":"1000"}"#),
            running: false,
            pid: Some(42),
            exit_code: Some(3),
        };
        let json = inspect_json(&view, "c0ffee");
        assert_eq!(json["ExitCode"], 3);
        assert_eq!(json["Running"], false);
        assert_eq!(json["Pid"], 42);
        assert_eq!(json["ContainerID"], "c0ffee");
        assert_eq!(json["ProcessConfig"]["entrypoint"], "sh");
        assert_eq!(json["ProcessConfig"]["arguments"], json!(["-c", "exit 3"]));
        assert_eq!(json["ProcessConfig"]["user"], "1000");
        assert_eq!(
            (json["OpenStdout"].clone(), json["OpenStderr"].clone()),
            (json!(true), json!(false))
        );
        // Before its start: no exit code, null as dockerd's.
        let created = ExecView {
            running: false,
            exit_code: None,
            pid: None,
            ..view
        };
        assert_eq!(inspect_json(&created, "c0ffee")["ExitCode"], Value::Null);
        assert_eq!(inspect_json(&created, "c0ffee")["Pid"], 0);
    }
}
