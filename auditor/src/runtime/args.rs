//! Reading an OCI runtime's command line the way runc (urfave/cli) and crun read it, without
//! changing it: the global flags first (`--root`, `--log`, `--log-format`,
//! `--systemd-cgroup`, …), then the subcommand, its flags and the container id. The wrapper
//! only needs the subcommand, the bundle and the log file; everything is passed on verbatim.

use std::path::PathBuf;

/// Global flags of runc and crun that take a value (the rest are booleans). A value may also
/// be attached (`--root=/x`); urfave/cli accepts one dash as well as two (`-root /x`).
const GLOBAL_WITH_VALUE: &[&str] = &[
    "root",
    "log",
    "log-format",
    "criu",
    "rootless",
    "cgroup-manager",
];

/// Flags of `create` and `run` that take a value.
const CREATE_WITH_VALUE: &[&str] = &["bundle", "b", "console-socket", "pid-file", "preserve-fds"];

/// What the wrapper learns from a runtime command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Invocation {
    /// The subcommand (`create`, `start`, `state`, …), if any: `runc --version` has none.
    pub subcommand: Option<String>,
    /// `--bundle`/`-b` of `create`/`run` (the runtime defaults to its working directory).
    pub bundle: Option<PathBuf>,
    /// The container id: the first operand after the subcommand.
    pub id: Option<String>,
    /// The global `--log` file, where the runtime (and the wrapper) log for the shim.
    pub log: Option<PathBuf>,
    /// `--log-format json`: the shim parses the log as JSON lines.
    pub log_json: bool,
}

impl Invocation {
    /// Whether this call creates a container from a bundle: the only calls the wrapper edits.
    pub fn creates(&self) -> bool {
        matches!(self.subcommand.as_deref(), Some("create" | "run"))
    }
}

/// Split `--name=value`, `-name=value`, `--name`, `-name` into the name and an attached value.
/// `None` for operands (and for `-` and `--`).
fn flag(arg: &str) -> Option<(&str, Option<&str>)> {
    let body = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    if body.is_empty() {
        return None;
    }
    Some(match body.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (body, None),
    })
}

/// Read `args` (everything after the wrapper's own options).
pub fn parse(args: &[String]) -> Invocation {
    let mut inv = Invocation::default();
    let mut i = 0;
    // Global flags.
    while i < args.len() {
        let Some((name, attached)) = flag(&args[i]) else {
            break;
        };
        i += 1;
        if !GLOBAL_WITH_VALUE.contains(&name) {
            continue;
        }
        let value = match attached {
            Some(v) => Some(v.to_owned()),
            None => {
                i += 1;
                args.get(i - 1).cloned()
            }
        };
        match (name, value) {
            ("log", Some(v)) => inv.log = Some(PathBuf::from(v)),
            ("log-format", Some(v)) => inv.log_json = v == "json",
            _ => {}
        }
    }
    let Some(sub) = args.get(i) else {
        return inv;
    };
    inv.subcommand = Some(sub.clone());
    i += 1;
    // The subcommand's flags and operands (flags may follow the id: urfave/cli stops at the
    // first operand, but crun and the shims put flags first; accept both).
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            if inv.id.is_none() {
                inv.id = args.get(i).cloned();
            }
            break;
        }
        match flag(arg) {
            None => {
                if inv.id.is_none() {
                    inv.id = Some(arg.clone());
                }
            }
            Some((name, attached)) if CREATE_WITH_VALUE.contains(&name) => {
                let value = match attached {
                    Some(v) => Some(v.to_owned()),
                    None => {
                        i += 1;
                        args.get(i - 1).cloned()
                    }
                };
                if matches!(name, "bundle" | "b") {
                    inv.bundle = value.map(PathBuf::from);
                }
            }
            Some(_) => {}
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Invocation {
        parse(
            &line
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn reads_containerd_shim_create() {
        // What containerd-shim-runc-v2 (go-runc) runs for `docker run`.
        let inv = p("--root /run/docker/runtime-runc/moby --log /run/containerd/io.containerd.runtime.v2.task/moby/abc/log.json --log-format json create --bundle /run/containerd/io.containerd.runtime.v2.task/moby/abc --pid-file /run/x/init.pid --console-socket /tmp/pty.sock abc");
        assert_eq!(inv.subcommand.as_deref(), Some("create"));
        assert!(inv.creates());
        assert_eq!(
            inv.bundle.as_deref(),
            Some(std::path::Path::new(
                "/run/containerd/io.containerd.runtime.v2.task/moby/abc"
            ))
        );
        assert_eq!(inv.id.as_deref(), Some("abc"));
        assert_eq!(
            inv.log.as_deref(),
            Some(std::path::Path::new(
                "/run/containerd/io.containerd.runtime.v2.task/moby/abc/log.json"
            ))
        );
        assert!(inv.log_json);
    }

    #[test]
    fn attached_values_single_dashes_and_booleans() {
        let inv = p("--systemd-cgroup --root=/r -log /l --debug run -b=/b --detach id1");
        assert_eq!(inv.subcommand.as_deref(), Some("run"));
        assert_eq!(inv.bundle.as_deref(), Some(std::path::Path::new("/b")));
        assert_eq!(inv.log.as_deref(), Some(std::path::Path::new("/l")));
        assert!(!inv.log_json);
        assert_eq!(inv.id.as_deref(), Some("id1"));
        let inv = p("create -b /b2 --rootless=true id2");
        assert_eq!(inv.bundle.as_deref(), Some(std::path::Path::new("/b2")));
        assert_eq!(inv.id.as_deref(), Some("id2"));
    }

    #[test]
    fn calls_that_do_not_create_are_left_alone() {
        for line in [
            "--root /r state abc",
            "--root /r start abc",
            "--root /r kill abc 9",
            "--root /r --log /l delete --force abc",
            "--root /r exec --process /tmp/p.json --detach abc",
            "--root /r ps --format json abc",
            "--version",
            "",
        ] {
            let inv = p(line);
            assert!(!inv.creates(), "{line}");
            assert_eq!(inv.bundle, None, "{line}");
        }
        assert_eq!(p("--version").subcommand, None);
        assert_eq!(p("--root /r state abc").id.as_deref(), Some("abc"));
    }

    #[test]
    fn a_missing_value_at_the_end_is_not_a_panic() {
        assert_eq!(p("--root").subcommand, None);
        let inv = p("create --bundle");
        assert!(inv.creates());
        assert_eq!(inv.bundle, None);
        assert_eq!(p("create -- id").id.as_deref(), Some("id"));
    }
}
