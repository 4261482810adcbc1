#!/bin/sh
# __cacert_entrypoint.sh: minibuild teaching stand-in. The real one adds the certificates of
# /certificates to the JVM's trust store when USE_SYSTEM_CA_CERTS is set, then runs the command; this one
# runs the command.
exec "$@"
