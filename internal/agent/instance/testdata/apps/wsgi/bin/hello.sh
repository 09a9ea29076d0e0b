#!/bin/sh
echo "shell script $1 for $SILVER_APP_NAME"
