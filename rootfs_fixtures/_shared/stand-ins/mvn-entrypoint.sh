#!/bin/sh
# mvn-entrypoint.sh: minibuild teaching stand-in. The real one copies $MAVEN_HOME/ref (settings) into
# $MAVEN_CONFIG and then runs the command; this one runs the command.
exec "$@"
