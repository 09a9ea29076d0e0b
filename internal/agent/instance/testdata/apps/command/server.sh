#!/bin/sh
# A command app: python's http.server on $HOST:$PORT.
exec python3 -m http.server --bind "$HOST" "$PORT"
