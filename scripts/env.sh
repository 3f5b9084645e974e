# Source me (bash): the environment every RAM-ROS process runs in.
#   . scripts/env.sh
# - the workspace overlay (install/) on top of .venv (wheels) or the sourced ROS 2 underlay;
# - DDS discovery limited to this machine, a per-run ROS_DOMAIN_ID (keep yours by exporting
#   ROS_DOMAIN_ID first), and the shared-memory Fast DDS profile (config/fastdds_shm.xml).
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
  # shellcheck disable=SC1091
  . "$_ram_root/install/local_setup.bash"
fi
# The command-line tools (ram-data, ram-train, ram-eval, ram-export): ament_python installs
# console scripts into lib/<package>/ (for `ros2 run`), which is not on PATH by itself.
for _ram_pkg in ram_training ram_tracker; do
  _ram_bin="$_ram_root/install/$_ram_pkg/lib/$_ram_pkg"
  case ":$PATH:" in *":$_ram_bin:"*) ;; *) [ -d "$_ram_bin" ] && export PATH="$_ram_bin:$PATH" ;; esac
done
unset _ram_pkg _ram_bin
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$_ram_root/config/fastdds_shm.xml}
# OpenMP threads sleep instead of spinning while they wait: when other processes share the
# cores (a robot, CI, two training runs) spinning made 2-thread torch 10-40x slower (measured).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
export RAM_ROS_ROOT=$_ram_root
unset _ram_root
