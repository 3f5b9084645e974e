"""Lockstep replay of a real rosbag2 bag into the installed tracker node (another process, real
DDS), with the node's answers recorded into a bag."""
import subprocess
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from ament_index_python.packages import get_package_prefix, get_package_share_directory  # noqa: E402

from ram_tracker.ros_env import isolated_ros_env  # noqa: E402
from ram_training.data import rosbag_io  # noqa: E402
from ram_training.replay import ReplayConfig, _header_stamp, replay_into_node  # noqa: E402


def _write_bag(path: Path, frames: int, width=64, height=32):
    from rosbags.rosbag2 import StoragePlugin, Writer
    typestore = rosbag_io.make_typestore()
    config = rosbag_io.BagConfig()
    rng = np.random.default_rng(0)
    stamps = []
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        image_conn = writer.add_connection(config.image_topic, 'sensor_msgs/msg/Image',
                                           typestore=typestore)
        gt_conn = writer.add_connection(config.tracks_topic, 'ram_msgs/msg/TrackedObjectArray',
                                        typestore=typestore)
        for t in range(frames):
            stamp = rosbag_io.frame_stamp_ns(config, t)
            header = rosbag_io._header(typestore, stamp, 'camera')
            image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            raw = typestore.serialize_cdr(rosbag_io.image_message(typestore, image, header),
                                          'sensor_msgs/msg/Image')
            assert _header_stamp(bytes(raw)) == stamp
            writer.write(image_conn, stamp, raw)
            gt = rosbag_io.tracks_message(typestore, [], header, {}, config, t)
            writer.write(gt_conn, stamp, typestore.serialize_cdr(
                gt, 'ram_msgs/msg/TrackedObjectArray'))
            stamps.append(stamp)
    return stamps


def test_every_frame_is_answered_and_recorded(tmp_path, monkeypatch):
    env = isolated_ros_env()
    for key in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID', 'FASTDDS_DEFAULT_PROFILES_FILE'):
        monkeypatch.setenv(key, env[key])
    stamps = _write_bag(tmp_path / 'in', frames=12)
    exe = Path(get_package_prefix('ram_tracker')) / 'lib' / 'ram_tracker' / 'tracker_node'
    params = Path(get_package_share_directory('ram_tracker')) / 'config' / 'tracker.yaml'
    node = subprocess.Popen([str(exe), '--ros-args', '--params-file', str(params),
                             '-p', 'input_width:=64', '-p', 'input_height:=32',
                             '-p', 'device:=cpu', '-p', 'num_threads:=1',
                             '-r', 'image:=/image'], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        answered = []
        result = replay_into_node(tmp_path / 'in', tmp_path / 'out', ReplayConfig(),
                                  log=lambda *_: None,
                                  on_answer=lambda i, msg: answered.append(
                                      msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec))
    finally:
        node.terminate()
        node.wait(timeout=20)
    assert (result.frames, result.answered, result.missed_stamps) == (12, 12, [])
    assert answered == stamps                    # in order, each frame's own stamp
    topics = rosbag_io.topics_of(tmp_path / 'out')
    assert topics['/tracks'] == ('ram_msgs/msg/TrackedObjectArray', 12)
    assert topics['/ground_truth/tracks'][1] == 12
    assert topics['/belief'][1] == 12
    recorded = [f.stamp_ns for f in rosbag_io.read_bag(tmp_path / 'out')
                if f.tracks is not None and '/tracks' in f.messages]
    assert recorded == stamps
    assert not list(tmp_path.glob('.out.partial*'))
