#!/usr/bin/env bash
# The README's main command: installs what is missing, then runs `yujing demo` (extra arguments pass through).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/yujing demo "$@"
