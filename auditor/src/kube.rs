//! The Kubernetes API, read for one thing: who owns a pod (`generate --group-by owner`). The
//! names on a node (pod name minus its replica suffixes) say which replicas belong together
//! most of the time; owner references say it always, but only the API server has them.
//!
//! auditor reads the API through `kubectl proxy` (plain HTTP on the admin's machine, usually
//! `http://127.0.0.1:8001`): it holds no credential and speaks no TLS; kubectl authenticates,
//! and what it may read is the user's RBAC (namespaced `get` of pods, replicasets and jobs is
//! enough). This is the only module that talks to the API.

use std::time::Duration;

/// Errors reading the API.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("--kube-api {0}: give kubectl proxy's address, http://HOST:PORT (run `kubectl proxy`; auditor speaks no TLS and holds no credential)")]
    Url(String),
    #[error("{url}: {message} (is `kubectl proxy` running there?)")]
    Request { url: String, message: String },
    #[error("{url}: the API answered {status}{}", hint(*.status))]
    Status { url: String, status: u16 },
    #[error("{url}: not a Kubernetes object: {message}")]
    Json { url: String, message: String },
}

fn hint(status: u16) -> &'static str {
    match status {
        401 | 403 => " (kubectl's user may not read it: grant `get` on pods, replicasets and jobs in that namespace)",
        _ => "",
    }
}

/// A workload that owns pods.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Owner {
    /// Deployment, StatefulSet, DaemonSet, CronJob, Job, ReplicaSet (without a Deployment), …
    pub kind: String,
    pub name: String,
}

/// An RFC 1123 name as the API accepts in a path: nothing that could leave the path segment.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !s.starts_with(['-', '.'])
}

/// A client of `kubectl proxy`.
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// `base`: `http://HOST:PORT`.
    pub fn new(base: &str) -> Result<Client, KubeError> {
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| KubeError::Url(base.to_owned()))?;
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(KubeError::Url(base.to_owned()));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(Client {
            base: format!("http://{rest}"),
            agent,
        })
    }

    /// GET `path`: the object, or `None` when it does not exist (404).
    fn get(&self, path: &str) -> Result<Option<serde_json::Value>, KubeError> {
        let url = format!("{}{path}", self.base);
        let mut response = self
            .agent
            .get(&url)
            .header("Accept", "application/json")
            .call()
            .map_err(|e| KubeError::Request {
                url: url.clone(),
                message: e.to_string(),
            })?;
        let status = response.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            return Err(KubeError::Status { url, status });
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(8 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| KubeError::Request {
                url: url.clone(),
                message: e.to_string(),
            })?;
        serde_json::from_str(&body)
            .map(Some)
            .map_err(|e| KubeError::Json {
                url,
                message: e.to_string(),
            })
    }

    /// The workload that owns pod `namespace/pod`, following ReplicaSet → Deployment and
    /// Job → CronJob; the pod itself when nothing controls it; `None` when the pod is gone (or
    /// a name is not one the API has).
    pub fn owner_of_pod(&self, namespace: &str, pod: &str) -> Result<Option<Owner>, KubeError> {
        if !valid_name(namespace) || !valid_name(pod) {
            return Ok(None);
        }
        let Some(p) = self.get(&format!("/api/v1/namespaces/{namespace}/pods/{pod}"))? else {
            return Ok(None);
        };
        let Some(mut owner) = controller(&p) else {
            return Ok(Some(Owner {
                kind: "Pod".into(),
                name: pod.to_owned(),
            }));
        };
        let parent = match owner.kind.as_str() {
            "ReplicaSet" => Some(("/apis/apps/v1", "replicasets")),
            "Job" => Some(("/apis/batch/v1", "jobs")),
            _ => None,
        };
        if let (Some((group, resource)), true) = (parent, valid_name(&owner.name)) {
            let path = format!("{group}/namespaces/{namespace}/{resource}/{}", owner.name);
            if let Some(up) = self.get(&path)?.as_ref().and_then(controller) {
                owner = up;
            }
        }
        Ok(Some(owner))
    }
}

/// The controlling owner reference of an object.
fn controller(object: &serde_json::Value) -> Option<Owner> {
    object["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
        .and_then(|r| {
            let kind = r["kind"].as_str()?;
            let name = r["name"].as_str()?;
            (kind.len() <= 63
                && kind.bytes().all(|b| b.is_ascii_alphanumeric())
                && valid_name(name))
            .then(|| Owner {
                kind: kind.to_owned(),
                name: name.to_owned(),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kubectl_proxys_plain_address_is_taken() {
        assert!(Client::new("http://127.0.0.1:8001").is_ok());
        assert!(Client::new("http://127.0.0.1:8001/").is_ok());
        for bad in [
            "https://10.0.0.1:6443",
            "127.0.0.1:8001",
            "http://",
            "http://h/api",
            "http://user@h",
        ] {
            assert!(Client::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_cannot_leave_their_path_segment() {
        assert!(valid_name("web-7d4b9c8f6-x2x9z"));
        for bad in ["", "../secrets", "a/b", "A", "x?y", "-x", ".x"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_controller_is_the_owner() {
        let v = serde_json::json!({"metadata": {"ownerReferences": [
            {"kind": "Node", "name": "n1"},
            {"kind": "ReplicaSet", "name": "web-7d4b9c8f6", "controller": true}
        ]}});
        assert_eq!(
            controller(&v),
            Some(Owner {
                kind: "ReplicaSet".into(),
                name: "web-7d4b9c8f6".into()
            })
        );
        let forged = serde_json::json!({"metadata": {"ownerReferences": [
            {"kind": "Deploy/../x", "name": "web", "controller": true}
        ]}});
        assert_eq!(controller(&forged), None);
    }
}
