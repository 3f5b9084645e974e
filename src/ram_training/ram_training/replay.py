"""Replay a bag's images into a live tracker node, one frame at a time, and record its answers.

Lockstep: image i is published (its stored CDR bytes, so the header stamp is the recorded one),
then the replayer waits for the node's `tracks` answer carrying that stamp before sending image
i + 1. An unanswered image is resent every `resend_interval_s`: the node subscribes best effort
and the first sample to a fresh node is often lost, while the DDS channel is still being set up
(it cost 10 s per replay with a single late resend). The node does not track a repeated stamp
twice: it answers it again with the same result (so a first answer lost before the replayer's
subscription was matched is recovered), and the recorder keeps one answer per stamp and topic.
Every frame is processed exactly once, whatever the machine's speed, so results are comparable
across machines and identical to the offline path on the same frames. A frame still without an
answer within `answer_timeout_s` is counted as missed and the replay goes on.

Images go out as the node takes them, per its `image_transport` parameter (ReplayConfig's):
sensor_msgs/Image on `image`, or sensor_msgs/CompressedImage on `image/compressed`. The bag's
image topic must hold that type; anything else is refused before the node is even looked for,
naming the bag, the topic and its type (the node would never answer it).

Recorded (rosbag2, raw CDR as received): the node's outputs (tracks, belief, belief_grid,
markers, and debug_image when asked) plus the input bag's ground-truth tracks and camera info, so
the output bag alone is enough to score and to look at.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ram_training.data import rosbag_io

# What the node subscribes to, per its image_transport parameter: message type, topic suffix.
NODE_IMAGE_INPUTS = {
    'raw': ('sensor_msgs/msg/Image', ''),
    'compressed': ('sensor_msgs/msg/CompressedImage', '/compressed'),
}
NODE_OUTPUTS = {
    'tracks': 'ram_msgs/msg/TrackedObjectArray',
    'belief': 'ram_msgs/msg/BeliefArray',
    'belief_grid': 'nav_msgs/msg/OccupancyGrid',
    'markers': 'visualization_msgs/msg/MarkerArray',
    'debug_image': 'sensor_msgs/msg/Image',
}


@dataclass
class ReplayConfig:
    image_topic: str = '/camera/image_raw'          # in the input bag
    copy_topics: tuple = ('/ground_truth/tracks', '/camera/camera_info')
    node_namespace: str = ''                        # where the node's topics live
    node_image_topic: str = 'image'                 # what the node subscribes to
    image_transport: str = 'raw'                    # the node's image_transport parameter
    record: tuple = ('tracks', 'belief', 'belief_grid', 'markers')
    answer_timeout_s: float = 30.0                  # per frame, over all resends
    resend_interval_s: float = 1.0                  # resend an unanswered image this often
    discovery_timeout_s: float = 120.0              # node start-up includes loading the model
    storage: str = 'mcap'
    max_frames: int | None = None


@dataclass
class ReplayResult:
    frames: int = 0
    answered: int = 0
    missed_stamps: list = field(default_factory=list)
    seconds: float = 0.0
    node_fps: float = 0.0
    out_bag: str = ''


def _topic(namespace: str, name: str) -> str:
    return f'/{namespace.strip("/")}/{name}' if namespace.strip('/') else f'/{name}'


class _Recorder:
    """Writes what the node publishes (and the input topics copied along) into the output bag,
    and keeps the node's `tracks` answers by header stamp for the lockstep."""

    def __init__(self, writer, typestore):
        from rclpy.serialization import deserialize_message

        from ram_msgs.msg import TrackedObjectArray
        self._deserialize_tracks = partial(deserialize_message, message_type=TrackedObjectArray)
        self.writer = writer
        self.typestore = typestore
        self.connections: dict = {}
        self.answers: dict[int, object] = {}
        self.current_stamp = 0                      # of the frame in flight
        self._last_written: dict[str, int] = {}     # topic -> stamp of the last output written

    def subscribe_outputs(self, node, config: ReplayConfig, reliable) -> None:
        from rclpy.qos import qos_profile_sensor_data

        from ram_training.data.player import message_class
        for name in config.record:
            topic = _topic(config.node_namespace, name)
            msgtype = NODE_OUTPUTS[name]
            self.connections[topic] = self.writer.add_connection(topic, msgtype,
                                                                 typestore=self.typestore)
            # debug_image is published with sensor-data QoS (best effort): match it
            qos = qos_profile_sensor_data if name == 'debug_image' else reliable
            node.create_subscription(message_class(msgtype), topic,
                                     partial(self.on_output, topic=topic, name=name), qos, raw=True)

    def on_output(self, raw: bytes, topic: str, name: str) -> None:
        # Log time = the header stamp of the frame the message answers, so the output bag lines
        # up with the input bag (MarkerArray has no header: the frame in flight, which in
        # lockstep is the one it answers).
        stamp = self.current_stamp if name == 'markers' else _header_stamp(raw)
        if name != 'markers' and self._last_written.get(topic) == stamp:
            return      # the node's answer to a resend of a frame it had answered: kept once
        self._last_written[topic] = stamp
        self.writer.write(self.connections[topic], stamp, raw)
        if name == 'tracks':
            msg = self._deserialize_tracks(raw)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            self.answers[stamp] = msg

    def add_copied_topics(self, config: ReplayConfig, in_topics: dict) -> None:
        for topic in config.copy_topics:
            if topic in in_topics:
                self.connections[topic] = self.writer.add_connection(topic, in_topics[topic][0],
                                                                     typestore=self.typestore)

    def copy(self, topic: str, log_time: int, raw: bytes) -> None:
        self.writer.write(self.connections[topic], log_time, raw)


def _wait_for_tracker(node, executor, image_pub, image_type: str, config: ReplayConfig) -> None:
    """Until a node subscribes to the images and publishes tracks; a tracker node that takes
    the other image transport is named at once (it would never answer)."""
    tracks_topic = _topic(config.node_namespace, 'tracks')
    other_topics = {transport: _topic(config.node_namespace, config.node_image_topic) + suffix
                    for transport, (_, suffix) in NODE_IMAGE_INPUTS.items()
                    if transport != config.image_transport}
    deadline = time.monotonic() + config.discovery_timeout_s
    while image_pub.get_subscription_count() == 0 or node.count_publishers(tracks_topic) == 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f'no tracker node on {image_pub.topic_name} / {tracks_topic} '
                               f'after {config.discovery_timeout_s:.0f} s')
        trackers = {(i.node_namespace, i.node_name)
                    for i in node.get_publishers_info_by_topic(tracks_topic)}
        for transport, topic in other_topics.items():
            if trackers & {(i.node_namespace, i.node_name)
                           for i in node.get_subscriptions_info_by_topic(topic)}:
                # the node takes the other transport and would never answer: say so now rather
                # than after the timeout
                raise ValueError(
                    f'the tracker node takes images on {topic} (image_transport '
                    f'{transport!r}), the replay sends {image_type} on '
                    f'{image_pub.topic_name} (image_transport {config.image_transport!r})')
        executor.spin_once(timeout_sec=0.05)


def _send_until_answered(raw: bytes, stamp: int, image_pub, executor, recorder: _Recorder,
                         config: ReplayConfig) -> int:
    """Publishes one image until the node answers it or answer_timeout_s passes; the number of
    sends. The node subscribes best effort: a sample can be lost (typically the very first,
    while the shared-memory channel is still being set up). Resend it, bounded."""
    give_up = time.monotonic() + config.answer_timeout_s
    sends = 0
    while stamp not in recorder.answers and time.monotonic() < give_up:
        image_pub.publish(raw)
        sends += 1
        resend_at = min(time.monotonic() + config.resend_interval_s, give_up)
        while stamp not in recorder.answers and time.monotonic() < resend_at:
            executor.spin_once(timeout_sec=0.01)
    return sends


def _replay_frames(in_bag, image_pub, executor, recorder: _Recorder, config: ReplayConfig,
                   result: ReplayResult, log, on_answer) -> None:
    """The lockstep over the input bag: copied topics written, images sent one at a time."""
    started = time.monotonic()
    first_answer = last_answer = None
    for topic, msgtype, log_time, raw in rosbag_io.iterate_raw(in_bag):
        if topic in config.copy_topics and topic in recorder.connections:
            recorder.copy(topic, log_time, raw)
            continue
        if topic != config.image_topic:
            continue
        if config.max_frames is not None and result.frames >= config.max_frames:
            break
        stamp = _header_stamp(raw)
        recorder.current_stamp = stamp
        result.frames += 1
        sends = _send_until_answered(raw, stamp, image_pub, executor, recorder, config)
        if sends > 1:
            log(f'[replay] frame {result.frames - 1} sent {sends} times '
                f'(no answer within {config.resend_interval_s:g} s)')
        if stamp in recorder.answers:
            result.answered += 1
            last_answer = time.monotonic()
            first_answer = first_answer or last_answer
            if on_answer:
                on_answer(result.frames - 1, recorder.answers[stamp])
            recorder.answers.pop(stamp)
        else:
            result.missed_stamps.append(stamp)
            log(f'[replay] no answer for frame {result.frames - 1} (stamp {stamp})')
        if result.frames % 50 == 0:
            log(f'[replay] {result.frames} frames, '
                f'{result.frames / (time.monotonic() - started):.1f} frames/s')
    # let the last outputs (belief etc.) arrive
    settle = time.monotonic() + 0.5
    while time.monotonic() < settle:
        executor.spin_once(timeout_sec=0.05)
    result.seconds = time.monotonic() - started
    if result.answered > 1 and last_answer > first_answer:
        result.node_fps = (result.answered - 1) / (last_answer - first_answer)


def replay_into_node(in_bag, out_bag, config: ReplayConfig = ReplayConfig(), log=print,
                     on_answer=None) -> ReplayResult:
    """See the module docstring. `on_answer(index, tracks_msg)` is called for every answer.
    rclpy must not be initialised by the caller (this function owns its context)."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')  # never leave loopback
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosbags.rosbag2 import StoragePlugin, Writer

    from ram_training.data.player import message_class

    in_topics = rosbag_io.topics_of(in_bag)
    image_type, node_image_topic = _check_image_topic(in_bag, in_topics, config)
    out_bag = Path(out_bag)
    plugins = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('ram_replay', context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    result = ReplayResult(out_bag=str(out_bag))
    with rosbag_io.staged_bag_dir(out_bag) as staged_path:   # out_bag appears only when complete
        writer = Writer(staged_path, version=9, storage_plugin=plugins[config.storage])
        writer.open()
        try:
            recorder = _Recorder(writer, rosbag_io.make_typestore())
            reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
            recorder.subscribe_outputs(node, config, reliable)
            recorder.add_copied_topics(config, in_topics)
            image_pub = node.create_publisher(message_class(image_type), node_image_topic,
                                              reliable)
            _wait_for_tracker(node, executor, image_pub, image_type, config)
            _replay_frames(in_bag, image_pub, executor, recorder, config, result, log, on_answer)
        finally:
            executor.shutdown()
            node.destroy_node()
            rclpy.try_shutdown(context=context)
            writer.close()
    return result


def _check_image_topic(in_bag, in_topics: dict, config: ReplayConfig) -> tuple[str, str]:
    """(message type, node topic) of the images to replay, checked before anything starts: a
    type the node does not subscribe to would never be answered (a wait of answer_timeout_s per
    frame). rosbag_io.BagError naming the bag, the topic and its type otherwise."""
    if config.image_transport not in NODE_IMAGE_INPUTS:
        raise ValueError(f'image_transport must be one of {", ".join(NODE_IMAGE_INPUTS)}, '
                         f'got {config.image_transport!r}')
    if config.image_topic not in in_topics:
        raise rosbag_io.BagError(f'{in_bag}: no topic {config.image_topic} '
                                 f'(has: {", ".join(sorted(in_topics)) or "none"})')
    wanted, suffix = NODE_IMAGE_INPUTS[config.image_transport]
    found = in_topics[config.image_topic][0]
    if found != wanted:
        hint = ''.join(f'; for {found} run the node with image_transport:={transport} and '
                       f'replay with image_transport={transport!r}'
                       for transport, (msgtype, _) in NODE_IMAGE_INPUTS.items() if msgtype == found)
        raise rosbag_io.BagError(
            f'{in_bag}: topic {config.image_topic} holds {found}, but the tracker node with '
            f'image_transport {config.image_transport!r} takes {wanted}{hint}')
    return wanted, _topic(config.node_namespace, config.node_image_topic) + suffix


def _header_stamp(raw: bytes) -> int:
    """Header stamp of a CDR-serialised message that starts with a std_msgs/Header (Image,
    TrackedObjectArray, ...) without decoding the rest: after the 4-byte encapsulation header
    come int32 sec and uint32 nanosec."""
    import struct
    order = '<' if raw[1] & 1 else '>'          # CDR_LE = 0x0001, CDR_BE = 0x0000
    sec, nanosec = struct.unpack_from(order + 'iI', raw, 4)
    return sec * 1_000_000_000 + nanosec
