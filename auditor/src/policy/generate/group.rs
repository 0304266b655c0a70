//! Grouping observations of replicas into one profile per workload (`generate --group-by`):
//! by the image they run, or by the workload the engine's names show — Kubernetes' namespace,
//! pod name minus its replica suffixes and container name; Docker's and podman's container name
//! minus a replica number (`shop-web-1`, `shop_web_2`).

use std::collections::BTreeMap;

use crate::observe::model::{Observation, Target};

/// What replicas share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    /// The image the containers run.
    Image,
    /// Namespace, pod name minus replica suffixes and container name (Kubernetes); the
    /// engine's container name minus a replica number (Docker, podman).
    Workload,
    /// Kubernetes: namespace, the workload that owns the pod (Deployment, StatefulSet,
    /// DaemonSet, CronJob, …, read from the API) and container name; like `workload` for a pod
    /// the API no longer has and for containers outside Kubernetes.
    Owner,
}

/// Pods' owners as the API said: (namespace, pod) → (kind, name).
pub type Owners = BTreeMap<(String, String), (String, String)>;

/// The Kubernetes pod of an observation: (namespace, pod), if it is one's.
pub fn pod_of(obs: &Observation) -> Option<(&str, &str)> {
    use crate::observe::model::{POD_NAME, POD_NAMESPACE};
    let Target::Container { labels, .. } = &obs.target else {
        return None;
    };
    Some((
        labels.get(POD_NAMESPACE)?.as_str(),
        labels.get(POD_NAME)?.as_str(),
    ))
}

/// Kubernetes' name-suffix alphabet (`rand.String`: no vowels, no 0, 1, 3).
const K8S_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

fn k8s_random(s: &str, lens: std::ops::RangeInclusive<usize>) -> bool {
    lens.contains(&s.len()) && s.chars().all(|c| K8S_ALPHABET.contains(c))
}

/// `name` without what makes replicas differ: a Deployment pod's `-<template hash>-<5>`, a
/// DaemonSet's or Job's `-<5>`, a StatefulSet's or Compose's `-N`/`_N`.
pub fn replica_base(name: &str) -> &str {
    // A Deployment's pod first: its random suffix may be all digits (the alphabet has 2, 4-9),
    // which would otherwise read as a StatefulSet's ordinal and leave the template hash on.
    if let Some((head, last)) = name.rsplit_once('-') {
        if k8s_random(last, 5..=5) {
            if let Some((base, hash)) = head.rsplit_once('-') {
                if !base.is_empty() && k8s_random(hash, 6..=10) {
                    return base;
                }
            }
        }
    }
    if let Some((head, n)) = name.rsplit_once(['-', '_']) {
        if !head.is_empty() && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) {
            return head;
        }
    }
    if let Some((head, last)) = name.rsplit_once('-') {
        if !head.is_empty() && k8s_random(last, 5..=5) {
            return head;
        }
    }
    name
}

/// The group of one observation given its pod's owner, or why it has none.
pub fn key_with(obs: &Observation, by: GroupBy, owners: &Owners) -> Result<String, &'static str> {
    if by == GroupBy::Owner {
        if let (Some((ns, pod)), Target::Container { name, labels, .. }) =
            (pod_of(obs), &obs.target)
        {
            if let Some((kind, owner)) = owners.get(&(ns.to_owned(), pod.to_owned())) {
                let container = labels
                    .get(crate::observe::model::CONTAINER_NAME)
                    .or(name.as_ref())
                    .map_or("", String::as_str);
                return Ok(format!("{ns}/{kind}/{owner}/{container}"));
            }
        }
        return key(obs, GroupBy::Workload);
    }
    key(obs, by)
}

/// The group of one observation, or why it has none.
pub fn key(obs: &Observation, by: GroupBy) -> Result<String, &'static str> {
    let Target::Container {
        engine,
        name,
        image,
        labels,
        ..
    } = &obs.target
    else {
        return Err("it is not a container's observation");
    };
    match by {
        GroupBy::Image => image
            .clone()
            .ok_or("no image is recorded for the container"),
        GroupBy::Workload | GroupBy::Owner => {
            use crate::observe::model::{CONTAINER_NAME, POD_NAME, POD_NAMESPACE};
            if let (Some(ns), Some(pod)) = (labels.get(POD_NAMESPACE), labels.get(POD_NAME)) {
                let container = labels
                    .get(CONTAINER_NAME)
                    .or(name.as_ref())
                    .map_or("", String::as_str);
                return Ok(format!("{ns}/{}/{container}", replica_base(pod)));
            }
            let name = name
                .as_deref()
                .ok_or("no container name is recorded for the container")?;
            Ok(format!(
                "{}/{}",
                engine.as_deref().unwrap_or("container"),
                replica_base(name)
            ))
        }
    }
}

/// Observations (by index) of each group, in key order; the first observation without a group
/// is an error (index, why).
pub fn group(
    observations: &[Observation],
    by: GroupBy,
    owners: &Owners,
) -> Result<BTreeMap<String, Vec<usize>>, (usize, &'static str)> {
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, o) in observations.iter().enumerate() {
        groups
            .entry(key_with(o, by, owners).map_err(|e| (i, e))?)
            .or_default()
            .push(i);
    }
    Ok(groups)
}

/// A file name for a group's key: letters, digits, `.`, `-` and `_` kept, the rest `_`, at
/// most 100 bytes, never empty or a dot name.
pub fn file_stem(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        s = format!("group{s}").replace('.', "_");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_suffixes_of_kubernetes_and_compose_go() {
        assert_eq!(replica_base("web-7d4b9c8f6-x2x9z"), "web");
        // A Deployment pod whose random suffix happens to be all digits.
        assert_eq!(replica_base("web-7d4b9c8f6-22456"), "web");
        assert_eq!(replica_base("node-exporter-x2x9z"), "node-exporter");
        assert_eq!(replica_base("db-0"), "db");
        assert_eq!(replica_base("shop-web-1"), "shop-web");
        assert_eq!(replica_base("shop_web_12"), "shop_web");
        // Words that only look like suffixes stay.
        assert_eq!(replica_base("web-cache"), "web-cache");
        assert_eq!(replica_base("nginx"), "nginx");
        assert_eq!(replica_base("-1"), "-1");
        assert_eq!(replica_base("api-v2"), "api-v2");
    }

    #[test]
    fn file_stems_never_leave_the_directory() {
        assert_eq!(file_stem("shop/web/nginx"), "shop_web_nginx");
        assert_eq!(file_stem("nginx:1.25"), "nginx_1.25");
        assert_eq!(file_stem(".."), "group__");
        assert_eq!(file_stem(""), "group");
        assert!(file_stem(&"x".repeat(500)).len() <= 100);
    }
}
