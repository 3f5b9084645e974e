#!/usr/bin/env bash
# make demo: the tracker node, live over DDS, following a hidden object (see README).
# Everything lands in demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
# The demo always runs isolated (loopback discovery, a fresh ROS_DOMAIN_ID, the SHM profile),
# whatever shell starts it.
export RAM_ROS_ISOLATE=1
. scripts/env.sh
exec python -m ram_training.demo --out demo_output "$@"
