#!/usr/bin/env bash
# make demo: the tracker node, live over DDS, following a hidden object (see README).
# Run inside scripts/env.sh's environment. Everything lands in demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${ROS_AUTOMATIC_DISCOVERY_RANGE:?source scripts/env.sh first}"
exec python -m ram_training.demo --out demo_output "$@"
