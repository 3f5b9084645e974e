"""The environment every RAM-ROS test, demo and CI process runs in (the Python twin of
scripts/env.sh with RAM_ROS_ISOLATE=1).

DDS discovery stays on this machine, each run gets its own ROS_DOMAIN_ID so parallel runs
(tests, CI, a user's robot) never see each other, and Fast DDS uses the shared-memory profile
(large images under best-effort QoS are dropped with the default UDP transport).
No ROS imports: tests call this before rclpy.init and pass the result to child processes.
"""
from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

PROFILE_NAME = 'fastdds_shm.xml'
# What a process's own rclpy context reads from the environment (the rest is for children).
DDS_KEYS = ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID', 'FASTDDS_DEFAULT_PROFILES_FILE',
            'RMW_IMPLEMENTATION')


def fastdds_profile() -> Path | None:
    """config/fastdds_shm.xml from the source tree or the installed share directory."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / 'config' / PROFILE_NAME
        if candidate.is_file():
            return candidate
    try:
        from ament_index_python.packages import get_package_share_directory
        candidate = Path(get_package_share_directory('ram_tracker')) / 'config' / PROFILE_NAME
        return candidate if candidate.is_file() else None
    except (ImportError, LookupError):
        return None


def isolated_ros_env(base: dict | None = None, domain_id: int | None = None) -> dict:
    """A copy of `base` (default os.environ) with loopback-only discovery, a fresh domain id
    (1..101, the range whose ports are valid on Linux) and the SHM profile."""
    env = dict(os.environ if base is None else base)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['ROS_DOMAIN_ID'] = str(domain_id if domain_id is not None else random.randint(1, 101))
    env.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    profile = fastdds_profile()
    if profile is not None:
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(profile)
    env['PYTHONUNBUFFERED'] = '1'
    return env


@contextlib.contextmanager
def in_process(env: dict):
    """Apply `env`'s DDS settings (DDS_KEYS) to this process (for an rclpy context created
    here, e.g. a bag replayer talking to a child node started with `env`); restore on exit."""
    saved = {k: os.environ.get(k) for k in DDS_KEYS}
    os.environ.update({k: env[k] for k in DDS_KEYS if k in env})
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
