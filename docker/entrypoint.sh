#!/bin/sh
# The container's entrypoint: what follows the image name in `docker run` decides how
# kiln-server starts.
#
#   (nothing) or flags      kiln-server /etc/kiln/kiln.conf [flags...]  (the image's config,
#                           flags over it)
#   a config file [flags]   kiln-server FILE [flags...]  (the file replaces the image's
#                           config: give it `bind 0.0.0.0` and `dir /data`)
#   kiln-cli ..., sh ...    that command (e.g. `docker exec -it NAME kiln-cli`)
set -e
case "$1" in
    -v | --version | -h | --help)
        exec kiln-server "$1"
        ;;
    "" | -*)
        exec kiln-server /etc/kiln/kiln.conf "$@"
        ;;
    kiln-server | kiln-cli | sh)
        exec "$@"
        ;;
    *)
        exec kiln-server "$@"
        ;;
esac
