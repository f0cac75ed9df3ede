#!/usr/bin/env bash
# Runs the Playwright tests inside a private network namespace with a veth pair and a
# default route (PLATFORM.md): Chromium offers host candidates there, tab to tab and tab
# to Node connect, and nothing leaves the namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  echo "The browser tests need Debian's chromium: apt-get install -y chromium (.ci/run installs it)." >&2
  exit 1
fi
exec unshare -n sh -c 'ip link set lo up; ip link add v0 type veth peer name v1;
  ip addr add 198.18.0.1/24 dev v0; ip addr add 198.18.0.2/24 dev v1;
  ip link set v0 up; ip link set v1 up; ip route add default dev v0; exec "$@"' sh \
  npx playwright test -c test/playwright.config.ts "$@"
