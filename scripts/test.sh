#!/usr/bin/env bash
# The README's test command: installs what is missing, starts a fresh local stack (real Kafka + Redis),
# runs the suite (unit + integration; with YUJING_WITH_SLOW=1 also fault injection, the installed wheel and the
# secured stacks; with YUJING_WITH_CLUSTER=1 the cluster group on three Kafka nodes and a Redis Cluster), and
# stops the stacks, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export YUJING_WITH_BROWSER=1 YUJING_WITH_PROMETHEUS=1  # the console test (Chromium) and promtool
bash scripts/bootstrap.sh

# A stack of its own: own data folder (wiped each run) and ports, so a developer's running stack is untouched.
export YUJING_DATA_DIR="${YUJING_TEST_DATA_DIR:-$PWD/var/test}"
export YUJING_KAFKA_PORT="${YUJING_TEST_KAFKA_PORT:-29092}"
export YUJING_KAFKA_CONTROLLER_PORT=$((YUJING_KAFKA_PORT + 1))
export YUJING_REDIS_PORT="${YUJING_TEST_REDIS_PORT:-26379}"
unset KAFKA_BOOTSTRAP REDIS_URL YUJING_KAFKA_BROKERS YUJING_REDIS_CLUSTER
.venv/bin/yujing stack down >/dev/null 2>&1 || true
rm -rf "$YUJING_DATA_DIR"
trap '.venv/bin/yujing stack down' EXIT
.venv/bin/yujing stack up
if [ $# -gt 0 ]; then  # the tests asked for, as asked
  .venv/bin/python -m pytest -q -p no:cacheprovider --durations=10 "$@"
  exit
fi
# Everything but the slow group (fault injection, the installed wheel, the secured stacks) stays under 15 minutes
# on two cores; YUJING_WITH_SLOW=1 runs the slow group after it, on the same stack (.ci/run does).
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=10 -m "not slow and not cluster"
if [ "${YUJING_WITH_SLOW:-0}" = 1 ]; then
  .venv/bin/python -m pytest -q -p no:cacheprovider --durations=10 -m "slow and not cluster"
fi
# YUJING_WITH_CLUSTER=1: the cluster group on a second stack, three Kafka nodes and a Redis Cluster (six nodes),
# with the first one still up beside it (the demo on both is compared there).
if [ "${YUJING_WITH_CLUSTER:-0}" = 1 ]; then
  export YUJING_TEST_SINGLE_KAFKA="127.0.0.1:$YUJING_KAFKA_PORT" YUJING_TEST_SINGLE_REDIS="redis://127.0.0.1:$YUJING_REDIS_PORT/0"
  single=("$YUJING_DATA_DIR" "$YUJING_KAFKA_PORT" "$YUJING_REDIS_PORT")
  export YUJING_DATA_DIR="${single[0]}-cluster" YUJING_KAFKA_PORT=$((single[1] + 100)) YUJING_REDIS_PORT=$((single[2] + 100))
  export YUJING_KAFKA_CONTROLLER_PORT=$((YUJING_KAFKA_PORT + 1)) YUJING_KAFKA_BROKERS=3 YUJING_REDIS_CLUSTER=1
  .venv/bin/yujing stack down >/dev/null 2>&1 || true
  rm -rf "$YUJING_DATA_DIR"
  trap '.venv/bin/yujing stack down; env YUJING_DATA_DIR="${single[0]}" YUJING_KAFKA_PORT="${single[1]}" \
    YUJING_KAFKA_CONTROLLER_PORT=$((single[1] + 1)) YUJING_REDIS_PORT="${single[2]}" YUJING_KAFKA_BROKERS=1 \
    YUJING_REDIS_CLUSTER= .venv/bin/yujing stack down' EXIT
  .venv/bin/yujing stack up
  .venv/bin/python -m pytest -q -p no:cacheprovider --durations=10 -m cluster
fi
