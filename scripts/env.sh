# Source me (bash): the environment every RAM-ROS process runs in.
#   . scripts/env.sh                             your shell: your ROS settings are kept
#   export RAM_ROS_ISOLATE=1; . scripts/env.sh   tests, the demo, CI (the Makefile, test.sh, demo.sh)
# - the workspace overlay (install/) on top of .venv (wheels) or the sourced ROS 2 underlay;
# - with RAM_ROS_ISOLATE=1 only: DDS discovery limited to this machine, a fresh ROS_DOMAIN_ID
#   and the shared-memory Fast DDS profile (config/fastdds_shm.xml), whatever was exported.
_ram_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -x "$_ram_root/.venv/bin/python" ]; then
  export VIRTUAL_ENV="$_ram_root/.venv"
  export PATH="$_ram_root/.venv/bin:$PATH"
  # In wheels mode the venv is the ROS prefix (ament index of rclpy, rmw, message packages).
  case ":${AMENT_PREFIX_PATH:-}:" in
    *":$_ram_root/.venv:"*) ;;
    *) [ -z "${ROS_DISTRO:-}" ] && export AMENT_PREFIX_PATH="$_ram_root/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
  esac
fi
if [ -f "$_ram_root/install/local_setup.bash" ]; then
  # colcon's setup script reads unset variables: a caller's `set -u` (test.sh, demo.sh) would abort it.
  case $- in *u*) _ram_nounset=1; set +u ;; *) _ram_nounset= ;; esac
  # shellcheck disable=SC1091
  . "$_ram_root/install/local_setup.bash"
  if [ -n "$_ram_nounset" ]; then set -u; fi
  unset _ram_nounset
fi
# The command-line tools (ram-data, ram-train, ram-eval, ram-export): ament_python installs
# console scripts into lib/<package>/ (for `ros2 run`), which is not on PATH by itself.
for _ram_pkg in ram_training ram_tracker; do
  _ram_bin="$_ram_root/install/$_ram_pkg/lib/$_ram_pkg"
  case ":$PATH:" in *":$_ram_bin:"*) ;; *) [ -d "$_ram_bin" ] && export PATH="$_ram_bin:$PATH" ;; esac
done
unset _ram_pkg _ram_bin
# DDS. In a user's shell nothing is forced: the node must see a camera on domain 0, a remote
# RViz or a container with the settings the user chose (or ROS's defaults). Tests, the demo and
# CI isolate instead (RAM_ROS_ISOLATE=1), overriding anything exported, because a robot's
# domain in the caller's shell must never meet them: loopback-only discovery (traffic may not
# leave these machines), a fresh domain so parallel runs never see each other, and the SHM-only
# profile, without which full-size images under best-effort QoS are mostly dropped.
if [ "${RAM_ROS_ISOLATE:-0}" = 1 ]; then
  export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
  export ROS_DOMAIN_ID=$(( (RANDOM % 100) + 1 ))
  export FASTDDS_DEFAULT_PROFILES_FILE=$_ram_root/config/fastdds_shm.xml
fi
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
# OpenMP threads sleep instead of spinning while they wait: when other processes share the
# cores (a robot, CI, two training runs) spinning made 2-thread torch 10-40x slower (measured).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
export RAM_ROS_ROOT=$_ram_root
unset _ram_root
