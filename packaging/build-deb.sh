#!/bin/sh
# Build auditor's Debian package from a built binary, with dpkg-deb.
#   packaging/build-deb.sh AUDITOR_BIN VERSION OUT_DIR
# The binary embeds its eBPF programs; completions and man pages come from the binary itself
# (`auditor completions`, `auditor manpages`), so they always match its command line.
# `cargo xtask dist` runs this on the release build; the package test runs it too.
set -eu
bin=$1 version=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d "${TMPDIR:-/tmp}/auditor-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"

install -D -m 0755 "$bin" "$stage/usr/bin/auditor"
# Release builds keep line tables for backtraces (debug = 1): not in the package.
strip --strip-debug "$stage/usr/bin/auditor"
install -D -m 0644 "$here/systemd/auditor-daemon.service" "$stage/lib/systemd/system/auditor-daemon.service"
install -D -m 0644 "$here/systemd/auditor-agent.service" "$stage/lib/systemd/system/auditor-agent.service"
install -D -m 0644 "$here/systemd/auditor-agent.socket" "$stage/lib/systemd/system/auditor-agent.socket"
install -D -m 0644 "$here/hooks.d/auditor-learn.json" "$stage/usr/share/containers/oci/hooks.d/auditor-learn.json"
install -D -m 0644 "$here/docker/daemon.json" "$stage/usr/share/doc/auditor/examples/docker-daemon.json"
# containerd's runc BinaryName takes no arguments: the wrapper by name reads [runtime].
ln -sf auditor "$stage/usr/bin/auditor-runc"
install -D -m 0644 "$here/README.packagers.md" "$stage/usr/share/doc/auditor/README.packagers.md"
install -D -m 0644 "$here/../README.md" "$stage/usr/share/doc/auditor/README.md"
gzip -9n "$stage/usr/share/doc/auditor/README.md"

"$bin" completions bash | install -D -m 0644 /dev/stdin "$stage/usr/share/bash-completion/completions/auditor"
"$bin" completions zsh | install -D -m 0644 /dev/stdin "$stage/usr/share/zsh/vendor-completions/_auditor"
"$bin" completions fish | install -D -m 0644 /dev/stdin "$stage/usr/share/fish/vendor_completions.d/auditor.fish"
mkdir -p "$stage/usr/share/man/man1"
"$bin" manpages "$stage/usr/share/man/man1" 2>/dev/null
gzip -9n "$stage"/usr/share/man/man1/*.1

# The services' configuration (a conffile: an edited copy survives upgrades), and where they
# keep policies, observations and the audit log (root only).
install -D -m 0644 "$here/config.toml" "$stage/etc/auditor/config.toml"
install -d -m 0700 "$stage/etc/auditor/policies" "$stage/var/lib/auditor" \
    "$stage/var/lib/auditor/observations" "$stage/var/log/auditor"

size=$(du -sk "$stage" | cut -f1)
mkdir -p "$stage/DEBIAN"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: auditor
Version: $version
Architecture: $arch
Maintainer: auditor developers <auditor@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.34), libseccomp2 (>= 2.5)
Suggests: runc | crun, lxc, podman
Section: admin
Priority: optional
Description: learn, generate and enforce seccomp policies for containers
 auditor observes the syscalls a workload attempts (eBPF), generates a
 seccomp policy from them (OCI/Docker, LXC, Kubernetes, systemd), and
 enforces it through a seccomp user-notification broker that can emulate
 privileged calls (mknod, mount, setxattr) for unprivileged containers.
 \`auditor doctor\` says what this host offers it.
CONTROL
cat > "$stage/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
# Purge: what the services wrote (observations, the audit log). /run/auditor is left alone:
# live sessions of `auditor learn`/`enforce` keep their sockets there (tmpfs: gone at reboot).
if [ "$1" = purge ]; then
    rm -rf /var/lib/auditor /var/log/auditor
fi
POSTRM
chmod 0755 "$stage/DEBIAN/postrm"
echo /etc/auditor/config.toml > "$stage/DEBIAN/conffiles"

mkdir -p "$out"
deb="$out/auditor_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
