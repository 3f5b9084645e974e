"""Print what the tracker publishes: a `ros2 topic hz/echo` for machines without ros2cli.

Once per second: frames received, rate, track counts per state, and the age of the newest
answer's header stamp (end-to-end delay when the publisher stamps with the same clock).
Parameters: `duration_s` counted from the first message (0: until Ctrl-C), `startup_timeout_s`
(give up if nothing arrives), `min_frames` (exit status 1 if fewer arrived).
"""
from __future__ import annotations

import collections
import time

import rclpy
from rclpy.node import Node
from rclpy.time import Time

from ram_msgs.msg import TrackedObject, TrackedObjectArray

_STATE_NAMES = {TrackedObject.STATE_VISIBLE: 'visible', TrackedObject.STATE_OCCLUDED: 'occluded',
                TrackedObject.STATE_LOST: 'lost'}


class TrackMonitor(Node):

    def __init__(self):
        super().__init__('track_monitor')
        self.declare_parameter('duration_s', 0.0)
        self.declare_parameter('startup_timeout_s', 120.0)
        self.declare_parameter('min_frames', 0)
        self.frames = 0
        self.ids: set[int] = set()
        self._window: collections.Counter = collections.Counter()
        self._window_frames = 0
        self._last_delay_ms = float('nan')
        self._created = time.monotonic()
        self._first_message: float | None = None
        self.create_subscription(TrackedObjectArray, 'tracks', self._on_tracks, 10)
        self.create_timer(1.0, self._report)

    def _on_tracks(self, msg: TrackedObjectArray):
        self.frames += 1
        if self._first_message is None:
            self._first_message = time.monotonic()
        self._window_frames += 1
        for track in msg.tracks:
            self._window[_STATE_NAMES.get(track.state, '?')] += 1
            self.ids.add(track.id)
        delay = self.get_clock().now() - Time.from_msg(msg.header.stamp)
        self._last_delay_ms = delay.nanoseconds / 1e6

    def _report(self):
        now = time.monotonic()
        if self._first_message is None:
            self.get_logger().info(f'waiting for {self.resolve_topic_name("tracks")} ...',
                                   throttle_duration_sec=5.0)
            if now - self._created > self.get_parameter('startup_timeout_s').value:
                raise SystemExit(0)
            return
        states = ', '.join(f'{k} {v}' for k, v in sorted(self._window.items())) or 'no tracks'
        self.get_logger().info(
            f'{self._window_frames} frames/s | {states} | {len(self.ids)} ids so far | '
            f'stamp age {self._last_delay_ms:.0f} ms | total {self.frames} frames')
        self._window.clear()
        self._window_frames = 0
        duration = self.get_parameter('duration_s').value
        if duration and now - self._first_message >= duration:
            raise SystemExit(0)


def main(args=None):
    rclpy.init(args=args)
    node = TrackMonitor()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, SystemExit, rclpy.executors.ExternalShutdownException):
        pass
    frames, wanted = node.frames, node.get_parameter('min_frames').value
    node.destroy_node()
    rclpy.try_shutdown()
    if frames < wanted:
        print(f'track_monitor: only {frames} track messages arrived (wanted {wanted})')
        raise SystemExit(1)


if __name__ == '__main__':
    main()
