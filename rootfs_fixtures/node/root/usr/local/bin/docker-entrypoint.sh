#!/bin/sh
# The official node image's entrypoint: run "node ARGS" when the first argument is an option or a file, else
# run the command as given. (Unchanged in spirit; minibuild stand-in.)
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}" 2>/dev/null)" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
