//! The hook↔daemon protocol and the OCI state the hook reads.
//!
//! One request per connection: the hook writes one JSON object and shuts its write side down;
//! the daemon answers with one JSON object and closes. Both sides bound what they read and how
//! long they wait, so neither a silent nor a flooding peer can hang or exhaust the other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Largest request or reply either side reads.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Largest OCI state the hook reads from stdin.
pub const MAX_STATE: usize = 1024 * 1024;
/// Where `auditor daemon` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/auditor/daemon.sock";

/// A request from `auditor hook`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Start tracking a container being created.
    Register(Register),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// The container id: also the observation file's name.
    pub id: String,
    /// Host pid of the container's init (the runtime's init process at `createRuntime`).
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// `runc` or `crun` when the hook was told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The container's annotations (from the runtime's state): they say which engine made it
    /// and, under Kubernetes, its pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// True once tracking has begun.
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where the observation will be written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

impl Reply {
    pub fn ok(output: String) -> Self {
        Reply {
            ok: true,
            error: None,
            output: Some(output),
        }
    }
    pub fn err(msg: impl Into<String>) -> Self {
        Reply {
            ok: false,
            error: Some(msg.into()),
            output: None,
        }
    }
}

/// The OCI runtime state a hook receives on stdin (runtime-spec `state`): only what auditor
/// uses; other fields are ignored, as the spec allows runtimes to add them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    #[serde(default)]
    pub oci_version: String,
    pub id: String,
    #[serde(default)]
    pub status: String,
    pub pid: Option<u32>,
    #[serde(default)]
    pub bundle: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("not valid JSON for {what}: {msg}")]
    Json { what: &'static str, msg: String },
    #[error("{what} is larger than {max} bytes")]
    TooLarge { what: &'static str, max: usize },
    #[error("the OCI state has no pid (is the hook configured as createRuntime or prestart?)")]
    NoPid,
    #[error("container id {id:?} is not a valid id (1-255 characters of A-Z a-z 0-9 _ + - .; not `.` or `..`)")]
    BadId { id: String },
    #[error("pid 0 is not a process")]
    BadPid,
}

/// Parse the OCI state a hook reads on stdin.
pub fn parse_state(bytes: &[u8]) -> Result<OciState, ProtocolError> {
    if bytes.len() > MAX_STATE {
        return Err(ProtocolError::TooLarge {
            what: "the OCI state",
            max: MAX_STATE,
        });
    }
    let st: OciState = serde_json::from_slice(bytes).map_err(|e| ProtocolError::Json {
        what: "the OCI state on stdin",
        msg: e.to_string(),
    })?;
    check_id(&st.id)?;
    match st.pid {
        None => Err(ProtocolError::NoPid),
        Some(0) => Err(ProtocolError::BadPid),
        Some(_) => Ok(st),
    }
}

/// Parse and validate a request.
pub fn parse_request(bytes: &[u8]) -> Result<Request, ProtocolError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(ProtocolError::TooLarge {
            what: "the request",
            max: MAX_MESSAGE,
        });
    }
    let req: Request = serde_json::from_slice(bytes).map_err(|e| ProtocolError::Json {
        what: "a request",
        msg: e.to_string(),
    })?;
    let Request::Register(r) = &req;
    check_id(&r.id)?;
    if r.pid == 0 {
        return Err(ProtocolError::BadPid);
    }
    Ok(req)
}

/// The id names a file in the output directory: the characters runc allows, nothing that
/// could leave the directory.
pub fn check_id(id: &str) -> Result<(), ProtocolError> {
    let ok = !id.is_empty()
        && id.len() <= 255
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::BadId { id: id.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_runc_state_and_rejects_what_it_cannot_use() {
        let st = parse_state(
            br#"{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":21710,"bundle":"/tmp/b","annotations":{"a":"b"},"future":1}"#,
        )
        .expect("runc's state");
        assert_eq!(st.id, "c1");
        assert_eq!(st.pid, Some(21710));
        assert_eq!(st.annotations.get("a").map(String::as_str), Some("b"));
        assert_eq!(
            parse_state(br#"{"id":"c1","status":"stopped"}"#),
            Err(ProtocolError::NoPid)
        );
        assert_eq!(
            parse_state(br#"{"id":"c1","pid":0}"#),
            Err(ProtocolError::BadPid)
        );
        assert!(matches!(
            parse_state(br#"{"id":"../etc/passwd","pid":3}"#),
            Err(ProtocolError::BadId { .. })
        ));
        assert!(matches!(
            parse_state(b"not json"),
            Err(ProtocolError::Json { .. })
        ));
        assert!(matches!(
            parse_state(&vec![b' '; MAX_STATE + 1]),
            Err(ProtocolError::TooLarge { .. })
        ));
    }

    #[test]
    fn requests_round_trip_and_garbage_is_refused() {
        let req = Request::Register(Register {
            id: "a.b-c_1".into(),
            pid: 42,
            bundle: None,
            runtime: Some("runc".into()),
            annotations: [("io.container.manager".to_string(), "libpod".to_string())].into(),
        });
        let text = serde_json::to_vec(&req).expect("serialize");
        assert_eq!(parse_request(&text), Ok(req));
        for bad in [
            &b""[..],
            b"\x00\xff garbage",
            br#"{"register":{"id":"x","pid":1,"extra":true}}"#,
            br#"{"unregister":{"id":"x"}}"#,
            br#"{"register":{"id":"","pid":1}}"#,
            br#"{"register":{"id":"a/b","pid":1}}"#,
            br#"{"register":{"id":"..","pid":1}}"#,
            br#"{"register":{"id":"x","pid":0}}"#,
            br#"{"register":{"id":"x","pid":-1}}"#,
        ] {
            assert!(
                parse_request(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let reply: Reply = serde_json::from_str(r#"{"ok":false,"error":"x"}"#).expect("reply");
        assert_eq!(reply, Reply::err("x"));
    }
}
