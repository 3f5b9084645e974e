"""ROS 2 lifecycle node: camera images in, RAM tracks and beliefs out.

configure:  validate parameters, load the model and warm it up, create publishers/subscriptions.
activate:   (re)load the model if deactivate freed it; start publishing.
deactivate: stop publishing and free the model (GPU memory back to the robot).
cleanup / shutdown: destroy everything.
With `autostart` (default) the node configures and activates itself, so it runs without a
lifecycle manager (e.g. started as its installed executable with --params-file).

All computation lives in ram_tracker.pipeline (no ROS); message building in ros_conversions.
"""
from __future__ import annotations

import collections
import time
import traceback

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import OccupancyGrid
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from ram_msgs.msg import BeliefArray, TrackedObjectArray
from ram_tracker import parameters
from ram_tracker.checkpoint import WeightsError
from ram_tracker.image_conversion import ImageConversionError, image_to_rgb, rgb_to_image_fields
from ram_tracker.pipeline import TrackingPipeline
from ram_tracker.ros_conversions import (belief_occupancy_grid, beliefs_to_msg, track_markers,
                                         tracks_to_msg)
from ram_tracker.visualize import draw_tracks

# Sensor-data QoS with depth 1 (rclpy's qos_profile_sensor_data keeps 5): a slow frame never
# queues a backlog of stale ones; the newest image wins.
IMAGE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                       reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=DurabilityPolicy.VOLATILE)
# Publishers whose last sequence number is remembered (a restarted driver is a new publisher).
MAX_TRACKED_PUBLISHERS = 16


class TrackerNode(LifecycleNode):

    def __init__(self, **kwargs):
        super().__init__('tracker_node', **kwargs)
        # Parameters: declared from the schema, the one place that defines them.
        for name, value in parameters.defaults().items():
            self.declare_parameter(name, value)
        self._params: dict = {}
        self._pipeline: TrackingPipeline | None = None
        self._subs: list = []
        self._pubs: dict = {}
        self._timer = None
        self._reset_srv = None
        self._counters = collections.Counter()
        self._latencies_ms: collections.deque = collections.deque(maxlen=100)
        self._processed_times: collections.deque = collections.deque(maxlen=100)
        self._last_stamp: Time | None = None
        # Last publication sequence number taken, per publisher gid (drop counting).
        self._last_publication_seq: collections.OrderedDict = collections.OrderedDict()
        self._camera_info_size: tuple[int, int] | None = None
        self._image_size: tuple[int, int] | None = None
        if self.get_parameter('autostart').value:
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    # -- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        values = {name: self.get_parameter(name).value for name in parameters.defaults()}
        try:
            self._params = parameters.validate(values)
            self._pipeline = TrackingPipeline.from_params(self._params)
        except (parameters.ParameterError, FileNotFoundError, WeightsError, ValueError) as error:
            self.get_logger().error(f'configure failed: {error}')
            return TransitionCallbackReturn.FAILURE
        self._pubs = {
            'tracks': self.create_lifecycle_publisher(TrackedObjectArray, 'tracks', 10),
            'belief': self.create_lifecycle_publisher(BeliefArray, 'belief', 10),
            'belief_grid': self.create_lifecycle_publisher(OccupancyGrid, 'belief_grid', 10),
            'markers': self.create_lifecycle_publisher(MarkerArray, 'markers', 10),
            'debug_image': self.create_lifecycle_publisher(Image, 'debug_image',
                                                           qos_profile_sensor_data),
            'diagnostics': self.create_lifecycle_publisher(DiagnosticArray, '/diagnostics',
                                                           QoSProfile(depth=10)),
        }
        # Depth 1: the newest image wins; the ones it replaced are counted as dropped
        # (publication sequence numbers, see _count_dropped).
        self._subs = [self.create_subscription(Image, 'image', self._on_image, IMAGE_QOS)]
        if self._params['use_camera_info']:
            self._subs.append(self.create_subscription(
                CameraInfo, 'camera_info', self._on_camera_info, qos_profile_sensor_data))
        self._reset_srv = self.create_service(Trigger, '~/reset', self._on_reset)
        self._timer = self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f'configured: {self._pipeline.describe()}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        if self._pipeline is None:        # freed by deactivate
            try:
                self._pipeline = TrackingPipeline.from_params(self._params)
            except (FileNotFoundError, WeightsError, ValueError) as error:
                self.get_logger().error(f'activate failed: {error}')
                return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f'active: tracking images on {self.resolve_topic_name("image")}')
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._pipeline = None
        self._last_stamp = None
        # Frames that arrive while inactive are ignored, not dropped: restart the count.
        self._last_publication_seq.clear()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self):
        if self._timer is not None:
            self.destroy_timer(self._timer)
        if self._reset_srv is not None:
            self.destroy_service(self._reset_srv)
        for sub in self._subs:
            self.destroy_subscription(sub)
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._timer = self._reset_srv = self._pipeline = None
        self._subs, self._pubs = [], {}

    @property
    def _active(self) -> bool:
        pub = self._pubs.get('tracks')
        return pub is not None and pub.is_activated and self._pipeline is not None

    # -- callbacks ------------------------------------------------------------------------
    def _on_reset(self, request, response):
        if self._pipeline is None:
            response.success, response.message = False, 'not active'
            return response
        self._pipeline.reset()
        self._last_stamp = None
        self._counters['resets'] += 1
        response.success, response.message = True, 'memory and tracks cleared'
        self.get_logger().info('reset by service call')
        return response

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info_size = (msg.width, msg.height)

    def _on_image(self, msg: Image, info: dict) -> None:
        # `info` (rclpy's MessageInfo) has no default on purpose: rclpy passes it (sequence
        # numbers) only to a callback that cannot be called with the message alone.
        if not self._active:
            return
        started = time.perf_counter()
        self._counters['frames_received'] += 1
        try:
            self._count_dropped(info)
            if not self._track(msg):
                return
        except Exception as error:  # noqa: BLE001 - one frame must never end the node
            if not self.context.ok():
                raise       # shut down while publishing: main() treats it as a normal stop
            self._reject(msg, error)
            return
        self._counters['frames_processed'] += 1
        self._processed_times.append(time.monotonic())
        self._latencies_ms.append((time.perf_counter() - started) * 1000.0)

    def _reject(self, msg: Image, error: Exception) -> None:
        """Count and log (rate-limited, one call site for all reasons) a frame we cannot track:
        a malformed image, a stamp rclpy cannot represent, a failure anywhere downstream."""
        self._counters['frames_rejected'] += 1
        # A malformed image explains itself; anything else needs its traceback to be fixed.
        trace = '' if isinstance(error, ImageConversionError) else \
            f'\n{traceback.format_exc().rstrip()}'
        self.get_logger().error(
            f'dropping image (frame_id "{msg.header.frame_id}"): {error} '
            f'[{self._counters["frames_rejected"]} rejected so far]{trace}',
            throttle_duration_sec=self._params['error_log_period_s'])

    def _track(self, msg: Image) -> bool:
        """Track one frame and publish the result; False if it was skipped as a duplicate."""
        rgb = image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                           msg.is_bigendian)
        stamp = Time.from_msg(msg.header.stamp)     # raises for a negative stamp
        if stamp.nanoseconds and stamp == self._last_stamp:
            # The frame we just processed, again (a resend, a doubled driver message): tracking
            # it twice would age every track by a frame that did not happen. Unstamped (0)
            # images are never treated as duplicates.
            self._counters['frames_duplicate'] += 1
            return False
        if self._last_stamp is not None and stamp < self._last_stamp:
            # A bag looped or a sensor restarted: the memory describes another moment.
            self._pipeline.reset()
            self._counters['resets'] += 1
            self.get_logger().warning('time jumped backwards: memory and tracks reset')
        self._last_stamp = stamp
        self._image_size = (msg.width, msg.height)
        result = self._pipeline.process(rgb)
        self._publish(msg, rgb, result)
        return True

    def _count_dropped(self, info: dict) -> None:
        """Frames that never reached this callback: replaced in the depth-1 queue (newest wins)
        or lost on the way (best effort). A publisher numbers its messages 1, 2, 3, ...; a gap
        between two we took from it is frames we did not take. Frames sent before the first we
        took are nobody's drops (we were not there yet). Fast DDS reports no reception sequence
        numbers, hence the publication ones, per publisher."""
        seq = info.get('publication_sequence_number')
        gid = info.get('publisher_gid')
        if not seq or not gid:      # None / 0: the middleware does not report them
            return
        key = bytes(gid['data'])
        last = self._last_publication_seq.pop(key, None)
        if last is not None and seq > last + 1:
            self._counters['frames_dropped'] += seq - last - 1
        self._last_publication_seq[key] = seq       # now the most recent publisher
        while len(self._last_publication_seq) > MAX_TRACKED_PUBLISHERS:
            self._last_publication_seq.popitem(last=False)

    def _publish(self, msg: Image, rgb: np.ndarray, result) -> None:
        header, p = msg.header, self._params
        self._pubs['tracks'].publish(tracks_to_msg(header, result.tracks))
        self._pubs['belief'].publish(beliefs_to_msg(header, result.beliefs,
                                                    (msg.width, msg.height), p['belief_topk']))
        # Display-only topics are built only for someone who watches them (per-frame cost).
        grid = self._pipeline.grid
        if self._pubs['belief_grid'].get_subscription_count() > 0:
            self._pubs['belief_grid'].publish(belief_occupancy_grid(
                header, result.beliefs, (grid.height, grid.width), p['display_scale']))
        if self._pubs['markers'].get_subscription_count() > 0:
            self._pubs['markers'].publish(track_markers(header, result.tracks,
                                                        p['display_scale']))
        debug_pub = self._pubs['debug_image']
        if p['publish_debug_image'] and debug_pub.get_subscription_count() > 0:
            fields = rgb_to_image_fields(draw_tracks(rgb, result.tracks, result.beliefs))
            image = Image(header=header, height=fields['height'], width=fields['width'],
                          encoding=fields['encoding'], step=fields['step'])
            image.data = fields['data']
            debug_pub.publish(image)

    def _publish_diagnostics(self) -> None:
        pub = self._pubs.get('diagnostics')
        if pub is None or not pub.is_activated:
            return
        status = DiagnosticStatus()
        status.name = f'{self.get_fully_qualified_name()}: tracking'
        status.hardware_id = self._pipeline.device_name if self._pipeline else ''
        now = time.monotonic()
        recent = [t for t in self._processed_times if now - t <= 5.0]
        rate = len(recent) / 5.0
        latencies = sorted(self._latencies_ms)
        problems = []
        if self._counters['frames_rejected']:
            problems.append(f"{self._counters['frames_rejected']} bad frames rejected")
        if self._camera_info_size and self._image_size and \
                self._camera_info_size != self._image_size:
            problems.append(f'camera_info is {self._camera_info_size[0]}x'
                            f'{self._camera_info_size[1]}, images are {self._image_size[0]}x'
                            f'{self._image_size[1]}')
        status.level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        status.message = '; '.join(problems) or 'ok'
        values = {
            'frames_received': self._counters['frames_received'],
            'frames_processed': self._counters['frames_processed'],
            'frames_rejected': self._counters['frames_rejected'],
            'frames_dropped': self._counters['frames_dropped'],
            'frames_duplicate': self._counters['frames_duplicate'],
            'resets': self._counters['resets'],
            'rate_hz': f'{rate:.2f}',
            'latency_ms_p50': f'{latencies[len(latencies) // 2]:.1f}' if latencies else 'n/a',
            'latency_ms_max': f'{latencies[-1]:.1f}' if latencies else 'n/a',
            'backend': self._pipeline.backend_name if self._pipeline else 'released',
            'device': self._pipeline.device_name if self._pipeline else 'released',
        }
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        diag = DiagnosticArray()
        diag.header.stamp = self.get_clock().now().to_msg()
        diag.status = [status]
        pub.publish(diag)


def main(args=None):
    rclpy.init(args=args)
    node = TrackerNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # SIGTERM/SIGINT shut the context down while a callback was publishing: a normal stop.
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
