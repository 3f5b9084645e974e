"""The installed tracker_node as a child process (demo, evaluation, live tests).

The node runs as its installed executable (`install/ram_tracker/lib/ram_tracker/tracker_node`)
with a parameters file and `-p` overrides, in the environment it is given (pass
`ram_training.ros_env.isolated_ros_env()`: loopback discovery, a per-run domain id, the SHM
profile), its output into a log file.

Children die with their parent: on Linux the kernel sends the node SIGTERM when the process that
started it ends, however it ends (SIGKILL included; prctl PR_SET_PDEATHSIG), and `tracker_node()`
stops it on the way out of its block (an exception, Ctrl-C, or SIGTERM after
`sigterm_exits()`). An orphaned node would keep its CPU, its DDS domain and its shared memory
until someone found it.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

_PR_SET_PDEATHSIG = 1          # <linux/prctl.h>


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
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=_end_with_this_thread())


@contextlib.contextmanager
def tracker_node(env: dict, log_path: Path, **options):
    """`start_tracker_node(env, log_path, **options)` for the duration of a block; stopped
    (`stop_node`) however the block ends, KeyboardInterrupt and SystemExit included."""
    node = start_tracker_node(env, log_path, **options)
    try:
        yield node
    finally:
        stop_node(node)


@contextlib.contextmanager
def sigterm_exits():
    """Within the block SIGTERM ends this process like Ctrl-C does, through its `finally` blocks
    (children stopped, partial outputs closed), with status 128 + 15 as a shell reports a kill.
    The previous handler comes back after the block (a CLI's main() also runs inside tests).
    Only the main thread can set handlers: elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _prctl():
    """libc's prctl, typed; None off Linux or where it cannot be found."""
    if not sys.platform.startswith('linux'):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    return prctl


def _end_with(prctl, parent: int) -> None:
    """In the child: SIGTERM from the kernel when the parent ends, or now if it already has."""
    prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:      # the parent ended before the request was in place
        os.kill(os.getpid(), signal.SIGTERM)


def _end_with_this_thread():
    """A preexec_fn that asks Linux to SIGTERM the child when the thread that forks it ends
    (the kernel's notion of the parent is the thread: start nodes from a long-lived one, e.g.
    the main thread); None elsewhere. Looked up here, in the parent: the child between fork and
    exec only makes the call."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()
    return lambda: _end_with(prctl, parent)


def end_with_parent(parent: int) -> None:
    """For a Python child process started with the spawn method (a fresh interpreter, e.g. a
    multiprocessing pool's initializer, initargs (os.getpid(),)): the same request, made in the
    child. Nothing off Linux."""
    prctl = _prctl()
    if prctl is not None:
        _end_with(prctl, parent)


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


def lacater_parameters() -> dict:
    """World 1's settings of Algorithm 1 (evaluation.world1.LACATER_TRACKER) as the node
    parameters that set them: only those that differ from the defaults."""
    from ram_tracker.parameters import tracker_config_fields
    from ram_tracker.tracker import TrackerConfig
    from ram_training.evaluation.world1 import LACATER_TRACKER
    default = TrackerConfig()
    return {name: getattr(LACATER_TRACKER, field) for name, field in tracker_config_fields().items()
            if getattr(LACATER_TRACKER, field) != getattr(default, field)}


def start_node(model: Path, input_size, env, log_path: Path,
               extra_params: dict | None = None) -> subprocess.Popen:
    """The installed tracker_node with the installed params file, the model and Algorithm 1's
    LA-CATER settings (the demo's World 1 videos); `extra_params` override any parameter
    (e.g. occlusion_model)."""
    params = {'model_path': model, 'input_width': input_size[0],
              'input_height': input_size[1], 'device': 'cpu', **lacater_parameters()}
    params.update(extra_params or {})
    return start_tracker_node(env, log_path, overrides=params, remaps={'image': '/image'})
