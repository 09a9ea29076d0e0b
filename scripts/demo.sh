#!/usr/bin/env bash
# The README's demo: on this machine, create a local node with toppcloud,
# set it up, deploy the example Python application to it and show it
# answering through the node's front server. Needs root (local nodes are
# systemd-nspawn containers). Everything it makes lives under a throwaway
# HOME, and the node is destroyed at the end unless KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
tc="$PWD/bin/toppcloud"
[ -x "$tc" ] || { echo "build first: make build"; exit 1; }

export HOME="${DEMO_HOME:-/tmp/toppcloud-demo}"
mkdir -p "$HOME/.ssh"
[ -f "$HOME/.ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$HOME/.ssh/id_ed25519"
[ -f "$HOME/.toppcloud.conf" ] || "$tc" init-config --provider local
node=demo

cleanup() {
  if [ "${KEEP:-0}" != 1 ]; then
    "$tc" -y destroy-node "$node" || true
  else
    echo "node $node kept (HOME=$HOME); destroy it with: HOME=$HOME $tc destroy-node $node"
  fi
}
trap cleanup EXIT

"$tc" create-node "$node" --if-not-exists --setup-node
addr=$("$tc" list-nodes --json | python3 -c 'import json,sys; print([n for n in json.load(sys.stdin) if n["name"]=="'"$node"'"][0]["public_ips"][0])')
echo "== the node answers over SSH at $addr:"
ssh -o UserKnownHostsFile="$HOME/.toppcloud/known_hosts" -o StrictHostKeyChecking=yes \
    -i "$HOME/.ssh/id_ed25519" "root@$addr" 'cat /etc/os-release | head -1; uptime'

# The location's host is the node's name, so no --node is needed; the
# application answers there through the node's Caddy.
echo "== deploy examples/python to $node:"
"$tc" update examples/python "$node"
echo "== curl http://$node/ (Host: $node, at $addr):"
curl -sS --max-time 10 -H "Host: $node" "http://$addr/"
echo "== its environment, from inside the app (/env):"
curl -sS --max-time 10 -H "Host: $node" "http://$addr/env"
echo "== a static file, served by Caddy from the app's static/:"
curl -sS --max-time 10 -H "Host: $node" "http://$addr/robots.txt"
echo "== what the node runs:"
"$tc" query "$node"
