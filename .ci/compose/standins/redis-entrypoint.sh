#!/bin/sh
# The stand-in redis:7's start, as the official image's: started without a config file, protected
# mode is off (the port is only the container network's).
if [ "$1" = redis-server ]; then
  case "$2" in
    *.conf) ;;
    *) shift; set -- redis-server --protected-mode no "$@" ;;
  esac
fi
exec "$@"
