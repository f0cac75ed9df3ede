#!/usr/bin/env bash
# The tab figures, inside the same private network namespace as the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
exec unshare -n sh -c 'ip link set lo up; ip link add v0 type veth peer name v1;
  ip addr add 198.18.0.1/24 dev v0; ip addr add 198.18.0.2/24 dev v1;
  ip link set v0 up; ip link set v1 up; ip route add default dev v0; exec "$@"' sh \
  node test/dist/bench/tab-bench.js "$@"
