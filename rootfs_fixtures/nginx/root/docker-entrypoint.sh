#!/bin/sh
# The official nginx image's entrypoint (minibuild stand-in): when the command is nginx, run the scripts in
# /docker-entrypoint.d/ first (the real ones tune workers and render templates), then run the command.
set -e
if [ "$1" = "nginx" ] || [ "$1" = "nginx-debug" ]; then
  echo "/docker-entrypoint.sh: Configuration complete; ready for start up"
fi
exec "$@"
