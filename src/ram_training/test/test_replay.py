"""Lockstep replay of a real rosbag2 bag into the installed tracker node (another process, real
DDS), with the node's answers recorded into a bag."""
import subprocess
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from ament_index_python.packages import get_package_prefix, get_package_share_directory  # noqa: E402

from ram_training.data import rosbag_io  # noqa: E402
from ram_training.replay import ReplayConfig, _header_stamp, replay_into_node  # noqa: E402
from ram_training.ros_env import isolated_ros_env  # noqa: E402


def _write_bag(path: Path, frames: int, width=64, height=32, image_type='sensor_msgs/msg/Image'):
    """A bag of random images (and empty ground truth) whose image topic holds `image_type`:
    sensor_msgs Image (rgb8), CompressedImage (JPEG, as image_transport records it) or, for a
    bag that is not what the node takes, std_msgs String."""
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer
    typestore = rosbag_io.make_typestore()
    config = rosbag_io.BagConfig()
    rng = np.random.default_rng(0)
    stamps = []
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        image_conn = writer.add_connection(config.image_topic, image_type, typestore=typestore)
        gt_conn = writer.add_connection(config.tracks_topic, 'ram_msgs/msg/TrackedObjectArray',
                                        typestore=typestore)
        for t in range(frames):
            stamp = rosbag_io.frame_stamp_ns(config, t)
            header = rosbag_io._header(typestore, stamp, 'camera')
            image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            if image_type == 'sensor_msgs/msg/Image':
                msg = rosbag_io.image_message(typestore, image, header)
            elif image_type == 'sensor_msgs/msg/CompressedImage':
                jpeg = cv2.imencode('.jpg', image[:, :, ::-1])[1].reshape(-1)
                msg = typestore.types[image_type](header=header, format='rgb8; jpeg compressed bgr8',
                                                  data=jpeg)
            else:
                msg = typestore.types[image_type](data=f'frame {t}')
            raw = typestore.serialize_cdr(msg, image_type)
            assert image_type == 'std_msgs/msg/String' or _header_stamp(bytes(raw)) == stamp
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


@pytest.mark.parametrize('image_type', ['std_msgs/msg/String', 'sensor_msgs/msg/CompressedImage'])
def test_an_image_topic_of_another_type_is_refused_before_the_replay(tmp_path, monkeypatch,
                                                                   image_type):
    """Before: replayed anyway, and a node never answers (30 s per frame). Now refused at once,
    naming the bag, the topic and its type, with no node needed and nothing written."""
    import time
    env = isolated_ros_env()
    for key in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID', 'FASTDDS_DEFAULT_PROFILES_FILE'):
        monkeypatch.setenv(key, env[key])
    _write_bag(tmp_path / 'in', frames=3, image_type=image_type)
    started = time.monotonic()
    with pytest.raises(rosbag_io.BagError) as error:
        replay_into_node(tmp_path / 'in', tmp_path / 'out', ReplayConfig(discovery_timeout_s=5),
                         log=lambda *_: None)
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert f'{tmp_path / "in"}: topic /camera/image_raw holds {image_type}' in message
    assert 'sensor_msgs/msg/Image' in message
    if image_type == 'sensor_msgs/msg/CompressedImage':   # how to replay it instead
        assert 'image_transport:=compressed' in message
    assert not (tmp_path / 'out').exists() and not list(tmp_path.glob('.out.partial*'))


def test_compressed_images_into_a_node_on_the_compressed_transport(tmp_path, monkeypatch):
    """A bag of CompressedImage (JPEG) into a node with image_transport compressed: every frame
    answered in order. A raw bag into that node is refused as soon as the node shows up (it
    takes images on image/compressed and would never answer), not after the timeouts."""
    from ram_training.node_process import tracker_node
    env = isolated_ros_env()
    for key in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID', 'FASTDDS_DEFAULT_PROFILES_FILE'):
        monkeypatch.setenv(key, env[key])
    _write_bag(tmp_path / 'raw', frames=3)
    stamps = _write_bag(tmp_path / 'jpeg', frames=12, image_type='sensor_msgs/msg/CompressedImage')
    overrides = {'input_width': 64, 'input_height': 32, 'device': 'cpu', 'num_threads': 1,
                 'image_transport': 'compressed'}
    answered = []
    with tracker_node(env, tmp_path / 'tracker_node.log', overrides=overrides,
                      remaps={'image': '/image'}):
        with pytest.raises(ValueError, match='takes images on /image/compressed'):
            replay_into_node(tmp_path / 'raw', tmp_path / 'out_raw', ReplayConfig(),
                             log=lambda *_: None)
        result = replay_into_node(tmp_path / 'jpeg', tmp_path / 'out',
                                  ReplayConfig(image_transport='compressed'), log=lambda *_: None,
                                  on_answer=lambda i, msg: answered.append(
                                      msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec))
    assert (result.frames, result.answered, result.missed_stamps) == (12, 12, [])
    assert answered == stamps
    assert rosbag_io.topics_of(tmp_path / 'out')['/tracks'] == ('ram_msgs/msg/TrackedObjectArray', 12)
