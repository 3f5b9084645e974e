"""The installed tracker_node as a child process (demo, evaluation, live tests).

The node runs as its installed executable (`install/ram_tracker/lib/ram_tracker/tracker_node`)
with a parameters file and `-p` overrides, in the environment it is given (pass
`ram_tracker.ros_env.isolated_ros_env()`: loopback discovery, a per-run domain id, the SHM
profile), its output into a log file.
"""
from __future__ import annotations

import subprocess
from pathlib import Path


def installed_node() -> Path:
    from ament_index_python.packages import get_package_prefix
    return Path(get_package_prefix('ram_tracker')) / 'lib' / 'ram_tracker' / 'tracker_node'


def installed_params_file() -> Path:
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory('ram_tracker')) / 'config' / 'tracker.yaml'


def start_tracker_node(env: dict, log_path: Path, params_file: Path | None = None,
                       overrides: dict | None = None,
                       remaps: dict | None = None) -> subprocess.Popen:
    """The installed tracker_node with `params_file` (default: the installed tracker.yaml),
    then each of `overrides` as `-p name:=value`, then `remaps` (`-r from:=to`)."""
    cmd = [str(installed_node()), '--ros-args', '--params-file',
           str(params_file or installed_params_file())]
    for name, value in (overrides or {}).items():
        cmd += ['-p', f'{name}:={value}']
    for source, target in (remaps or {}).items():
        cmd += ['-r', f'{source}:={target}']
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, 'w') as log:      # the child keeps its own descriptor
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_node(node: subprocess.Popen, timeout: float = 30.0) -> int | None:
    """SIGTERM, wait; SIGKILL if it does not end within `timeout`."""
    if node.poll() is None:
        node.terminate()
        try:
            node.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait(timeout=timeout)
    return node.returncode


def start_node(model: Path, input_size, env, log_path: Path,
               extra_params: dict | None = None) -> subprocess.Popen:
    """The installed tracker_node with the installed params file, the model and Algorithm 1's
    LA-CATER settings (the demo's World 1 videos); `extra_params` override any parameter
    (e.g. occlusion_model)."""
    params = {'model_path': model, 'input_width': input_size[0],
              'input_height': input_size[1], 'device': 'cpu',
              # LA-CATER settings of Algorithm 1 (paper appendix B): long occlusions
              'max_age': 300, 'walker_min_confidence': 0.005}
    params.update(extra_params or {})
    return start_tracker_node(env, log_path, overrides=params, remaps={'image': '/image'})
