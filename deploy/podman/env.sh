# Sourced by deploy/image.sh and the container tests (bash): the container
# engine, the Debian base images and a podman configuration that can start a
# container on this host.
#
#   engine_setup             sets ENGINE (podman, else docker); 1 if neither
#   base_images_ensure       makes debian:12 and debian:12-slim available: the
#                            registry's when it answers, else local stand-ins
#                            (debootstrap, see below); 1 on failure
#   engine_probe             checks a container starts; with podman, falls back
#                            to deploy/podman/containers.conf; 1 if none works
#
# The stand-ins: `debootstrap --variant=minbase bookworm`, trimmed as the
# official slim image is (no apt lists or caches, no docs, man pages or
# locales, and dpkg told to skip them in later installs), then imported under
# the registry's names, so the Dockerfile's FROM lines resolve unchanged.
# Needs root (debootstrap) and a Debian mirror.

PODMAN_CONF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BASE_BUILD=docker.io/library/debian:12
BASE_RUN=docker.io/library/debian:12-slim

engine_setup() {
  if [ -n "${ENGINE:-}" ]; then command -v "$ENGINE" >/dev/null && return 0; return 1; fi
  if command -v podman >/dev/null; then ENGINE=podman
  elif command -v docker >/dev/null; then ENGINE=docker
  else return 1; fi
}

image_present() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }

# debootstrap a slim bookworm root into a temporary directory and import it
# as both base names
base_standin_build() {
  command -v debootstrap >/dev/null || { echo "debootstrap not found (apt-get install debootstrap)" >&2; return 1; }
  [ "$(id -u)" -eq 0 ] || { echo "building the offline base stand-in needs root (debootstrap)" >&2; return 1; }
  local root; root=$(mktemp -d /tmp/quept-rootfs.XXXXXX)
  echo "base: no registry; building a local debian:12-slim stand-in with debootstrap (about a minute)"
  if ! debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$root.log" 2>&1; then
    echo "debootstrap failed (log: $root.log):" >&2; tail -5 "$root.log" >&2; rm -rf "$root"; return 1
  fi
  # the suites the official image lists, so apt sees the same versions
  cat >"$root/etc/apt/sources.list" <<SRC
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SRC
  cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
SLIM
  # as the official image: apt keeps no downloaded packages or caches
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CLEAN'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CLEAN
  find "$root/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/lib/apt/lists/* \
    "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  local ok=0
  tar -C "$root" -c . | "$ENGINE" import - "$BASE_RUN" >/dev/null && "$ENGINE" tag "$BASE_RUN" "$BASE_BUILD" || ok=1
  rm -rf "$root" "$root.log"
  return $ok
}

base_images_ensure() {
  local mode=${1:-auto}   # auto | registry | offline
  if image_present "$BASE_BUILD" && image_present "$BASE_RUN"; then return 0; fi
  if [ "$mode" != offline ]; then
    if timeout 60 "$ENGINE" pull -q "$BASE_RUN" >/dev/null 2>&1 && timeout 60 "$ENGINE" pull -q "$BASE_BUILD" >/dev/null 2>&1; then
      echo "base: debian:12 and debian:12-slim from the registry"; return 0
    fi
    [ "$mode" = registry ] && { echo "cannot pull $BASE_RUN / $BASE_BUILD from the registry" >&2; return 1; }
  fi
  base_standin_build
}

engine_probe() {
  local image=${1:-$BASE_RUN} out
  out=$("$ENGINE" run --rm "$image" true 2>&1) && return 0
  if [ "$ENGINE" = podman ] && [ -z "${CONTAINERS_CONF:-}" ]; then
    export CONTAINERS_CONF="$PODMAN_CONF_DIR/containers.conf"
    if "$ENGINE" run --rm "$image" true >/dev/null 2>&1; then
      echo "podman: its defaults cannot start a container here; using $CONTAINERS_CONF (runc, cgroupfs, ulimits)"
      return 0
    fi
    unset CONTAINERS_CONF
  fi
  echo "$ENGINE cannot start a container on this host:" >&2
  printf '%s\n' "$out" | tail -3 >&2
  return 1
}
