#!/usr/bin/env bash
# make docker-test: build the image and run it for real, then check it from outside the container.
#
# Works with docker, or with podman where no Docker engine runs (as on the project's CI machines: there podman
# needs runc, raised ulimits, host networking, the host's CA bundle for pip, a local base image made with
# debootstrap because no image registry is reachable, and torch from a local wheel folder).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/unrolled:test}
BASE_IMAGE=${BASE_IMAGE:-}
WHEELS=${WHEELS:-/opt/wheels}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=${PORT:-$(free_port)}
METRICS_PORT=${METRICS_PORT:-$(free_port)}
PY=${PY:-.venv/bin/python}

# The host's Debian mirror, for debootstrap: the URIs: line of a deb822 .sources file, or the address after `deb`
# in the one-line format. Comments are skipped (a deb822 file may name an unreachable snapshot in a comment), and
# so are files that do not exist (a deb822-only machine has no sources.list).
debian_mirror() {
  local files=() f
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] || return 0
  awk '/^[[:space:]]*#/ {next}
       tolower($1) == "uris:" {for (i = 2; i <= NF; i++) print $i; next}
       $1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) {print $i; break}}' "${files[@]}" \
    | grep -v security | head -n1 || true
}

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  ENGINE=(docker); BUILD_FLAGS=(); RUN_FLAGS=(-p "127.0.0.1:$PORT:$PORT" -p "127.0.0.1:$METRICS_PORT:$METRICS_PORT")
else
  if ! command -v podman >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq podman buildah runc debootstrap >/dev/null
    else
      echo "docker-test: neither a Docker engine nor podman is available" >&2; exit 1
    fi
  fi
  ENGINE=(podman)
  LIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=4096:4096)
  BUILD_FLAGS=("${LIMITS[@]}" --network host --format docker)
  [ -f /etc/ssl/certs/ca-certificates.crt ] && BUILD_FLAGS+=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
  RUN_FLAGS=(--runtime runc "${LIMITS[@]}" --network host --pull=never)
  if [ -z "$BASE_IMAGE" ] && ! podman image exists docker.io/library/python:3.11-slim; then
    # No registry here: a Debian bookworm (Python 3.11) base made locally, once.
    BASE_IMAGE=localhost/python-base:3.11
    if ! podman image exists "$BASE_IMAGE"; then
      mirror=$(debian_mirror)
      rootfs=$(mktemp -d)
      debootstrap --variant=minbase --include=ca-certificates,python3,python3-venv bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >/dev/null
      tar -C "$rootfs" -c . | podman import - "$BASE_IMAGE" >/dev/null
      rm -rf "$rootfs"
    fi
  fi
fi
[ -n "$BASE_IMAGE" ] && BUILD_FLAGS+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
if ls "$WHEELS"/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then
  # A local CPU wheel, mounted for the build only (a copied wheel would stay in a layer).
  BUILD_FLAGS+=(-v "$WHEELS:/wheels:ro" --build-arg TORCH_INDEX= --build-arg PIP_FIND_LINKS=/wheels)
fi

start=$(date +%s)
"${ENGINE[@]}" build "${BUILD_FLAGS[@]}" -t "$IMAGE" . >/tmp/docker-test-build.log 2>&1 || { tail -n 40 /tmp/docker-test-build.log; exit 1; }
built=$(( $(date +%s) - start ))
size=$("${ENGINE[@]}" image inspect "$IMAGE" --format '{{.Size}}')
echo "image $IMAGE: $(( size / 1000000 )) MB, built in ${built} s"

name=unrolled-test-$$
"${ENGINE[@]}" run -d --name "$name" "${RUN_FLAGS[@]}" -e "UNROLLED_PORT=$PORT" -e "UNROLLED_METRICS_PORT=$METRICS_PORT" \
  "$IMAGE" >/dev/null
trap '"${ENGINE[@]}" logs "$name" > /tmp/docker-test-run.log 2>&1 || true; "${ENGINE[@]}" rm -f "$name" >/dev/null 2>&1 || true' EXIT

server_uid=$("${ENGINE[@]}" exec "$name" awk '/^Uid:/{print $2}' /proc/1/status)  # PID 1 is the server (exec-form CMD)
# As the server's own user (the image's USER): may it write the compiled-kernel cache it loads?
cache_writable=$("${ENGINE[@]}" exec "$name" python3 -c 'import os; print(os.access("/opt/numba-cache", os.W_OK))' || echo unknown)
# What the image holds, seen from inside: every installed distribution and its version (checked against the lock),
# and the health check the image declares (checked to ask /healthz).
installed=$("${ENGINE[@]}" exec "$name" python3 -c 'import importlib.metadata as m; print(" ".join(f"{d.name}=={d.version}" for d in m.distributions()))' || echo unknown)
healthcheck=$("${ENGINE[@]}" inspect "$name" --format '{{json .Config.Healthcheck}}' || echo unknown)
"$PY" -m deploy.check_service "http://127.0.0.1:$PORT" --server-uid "${server_uid:-unknown}" \
  --metrics-url "http://127.0.0.1:$METRICS_PORT" --cache-writable "$cache_writable" \
  --installed "$installed" --healthcheck "$healthcheck" --lock requirements.lock
"${ENGINE[@]}" stop -t 15 "$name" >/dev/null
echo "stopped cleanly: exit code $("${ENGINE[@]}" inspect "$name" --format "{{.State.ExitCode}}")"
"${ENGINE[@]}" image prune -f >/dev/null 2>&1 || true  # the build stage
