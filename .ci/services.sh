# Start and stop the services the interop tests need (sourced by .ci/run).
CI_WORK="${CI_WORK:-$(mktemp -d /tmp/minibuild-ci.XXXXXX)}"
DOCKERD_PID=""

start_dockerd() {
  local driver=vfs
  grep -q overlay /proc/filesystems && driver=overlay2
  mkdir -p "$CI_WORK/docker"
  dockerd --storage-driver="$driver" --iptables=false --ip6tables=false --bridge=none \
    --data-root "$CI_WORK/docker/data" --exec-root "$CI_WORK/docker/exec" \
    --pidfile "$CI_WORK/docker/dockerd.pid" -H "unix://$CI_WORK/docker/docker.sock" \
    >"$CI_WORK/docker/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  MINIBUILD_DOCKER_HOST="unix://$CI_WORK/docker/docker.sock"
  for _ in $(seq 1 120); do
    if DOCKER_HOST="$MINIBUILD_DOCKER_HOST" docker version >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "dockerd did not start:"; tail -20 "$CI_WORK/docker/dockerd.log"; return 1
}

stop_services() {
  if [ -n "$DOCKERD_PID" ]; then
    kill "$DOCKERD_PID" 2>/dev/null || true
    wait "$DOCKERD_PID" 2>/dev/null || true
  fi
  umount -R "$CI_WORK/docker/data" 2>/dev/null || true
  rm -rf "$CI_WORK" 2>/dev/null || true
}
