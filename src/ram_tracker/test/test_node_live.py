"""The installed tracker_node in its own process, fed over real DDS by another process.

Three processes: this test (subscribes to tracks and /diagnostics), the node started as its
installed executable with the installed params file, and frames_publisher.py sending a mix of
good images (all encodings, padded rows) and malformed ones. The later tests publish from this
test's own process (a stamp rclpy cannot convert, a burst faster than the node, a stream that
starts, goes bad, recovers and stops, as /diagnostics judges it).
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
import torch  # noqa: E402
from ament_index_python.packages import get_package_prefix, get_package_share_directory  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.duration import Duration  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,  # noqa: E402
                       qos_profile_sensor_data)
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from ram_msgs.msg import BeliefArray, TrackedObject, TrackedObjectArray  # noqa: E402
from ram_tracker.checkpoint import save_weights  # noqa: E402
from ram_tracker.model import ModelConfig, build_model  # noqa: E402
from ram_tracker.ros.ros_conversions import rgb_to_image_msg  # noqa: E402
from ram_training.ros_env import isolated_ros_env  # noqa: E402

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


def _shut_down(node, node_proc, node_log) -> None:
    """The end of a live test: the test's own node, rclpy, the tracker process, its log."""
    node.destroy_node()
    rclpy.try_shutdown()
    _stop(node_proc)
    node_log.close()


def _assert_newest_frame_qos(qos) -> None:
    """Sensor-data QoS with depth 1: best effort, keep last 1, volatile."""
    assert (qos.history, qos.depth) == (HistoryPolicy.KEEP_LAST, 1)
    assert qos.reliability == ReliabilityPolicy.BEST_EFFORT
    assert qos.durability == DurabilityPolicy.VOLATILE


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


SMALL_CPU = {'input_width': 320, 'input_height': 96, 'device': 'cpu', 'num_threads': 1}


def _start_node(env, tmp_path, **params):
    """The installed tracker_node with the installed params, small and on one CPU thread;
    `params`: more -p overrides."""
    executable = Path(get_package_prefix('ram_tracker')) / 'lib' / 'ram_tracker' / 'tracker_node'
    params_file = Path(get_package_share_directory('ram_tracker')) / 'config' / 'tracker.yaml'
    assert executable.exists(), f'{executable} missing: run colcon build'
    overrides = [arg for k, v in {**SMALL_CPU, **params}.items() for arg in ('-p', f'{k}:={v}')]
    return _start([str(executable), '--ros-args', '--params-file', str(params_file), *overrides],
                  env, tmp_path / 'node.log')


def _hot_weights(tmp_path) -> str:
    """A tiny untrained model whose heatmap prior (sigmoid(1) = 0.73) is above the default
    thresholds: every frame has detections that start tracks, and none pass 0.99."""
    torch.manual_seed(0)
    config = ModelConfig(backbone_width=8, neck_channels=16, memory_channels=16,
                         head_channels=16, embed_channels=16, heatmap_bias=1.0)
    return str(save_weights(tmp_path / 'hot.safetensors', build_model(config)))


def _image(sec: int, frame_id: str, width: int = 320, height: int = 96) -> Image:
    rgb = np.random.default_rng(sec % 2**32).integers(0, 256, (height, width, 3), np.uint8)
    msg = rgb_to_image_msg(Header(frame_id=frame_id), rgb)
    msg.header.stamp.sec = sec
    return msg


def _jpeg(sec: int, frame_id: str, width: int = 320, height: int = 96) -> CompressedImage:
    """A camera-like (smooth) frame as image_transport's compressed plugin sends it."""
    import cv2
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x + sec) % 256, y * 2 % 256, np.full_like(x, 90)], -1).astype(np.uint8)
    ok, encoded = cv2.imencode('.jpg', np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    msg = CompressedImage(format='rgb8; jpeg compressed bgr8')
    msg.data = encoded.tobytes()
    msg.header.stamp.sec, msg.header.frame_id = sec, frame_id
    return msg


class _Listener:
    """This test's side of the wire: publishes images, collects tracks and diagnostics."""

    def __init__(self, image_type=Image, image_topic='image'):
        self.node = rclpy.create_node('test_listener')
        self.pub = self.node.create_publisher(image_type, image_topic, qos_profile_sensor_data)
        self.answered: set[int] = set()            # stamps (sec) the node answered on tracks
        self.diagnostics: dict[str, str] = {}
        self.diagnostics_count = 0
        self.status: DiagnosticStatus | None = None     # the node's latest
        self.node.create_subscription(
            TrackedObjectArray, 'tracks', lambda m: self.answered.add(m.header.stamp.sec),
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if 'tracker_node' in status.name:
                self.diagnostics.update({kv.key: kv.value for kv in status.values})
                self.diagnostics_count += 1
                self.status = status

    def counter(self, key: str) -> int:
        return int(self.diagnostics.get(key, 0))

    def spin_until(self, done, node_proc, log_path, timeout: float, resend=None,
                   every: float = 0.5) -> bool:
        """Spin until done(); fail at once if the node process ended. `resend` (a message, or a
        function that makes the next one) is published every `every` s: best effort may lose
        a sample."""
        deadline, next_send = time.monotonic() + timeout, 0.0
        while time.monotonic() < deadline:
            assert node_proc.poll() is None, f'tracker_node ended:\n{log_path.read_text()}'
            if done():
                return True
            if resend is not None and time.monotonic() >= next_send:
                self.pub.publish(resend() if callable(resend) else resend)
                next_send = time.monotonic() + every
            rclpy.spin_once(self.node, timeout_sec=0.05)
        return done()


def test_node_answers_each_good_image_with_its_header_and_survives_bad_ones(ros_env, tmp_path):
    """Also: the belief topic answers every processed frame, the reset service works, a stamp
    jumping backwards (a looping bag) resets the memory, and a repeated stamp is not tracked
    twice."""
    node_proc, node_log = _start_node(ros_env, tmp_path)
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
                         'good/bgra8', 'good/yuyv-padded'} <= good):
                break
        node_log.flush()
        log_text = (tmp_path / 'node.log').read_text()
        assert len(tracks) >= 12, f'only {len(tracks)} answers; node log:\n{log_text}'
        # Every answer carries the header of a good image: stamp and frame_id copied.
        bad_answers = {sec: kind for sec, kind in tracks.items()
                       if not kind.startswith(('good/', 'dup/'))}
        assert not bad_answers, f'node answered malformed frames: {bad_answers}'
        # A repeated stamp right after its original is not tracked again, and is counted.
        assert int(diagnostics['frames_duplicate']) >= 1, diagnostics
        # The node counted the malformed frames, logged them, and kept going.
        assert int(diagnostics['frames_rejected']) >= 4, diagnostics
        assert int(diagnostics['frames_processed']) >= 12, diagnostics
        assert 'unsupported encoding' in log_text or 'step' in log_text, log_text
        # Time jumped back at least once (the publisher loops its stamps every 44 frames).
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


def test_a_frame_that_raises_is_rejected_and_the_node_keeps_tracking(ros_env, tmp_path):
    """A negative stamp makes rclpy's Time raise inside the image callback: that frame is
    rejected (counted, logged) and the next good frame is answered; the process never ends."""
    node_proc, node_log = _start_node(ros_env, tmp_path)
    rclpy.init()
    side = _Listener()
    log_path = tmp_path / 'node.log'
    try:
        assert side.spin_until(lambda: side.pub.get_subscription_count() > 0, node_proc, log_path,
                               timeout=120), 'no tracker_node subscribed to image'
        negative = _image(-5, 'bad/negative-stamp')
        assert side.spin_until(lambda: side.counter('frames_rejected') >= 1, node_proc, log_path,
                               timeout=60, resend=negative), side.diagnostics
        assert side.spin_until(lambda: 7 in side.answered, node_proc, log_path, timeout=60,
                               resend=_image(7, 'good/after-negative')), side.diagnostics
        assert side.counter('frames_rejected') >= 1
        node_log.flush()
        assert 'bad/negative-stamp' in log_path.read_text()
        assert node_proc.poll() is None
    finally:
        _shut_down(side.node, node_proc, node_log)


def test_a_repeated_stamp_is_answered_again_but_tracked_once(ros_env, tmp_path):
    """A client that never got the answer to a frame (published before its subscription was
    matched, as a replayer's first frame can be) resends it: the node answers the repeated stamp
    again with the same tracks, and tracks the frame once (frames_processed counts it once,
    frames_duplicate the repeats). Before: the repeat was skipped and never answered."""
    node_proc, node_log = _start_node(ros_env, tmp_path)
    rclpy.init()
    side = _Listener()
    log_path = tmp_path / 'node.log'
    answers = []
    side.node.create_subscription(TrackedObjectArray, 'tracks', answers.append,
                                  QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    try:
        assert side.spin_until(lambda: side.pub.get_subscription_count() > 0, node_proc, log_path,
                               timeout=120), 'no tracker_node subscribed to image'
        frame = _image(11, 'good/original')
        assert side.spin_until(lambda: len(answers) > 0, node_proc, log_path, timeout=60,
                               resend=frame), side.diagnostics
        side.spin_until(lambda: False, node_proc, log_path, timeout=2.0)   # drain in-flight answers
        seen = len(answers)
        assert side.spin_until(lambda: len(answers) > seen, node_proc, log_path, timeout=30,
                               resend=frame), 'the repeated stamp was not answered again'
        assert all(a.header.stamp.sec == 11 and a == answers[0] for a in answers)
        assert side.spin_until(lambda: side.counter('frames_duplicate') >= 1, node_proc, log_path,
                               timeout=30), side.diagnostics
        assert side.counter('frames_processed') == 1, side.diagnostics
    finally:
        _shut_down(side.node, node_proc, node_log)


def test_frames_replaced_in_the_depth_1_queue_are_counted_as_dropped(ros_env, tmp_path):
    """A burst published far faster than the node tracks: the depth-1 queue keeps only the
    newest frame, and every frame that never reached the callback is counted as dropped (gaps in
    the publisher's sequence numbers), so received + dropped accounts for what was published."""
    node_proc, node_log = _start_node(ros_env, tmp_path)
    rclpy.init()
    side = _Listener()
    log_path = tmp_path / 'node.log'
    burst = [_image(2000 + i, 'good/burst') for i in range(200)]   # built before: no pacing
    try:
        # Warm up (model, discovery of both ends) with one frame, resent until answered.
        warmup, warmup_sends = _image(1000, 'good/warmup'), 0
        deadline = time.monotonic() + 120
        while 1000 not in side.answered and time.monotonic() < deadline:
            if side.pub.get_subscription_count() > 0:
                side.pub.publish(warmup)
                warmup_sends += 1
            side.spin_until(lambda: 1000 in side.answered, node_proc, log_path, timeout=0.5)
        assert 1000 in side.answered, f'warm-up frame never answered:\n{log_path.read_text()}'
        for msg in burst:
            side.pub.publish(msg)
        # The newest frame always stays in the queue: its answer ends the burst. Then two fresh
        # diagnostics (1 Hz) so the counters include it.
        assert side.spin_until(lambda: 2199 in side.answered, node_proc, log_path, timeout=60), \
            f'last burst frame never answered: {side.diagnostics}'
        seen = side.diagnostics_count
        assert side.spin_until(lambda: side.diagnostics_count >= seen + 2, node_proc, log_path,
                               timeout=10)
        received, dropped = side.counter('frames_received'), side.counter('frames_dropped')
        published = warmup_sends + len(burst)
        assert dropped > 0, side.diagnostics
        # Every frame from the first the node took (one of the warm-up sends) to the last (taken:
        # answered above) was either received or counted as dropped, lost by best effort or
        # replaced in the queue; warm-up sends before the first taken are nobody's drops.
        assert len(burst) + 1 <= received + dropped <= published, (published, side.diagnostics)
        assert node_proc.poll() is None
    finally:
        _shut_down(side.node, node_proc, node_log)


def test_diagnostics_report_how_old_a_live_frame_is_when_the_node_takes_it(ros_env, tmp_path):
    """stamp_age_ms_p50: header stamp -> the node's callback (transport and queue wait), over the
    window, for frames stamped on this clock; a replayed bag's old stamps give 'n/a', not a
    number of days."""
    node_proc, node_log = _start_node(ros_env, tmp_path)
    rclpy.init()
    side = _Listener()
    log_path = tmp_path / 'node.log'
    try:
        assert side.spin_until(lambda: 1000 in side.answered, node_proc, log_path, timeout=120,
                               resend=_image(1000, 'good/old-stamp')), side.diagnostics
        seen = side.diagnostics_count
        assert side.spin_until(lambda: side.diagnostics_count >= seen + 2, node_proc, log_path,
                               timeout=10)
        assert side.diagnostics['stamp_age_ms_p50'] == 'n/a', side.diagnostics

        def late_frame():
            # stamped 300 ms before it is sent: the node must see at least that age
            msg = _image(0, 'good/live')
            msg.header.stamp = (side.node.get_clock().now()
                                - Duration(seconds=0.3)).to_msg()
            return msg
        assert side.spin_until(lambda: side.diagnostics.get('stamp_age_ms_p50', 'n/a') != 'n/a',
                               node_proc, log_path, timeout=30, resend=late_frame, every=0.1)
        assert 300.0 <= float(side.diagnostics['stamp_age_ms_p50']) < 2000.0, side.diagnostics
    finally:
        _shut_down(side.node, node_proc, node_log)


def test_image_subscription_is_sensor_data_with_depth_1(ros_env):
    """The newest frame wins: best effort, volatile, keep last 1 (rclpy's
    qos_profile_sensor_data keeps 5, a backlog of stale frames behind a slow one). DDS discovery
    does not carry history depth (a remote node sees depth 0), so this looks at the node's own
    subscription, the node built in this process on a real rclpy context."""
    from ram_tracker.ros.tracker_node import TrackerNode
    rclpy.init()
    node = None
    try:
        node = TrackerNode(parameter_overrides=[Parameter(k, value=v)
                                                for k, v in SMALL_CPU.items()])
        subs = [s for s in node.subscriptions if s.topic_name == '/image']
        assert len(subs) == 1, [s.topic_name for s in node.subscriptions]
        _assert_newest_frame_qos(subs[0].qos_profile)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


def test_compressed_transport_tracks_jpeg_and_survives_a_corrupt_frame(ros_env, tmp_path):
    """image_transport:=compressed (recorded bags): the node subscribes to image/compressed,
    answers a JPEG with its header stamp and frame_id on tracks, counts a corrupt buffer as one
    rejected frame, and answers the next good one."""
    node_proc, node_log = _start_node(ros_env, tmp_path, image_transport='compressed')
    rclpy.init()
    side = _Listener(CompressedImage, 'image/compressed')
    frame_ids: dict[int, str] = {}
    side.node.create_subscription(
        TrackedObjectArray, 'tracks',
        lambda m: frame_ids.__setitem__(m.header.stamp.sec, m.header.frame_id),
        QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    log_path = tmp_path / 'node.log'
    try:
        assert side.spin_until(lambda: side.pub.get_subscription_count() > 0, node_proc, log_path,
                               timeout=120), 'no tracker_node subscribed to image/compressed'
        assert side.spin_until(lambda: 11 in frame_ids, node_proc, log_path, timeout=60,
                               resend=_jpeg(11, 'good/jpeg')), \
            f'jpeg never answered: {side.diagnostics}\n{log_path.read_text()}'
        assert frame_ids[11] == 'good/jpeg'
        corrupt = _jpeg(12, 'bad/corrupt-jpeg')
        corrupt.data = bytes(corrupt.data)[:40] + b'\0' * 8      # a truncated jpeg
        assert side.spin_until(lambda: side.counter('frames_rejected') >= 1, node_proc, log_path,
                               timeout=60, resend=corrupt), side.diagnostics
        assert 12 not in side.answered and 12 not in frame_ids
        assert side.spin_until(lambda: 13 in frame_ids, node_proc, log_path, timeout=60,
                               resend=_jpeg(13, 'good/after-corrupt')), side.diagnostics
        assert frame_ids[13] == 'good/after-corrupt'
        assert side.counter('frames_processed') >= 1
        node_log.flush()
        log_text = log_path.read_text()
        assert 'bad/corrupt-jpeg' in log_text and 'cannot decode compressed image' in log_text
        assert node_proc.poll() is None
    finally:
        _shut_down(side.node, node_proc, node_log)


@pytest.mark.parametrize('cli_args, topic', [
    ([], '/image/compressed'),
    (['--ros-args', '-r', 'image:=/camera/image_raw'], '/camera/image_raw/compressed'),
])
def test_compressed_subscription_follows_image_transport_naming(ros_env, cli_args, topic):
    """image_transport's convention: the compressed stream of `image` (after remapping) is
    `<image>/compressed`, same depth-1 sensor QoS, and no raw subscription beside it."""
    from ram_tracker.ros.tracker_node import TrackerNode
    rclpy.init()
    node = None
    try:
        node = TrackerNode(cli_args=cli_args, parameter_overrides=[
            Parameter(k, value=v) for k, v in {**SMALL_CPU, 'image_transport': 'compressed'}.items()])
        image_subs = [s for s in node.subscriptions if 'image' in s.topic_name]
        assert [s.topic_name for s in image_subs] == [topic]
        assert image_subs[0].msg_type is CompressedImage
        _assert_newest_frame_qos(image_subs[0].qos_profile)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


def _status_says(side: _Listener, level: bytes, text: str):
    """done() for spin_until: the node's latest status has `level` and `text` in its message."""
    return lambda: (side.status is not None and side.status.level == level
                    and text in side.status.message)


def test_diagnostics_judge_a_window_warn_on_stale_bad_slow_input_and_recover(ros_env, tmp_path):
    """/diagnostics with a 2-s window, over real DDS: WARN 'waiting for images' before any frame,
    OK once a clean stream has run for a window, WARN naming a rejected frame, OK again once the
    window has passed it (it used to stay WARN forever), WARN for a latency and a rate threshold
    set at runtime, and WARN 'no image for X s' when the stream stops."""
    node_proc, node_log = _start_node(ros_env, tmp_path, backend='torch', **{
        'diagnostics.window_s': 2.0, 'diagnostics.stale_after_s': 1.5,
        'diagnostics.min_rate_hz': 0.5})
    rclpy.init()
    side = _Listener()
    parameters = AsyncParameterClient(side.node, 'tracker_node')
    log_path = tmp_path / 'node.log'
    stamps = iter(range(100, 10**6))
    warn, ok = DiagnosticStatus.WARN, DiagnosticStatus.OK

    def good():
        return _image(next(stamps), 'good/stream')

    def stream(done, timeout=60.0, frame=good):
        """Frames at 5 Hz (the thresholds: 0.5 Hz, a 1.5-s gap is stale) until done()."""
        return side.spin_until(done, node_proc, log_path, timeout, resend=frame, every=0.2)

    def set_parameters(**values):
        future = parameters.set_parameters([Parameter(k, value=v) for k, v in values.items()])
        assert stream(future.done, timeout=30), f'set_parameters {values}: no answer'
        assert all(r.successful for r in future.result().results), future.result()

    try:
        assert side.spin_until(_status_says(side, warn, 'waiting for images on /image'),
                               node_proc, log_path, timeout=120), \
            f'before any frame: {side.status}\n{log_path.read_text()}'
        assert stream(_status_says(side, ok, 'ok')), f'clean stream: {side.status}'
        truncated = _image(7, 'bad/truncated')
        truncated.data = bytes(truncated.data)[:100]
        assert stream(_status_says(side, warn, 'bad frames rejected in the last 2 s'),
                      timeout=30, frame=lambda: truncated), f'bad frame: {side.status}'
        assert stream(_status_says(side, ok, 'ok'), timeout=30), \
            f'still not OK after the window passed the bad frame: {side.status}'
        assert side.counter('frames_rejected') >= 1     # the total stays counted
        set_parameters(**{'diagnostics.max_latency_ms': 0.001})
        assert stream(_status_says(side, warn, 'ms above 0.001 ms'), timeout=30), side.status
        set_parameters(**{'diagnostics.max_latency_ms': 1000.0,
                          'diagnostics.min_rate_hz': 1000.0})
        assert stream(_status_says(side, warn, 'Hz below 1000 Hz'), timeout=30), side.status
        set_parameters(**{'diagnostics.min_rate_hz': 0.5})
        assert stream(_status_says(side, ok, 'ok'), timeout=30), side.status
        assert side.spin_until(_status_says(side, warn, 'no image for'), node_proc, log_path,
                               timeout=10), f'stream stopped: {side.status}'
        assert side.status.message.endswith('s on /image'), side.status.message
        assert node_proc.poll() is None
    finally:
        _shut_down(side.node, node_proc, node_log)     # its parameter clients with it


def test_detections_carry_the_tracks_as_vision_msgs(ros_env, tmp_path):
    """With vision_msgs importable, each tracked frame is also a vision_msgs/Detection2DArray on
    `detections`: the image's header, one detection per visible or occluded track with the
    track id in `id`, its class and score as the hypothesis, its box; the log says it is on."""
    pytest.importorskip('vision_msgs.msg', reason='vision_msgs not importable: the workspace '
                        'builds it from src/third_party/vision_msgs (colcon build)')
    from vision_msgs.msg import Detection2DArray
    node_proc, node_log = _start_node(ros_env, tmp_path, backend='torch',
                                      model_path=_hot_weights(tmp_path))
    rclpy.init()
    side = _Listener()
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    tracks, detections = {}, {}
    side.node.create_subscription(TrackedObjectArray, 'tracks',
                                  lambda m: tracks.__setitem__(m.header.stamp.sec, m), reliable)
    side.node.create_subscription(Detection2DArray, 'detections',
                                  lambda m: detections.__setitem__(m.header.stamp.sec, m),
                                  reliable)
    log_path = tmp_path / 'node.log'
    stamps = iter(range(500, 10**6))

    def both_with_tracks():
        return [sec for sec in tracks.keys() & detections.keys() if tracks[sec].tracks]

    try:
        assert side.spin_until(both_with_tracks, node_proc, log_path, timeout=120,
                               resend=lambda: _image(next(stamps), 'good/detections')), \
            f'no frame answered on both tracks and detections:\n{log_path.read_text()}'
        for sec in both_with_tracks():
            objects, answer = tracks[sec], detections[sec]
            assert (answer.header.stamp, answer.header.frame_id) == \
                (objects.header.stamp, 'good/detections')
            expected = sorted((str(t.id), t.class_id, round(t.score, 6),
                               round(t.bbox.center.position.x, 3), round(t.bbox.size_y, 3))
                              for t in objects.tracks if t.state != TrackedObject.STATE_LOST)
            got = sorted((d.id, d.results[0].hypothesis.class_id,
                          round(d.results[0].hypothesis.score, 6),
                          round(d.bbox.center.position.x, 3), round(d.bbox.size_y, 3))
                         for d in answer.detections)
            assert got == expected and all(len(d.results) == 1 for d in answer.detections)
        node_log.flush()
        assert 'vision_msgs output on: vision_msgs/Detection2DArray on /detections' in \
            log_path.read_text()
    finally:
        _shut_down(side.node, node_proc, node_log)


def test_without_vision_msgs_the_node_says_so_and_tracks_as_before(ros_env, tmp_path):
    """A ROS install without vision_msgs: one INFO line says the output is off (and why), no
    `detections` publisher exists, and tracking is unaffected."""
    hidden = [p for p in ros_env.get('PYTHONPATH', '').split(os.pathsep)
              if p and '/vision_msgs/' not in p + '/']
    env = {**ros_env, 'PYTHONPATH': os.pathsep.join(hidden)}
    if subprocess.run([sys.executable, '-c', 'import vision_msgs.msg'], env=env,
                      capture_output=True).returncode == 0:
        pytest.skip('vision_msgs comes from the ROS underlay here: it cannot be hidden')
    node_proc, node_log = _start_node(env, tmp_path, backend='torch')
    rclpy.init()
    side = _Listener()
    log_path = tmp_path / 'node.log'
    try:
        assert side.spin_until(lambda: 3 in side.answered, node_proc, log_path, timeout=120,
                               resend=_image(3, 'good/no-vision-msgs')), log_path.read_text()
        node_log.flush()
        log_text = log_path.read_text()
        assert "vision_msgs output off: vision_msgs is not importable (No module named " \
            "'vision_msgs')" in log_text, log_text
        assert side.node.count_publishers('/detections') == 0
        assert side.node.count_publishers('/tracks') == 1
    finally:
        _shut_down(side.node, node_proc, node_log)
