# Start and stop the services the interop tests need (sourced by .ci/run).
CI_WORK="${CI_WORK:-$(mktemp -d /tmp/minibuild-ci.XXXXXX)}"
DOCKERD_PID=""

# Start a private dockerd on $CI_WORK/docker/docker.sock and export MINIBUILD_DOCKER_HOST.
# overlay2 first when the kernel has overlayfs; vfs when overlay2 cannot start (e.g. /tmp is itself overlayfs).
start_dockerd() {
  local drivers=(vfs) driver
  grep -q overlay /proc/filesystems && drivers=(overlay2 vfs)
  for driver in "${drivers[@]}"; do
    if _start_dockerd_with "$driver"; then
      echo "dockerd ($driver) is up at $MINIBUILD_DOCKER_HOST"
      return 0
    fi
    echo "dockerd with --storage-driver=$driver did not start:"; tail -20 "$CI_WORK/docker/dockerd.log"
    _stop_dockerd
  done
  return 1
}

_start_dockerd_with() {
  local driver=$1
  rm -rf "$CI_WORK/docker"
  mkdir -p "$CI_WORK/docker"
  dockerd --storage-driver="$driver" --iptables=false --ip6tables=false --bridge=none \
    --data-root "$CI_WORK/docker/data" --exec-root "$CI_WORK/docker/exec" \
    --pidfile "$CI_WORK/docker/dockerd.pid" -H "unix://$CI_WORK/docker/docker.sock" \
    >"$CI_WORK/docker/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  MINIBUILD_DOCKER_HOST="unix://$CI_WORK/docker/docker.sock"
  export MINIBUILD_DOCKER_HOST
  for _ in $(seq 1 120); do
    kill -0 "$DOCKERD_PID" 2>/dev/null || return 1
    if DOCKER_HOST="$MINIBUILD_DOCKER_HOST" docker version >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  return 1
}

_stop_dockerd() {
  [ -n "$DOCKERD_PID" ] || return 0
  kill "$DOCKERD_PID" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.5
  done
  kill -9 "$DOCKERD_PID" 2>/dev/null || true
  wait "$DOCKERD_PID" 2>/dev/null || true
  DOCKERD_PID=""
  umount -R "$CI_WORK/docker/exec" 2>/dev/null || true
  umount -R "$CI_WORK/docker/data" 2>/dev/null || true
}

stop_services() {
  _stop_dockerd
  rm -rf "$CI_WORK" 2>/dev/null || true
}
