"""The installed tracker_node in its own process, fed over real DDS by another process.

Three processes: this test (subscribes to tracks and /diagnostics), the node started as its
installed executable with the installed params file, and frames_publisher.py sending a mix of
good images (all encodings, padded rows) and malformed ones.
"""
import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip('rclpy')
from ament_index_python.packages import get_package_prefix, get_package_share_directory  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from ram_msgs.msg import BeliefArray, TrackedObjectArray  # noqa: E402
from ram_tracker.ros_env import isolated_ros_env  # noqa: E402

HERE = Path(__file__).resolve().parent


@pytest.fixture
def ros_env(monkeypatch):
    env = isolated_ros_env()
    for key in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID', 'FASTDDS_DEFAULT_PROFILES_FILE',
                'RMW_IMPLEMENTATION'):
        if key in env:
            monkeypatch.setenv(key, env[key])
    return env


def _start(cmd, env, log_path):
    log = open(log_path, 'w')
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True), log


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_node_answers_each_good_image_with_its_header_and_survives_bad_ones(ros_env, tmp_path):
    """Also: the belief topic answers every processed frame, the reset service works, a stamp
    jumping backwards (a looping bag) resets the memory, and a repeated stamp is skipped."""
    executable = Path(get_package_prefix('ram_tracker')) / 'lib' / 'ram_tracker' / 'tracker_node'
    params = Path(get_package_share_directory('ram_tracker')) / 'config' / 'tracker.yaml'
    assert executable.exists(), f'{executable} missing: run colcon build'
    node_proc, node_log = _start(
        [str(executable), '--ros-args', '--params-file', str(params),
         '-p', 'input_width:=320', '-p', 'input_height:=96', '-p', 'device:=cpu',
         '-p', 'num_threads:=1'], ros_env, tmp_path / 'node.log')
    pub_proc, pub_log = _start([sys.executable, str(HERE / 'frames_publisher.py'), '320', '96',
                                '20'], ros_env, tmp_path / 'publisher.log')
    rclpy.init()
    listener = rclpy.create_node('test_listener')
    tracks: dict[int, str] = {}
    diagnostics: dict[str, str] = {}

    def on_tracks(msg):
        tracks[msg.header.stamp.sec] = msg.header.frame_id

    def on_diagnostics(msg):
        for status in msg.status:
            if 'tracker_node' in status.name:
                diagnostics.update({kv.key: kv.value for kv in status.values})

    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    listener.create_subscription(TrackedObjectArray, 'tracks', on_tracks, reliable)
    listener.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    belief_stamps = set()
    listener.create_subscription(BeliefArray, 'belief',
                                 lambda m: belief_stamps.add(m.header.stamp.sec), reliable)
    reset = listener.create_client(Trigger, '/tracker_node/reset')
    try:
        # Discovery and model start-up: poll, never a fixed sleep.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rclpy.spin_once(listener, timeout_sec=0.2)
            assert node_proc.poll() is None, (tmp_path / 'node.log').read_text()
            assert pub_proc.poll() is None, (tmp_path / 'publisher.log').read_text()
            good = {kind for kind in tracks.values()}
            if (len(tracks) >= 12 and int(diagnostics.get('frames_rejected', 0)) >= 4
                    and int(diagnostics.get('frames_duplicate', 0)) >= 1
                    and int(diagnostics.get('frames_processed', 0)) >= 12
                    and int(diagnostics.get('resets', 0)) >= 1
                    and {'good/rgb8', 'good/bgr8-padded', 'good/mono8', 'good/rgba8',
                         'good/bgra8'} <= good):
                break
        node_log.flush()
        log_text = (tmp_path / 'node.log').read_text()
        assert len(tracks) >= 12, f'only {len(tracks)} answers; node log:\n{log_text}'
        # Every answer carries the header of a good image: stamp and frame_id copied.
        bad_answers = {sec: kind for sec, kind in tracks.items()
                       if not kind.startswith(('good/', 'dup/'))}
        assert not bad_answers, f'node answered malformed frames: {bad_answers}'
        # A repeated stamp right after its original is skipped, and counted.
        assert int(diagnostics['frames_duplicate']) >= 1, diagnostics
        # The node counted the malformed frames, logged them, and kept going.
        assert int(diagnostics['frames_rejected']) >= 4, diagnostics
        assert int(diagnostics['frames_processed']) >= 12, diagnostics
        assert 'unsupported encoding' in log_text or 'step' in log_text, log_text
        # Time jumped back at least once (the publisher loops its stamps every 36 frames).
        assert int(diagnostics['resets']) >= 1, diagnostics
        assert 'time jumped backwards' in log_text
        # Beliefs are published for every processed (good) frame, with the image's stamp.
        sys.path.insert(0, str(HERE))
        from frames_publisher import SCRIPT
        kinds = {SCRIPT[(sec - 1000) % len(SCRIPT)] for sec in belief_stamps}
        assert len(belief_stamps) >= 10 and all(k.startswith('good/') for k in kinds), kinds
        # The reset service clears the stream on request.
        assert reset.wait_for_service(timeout_sec=10)
        future = reset.call_async(Trigger.Request())
        rclpy.spin_until_future_complete(listener, future, timeout_sec=10)
        assert future.result() is not None and future.result().success
        assert node_proc.poll() is None
    finally:
        listener.destroy_node()
        rclpy.try_shutdown()
        _stop(pub_proc)
        _stop(node_proc)
        node_log.close()
        pub_log.close()
