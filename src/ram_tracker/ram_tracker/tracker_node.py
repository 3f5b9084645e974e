"""ROS 2 lifecycle node: camera images in, RAM tracks out.

configure: validate parameters, load the model, warm it up, create publishers/subscriptions.
activate:  start publishing.   deactivate: stop.   cleanup: free the model.
With `autostart` (default) the node configures and activates itself, so it runs without a
lifecycle manager (e.g. started as its installed executable with --params-file).

All computation lives in ram_tracker.pipeline (no ROS); this file only moves messages.
"""
from __future__ import annotations

import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image

from ram_msgs.msg import TrackedObject, TrackedObjectArray
from ram_tracker import parameters
from ram_tracker.image_conversion import ImageConversionError, image_to_rgb
from ram_tracker.pipeline import TrackingPipeline

_STATE = {'visible': TrackedObject.STATE_VISIBLE, 'occluded': TrackedObject.STATE_OCCLUDED,
          'lost': TrackedObject.STATE_LOST}
_SOURCE = {'detection': TrackedObject.SOURCE_DETECTION, 'walker': TrackedObject.SOURCE_WALKER}


class TrackerNode(LifecycleNode):

    def __init__(self, **kwargs):
        super().__init__('tracker_node', **kwargs)
        # Parameters: declared from the schema, the one place that defines them.
        for name, value in parameters.defaults().items():
            self.declare_parameter(name, value)
        self._pipeline: TrackingPipeline | None = None
        self._image_sub = None
        self._tracks_pub = None
        self._diagnostics_pub = None
        self._diagnostics_timer = None
        self._params: dict = {}
        self._counters = {'frames_received': 0, 'frames_processed': 0, 'frames_rejected': 0}
        self._last_latency_ms = 0.0
        if self.get_parameter('autostart').value:
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    # -- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        values = {name: self.get_parameter(name).value for name in parameters.defaults()}
        try:
            self._params = parameters.validate(values)
            self._pipeline = TrackingPipeline.from_params(self._params)
        except (parameters.ParameterError, FileNotFoundError, ValueError) as error:
            self.get_logger().error(f'configure failed: {error}')
            return TransitionCallbackReturn.FAILURE
        self._tracks_pub = self.create_lifecycle_publisher(TrackedObjectArray, 'tracks', 10)
        self._diagnostics_pub = self.create_lifecycle_publisher(
            DiagnosticArray, '/diagnostics', QoSProfile(depth=10))
        # Sensor-data QoS, depth 1: a slow frame never queues a backlog; the newest image wins.
        self._image_sub = self.create_subscription(
            Image, 'image', self._on_image, qos_profile_sensor_data)
        self._diagnostics_timer = self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f'configured: {self._pipeline.describe()}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self.get_logger().info('active: waiting for images on '
                               f'{self.resolve_topic_name("image")}')
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self):
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
        if self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
        for pub in (self._tracks_pub, self._diagnostics_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._image_sub = self._tracks_pub = self._diagnostics_pub = None
        self._diagnostics_timer = None
        self._pipeline = None

    # -- per frame ------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        if self._tracks_pub is None or not self._tracks_pub.is_activated:
            return
        self._counters['frames_received'] += 1
        started = time.perf_counter()
        try:
            rgb = image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                               msg.is_bigendian)
        except ImageConversionError as error:
            self._counters['frames_rejected'] += 1
            self.get_logger().error(
                f'dropping image (frame_id "{msg.header.frame_id}"): {error} '
                f'[{self._counters["frames_rejected"]} rejected so far]',
                throttle_duration_sec=self._params['error_log_period_s'])
            return
        result = self._pipeline.process(rgb)
        out = TrackedObjectArray()
        out.header = msg.header
        out.tracks = [self._to_msg(track) for track in result.tracks]
        self._tracks_pub.publish(out)
        self._counters['frames_processed'] += 1
        self._last_latency_ms = (time.perf_counter() - started) * 1000.0

    @staticmethod
    def _to_msg(track) -> TrackedObject:
        m = TrackedObject()
        m.id = track.track_id
        m.class_id = track.class_name
        m.score = float(track.score)
        cx, cy, w, h = track.box_cxcywh
        m.bbox.center.position.x, m.bbox.center.position.y = float(cx), float(cy)
        m.bbox.size_x, m.bbox.size_y = float(w), float(h)
        m.state = _STATE[track.state]
        m.frames_since_seen = int(track.frames_since_seen)
        m.walker_confidence = float(track.walker_confidence)
        m.velocity_x, m.velocity_y = float(track.velocity[0]), float(track.velocity[1])
        m.box_source = _SOURCE[track.box_source]
        m.visibility = float(track.visibility)
        m.age = int(track.age)
        return m

    def _publish_diagnostics(self) -> None:
        if self._diagnostics_pub is None or not self._diagnostics_pub.is_activated:
            return
        status = DiagnosticStatus()
        status.name = f'{self.get_fully_qualified_name()}: tracking'
        status.hardware_id = self._pipeline.device_name if self._pipeline else ''
        rejected = self._counters['frames_rejected']
        status.level = DiagnosticStatus.WARN if rejected else DiagnosticStatus.OK
        status.message = f'{rejected} bad frames rejected' if rejected else 'ok'
        values = dict(self._counters, last_latency_ms=f'{self._last_latency_ms:.1f}')
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        diag = DiagnosticArray()
        diag.header.stamp = self.get_clock().now().to_msg()
        diag.status = [status]
        self._diagnostics_pub.publish(diag)


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
