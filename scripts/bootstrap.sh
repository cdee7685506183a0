#!/usr/bin/env bash
# Installs everything yujing needs on a fresh Debian/Ubuntu machine: system packages, then the Python env.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v redis-server >/dev/null || need+=(redis-server)
command -v named-checkzone >/dev/null || need+=(bind9-utils)  # checks the exported RPZ zone
if [ "${YUJING_WITH_BROWSER:-0}" = 1 ]; then
  command -v chromium >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
fi
if [ "${YUJING_WITH_PROMETHEUS:-0}" = 1 ]; then
  command -v promtool >/dev/null || need+=(prometheus)
  command -v amtool >/dev/null || need+=(prometheus-alertmanager)  # checks deploy/alertmanager/alertmanager.yml
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "installing system packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# Reinstall only when the dependencies changed; the log keeps pip's output for when it fails.
stamp=.venv/.yujing-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  mkdir -p var
  if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e '.[test,bench]'; } >var/pip.log 2>&1; then
    cat var/pip.log >&2
    echo "bootstrap: pip install failed (log above, also in var/pip.log)" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
fi
