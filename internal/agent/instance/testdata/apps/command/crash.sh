#!/bin/sh
echo "cannot start: no database configured" >&2
exit 7
