#!/usr/bin/env bash
# make demo: the tracker node on built-in data. Starts the node (installed executable, installed
# params file), a stand-in camera publishing the built-in moving-shapes scene, and a monitor that
# prints what comes back for DEMO_SECONDS (default 20). Run inside scripts/env.sh's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${ROS_AUTOMATIC_DISCOVERY_RANGE:?source scripts/env.sh first}"
seconds=${DEMO_SECONDS:-20}
out=demo_output
mkdir -p "$out"
lib=install/ram_tracker/lib/ram_tracker
share=install/ram_tracker/share/ram_tracker
echo "[demo] ROS_DOMAIN_ID=$ROS_DOMAIN_ID; logs in $out/"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
"$lib/tracker_node" --ros-args --params-file "$share/config/tracker.yaml" > "$out/tracker_node.log" 2>&1 &
pids+=($!)
"$lib/image_publisher" --ros-args -p source:=pattern:640x192 -p rate_hz:=10.0 > "$out/image_publisher.log" 2>&1 &
pids+=($!)
"$lib/track_monitor" --ros-args -p duration_s:="$(printf %.1f "$seconds")" -p min_frames:=5
echo "[demo] tracker node log:"; sed -n '1,20p' "$out/tracker_node.log"
