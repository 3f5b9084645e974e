"""ROS 2 lifecycle node: camera images in, RAM tracks and beliefs out.

configure:  validate parameters, load the model and warm it up, create publishers/subscriptions.
activate:   (re)load the model if deactivate freed it; start publishing.
deactivate: stop publishing and free the model (GPU memory back to the robot).
cleanup / shutdown: destroy everything.
With `autostart` (default) the node configures and activates itself, so it runs without a
lifecycle manager (e.g. started as its installed executable with --params-file); if it cannot,
the process exits with status 1, so respawn and supervisors see the failure. A failed transition
requested by a lifecycle manager leaves the node where it was, with an ERROR status on
/diagnostics that says why.

Parameters are declared from the schema (type, range, description: describe_parameters shows
them). A change at runtime is validated like configure validates; Algorithm 1's thresholds go
to the running tracker at once, what needs the model reloaded is refused until cleanup.

/diagnostics judges the last `diagnostics.window_s` seconds of the image stream (StreamWindow):
WARN while no image arrived yet or for `diagnostics.stale_after_s`, for a rate or latency past
its threshold, and for rejected frames; OK again once a window passes clean.

All computation lives in ram_tracker.pipeline (no ROS); message building in
ram_tracker.ros.ros_conversions.
"""
from __future__ import annotations

import collections
import math
import sys
import time
import traceback

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import OccupancyGrid
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.exceptions import InvalidParameterValueException
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from ram_msgs.msg import BeliefArray, TrackedObjectArray
from ram_tracker import parameters
from ram_tracker.checkpoint import WeightsError
from ram_tracker.image_conversion import ImageConversionError, compressed_to_rgb, image_to_rgb
from ram_tracker.pipeline import TrackingPipeline
from ram_tracker.ros.ros_conversions import (VISION_MSGS_MISSING, Detection2DArray,
                                             belief_occupancy_grid, beliefs_to_msg,
                                             rgb_to_image_msg, track_markers,
                                             tracks_to_detections, tracks_to_msg)
from ram_tracker.visualize import draw_tracks

# Sensor-data QoS with depth 1 (rclpy's qos_profile_sensor_data keeps 5): a slow frame never
# queues a backlog of stale ones; the newest image wins.
IMAGE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                       reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=DurabilityPolicy.VOLATILE)
# A stamp older than this (or in the future) is not this clock's live camera: no stamp age.
MAX_STAMP_AGE_MS = 60_000.0
# Publishers whose last sequence number is remembered (a restarted driver is a new publisher).
MAX_TRACKED_PUBLISHERS = 16

# The parameters, as the schema defines them (name -> type, range, default, description).
SCHEMA = parameters.load_schema()['properties']
ROS_TYPES = {'string': Parameter.Type.STRING, 'number': Parameter.Type.DOUBLE,
             'integer': Parameter.Type.INTEGER, 'boolean': Parameter.Type.BOOL}
# What a change at runtime does; every schema parameter is in one group (tested).
# Algorithm 1's settings: the running tracker takes them at once (name -> TrackerConfig field,
# as the schema's tracker_config_field names it).
TRACKER_CONFIG_FIELDS = parameters.tracker_config_fields()
# Read for every frame or /diagnostics status: the next one uses the new value.
PER_FRAME_PARAMETERS = frozenset({'error_log_period_s', 'belief_topk', 'publish_debug_image',
                                  'display_scale', 'diagnostics.window_s',
                                  'diagnostics.stale_after_s', 'diagnostics.min_rate_hz',
                                  'diagnostics.max_latency_ms'})
# Read by configure only (the model, its backend and input size, the subscriptions): refused
# while the node is configured.
CONFIGURE_PARAMETERS = frozenset({'model_path', 'allow_untrained', 'device', 'backend', 'precision',
                                  'calibration_images', 'num_threads',
                                  'input_width', 'input_height', 'use_camera_info',
                                  'image_transport'})
# Read once, at start-up.
STARTUP_PARAMETERS = frozenset({'autostart'})
# Failures that explain themselves in one line; anything else is logged with its traceback.
EXPECTED_ERRORS = (parameters.ParameterError, FileNotFoundError, WeightsError, ValueError)


def parameter_descriptor(name: str, spec: dict) -> ParameterDescriptor:
    """One schema parameter as ROS describes it (describe_parameters, rqt); rclpy enforces its
    type and range. What a ROS range cannot say (an exclusive bound, a multiple, a choice, a
    pattern) is in additional_constraints; parameters.validate checks it all."""
    kind = spec['type']
    descriptor = ParameterDescriptor(name=name, type=ROS_TYPES[kind].value,
                                     description=spec.get('description', ''))
    low = spec.get('minimum', spec.get('exclusiveMinimum'))
    high = spec.get('maximum', spec.get('exclusiveMaximum'))
    if kind == 'integer' and (low is not None or high is not None):
        low = -2**63 if low is None else int(low)
        high = 2**63 - 1 if high is None else int(high)
        step = spec.get('multipleOf', 0)
        descriptor.integer_range = [IntegerRange(
            from_value=low, to_value=high,
            step=step if step and low % step == 0 else 0)]   # ROS steps count from the minimum
    elif kind == 'number' and (low is not None or high is not None):
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=-math.inf if low is None else float(low),
            to_value=math.inf if high is None else float(high), step=0.0)]
    constraints = []
    if 'exclusiveMinimum' in spec:
        constraints.append(f"> {spec['exclusiveMinimum']}")
    if 'exclusiveMaximum' in spec:
        constraints.append(f"< {spec['exclusiveMaximum']}")
    if 'multipleOf' in spec:
        constraints.append(f"multiple of {spec['multipleOf']}")
    if 'enum' in spec:
        constraints.append('one of: ' + ', '.join(str(v) for v in spec['enum']))
    if 'pattern' in spec:
        constraints.append(f"matches {spec['pattern']}")
    descriptor.additional_constraints = '; '.join(constraints)
    return descriptor


def as_schema_type(name: str, value):
    """`-p detection_threshold:=1` is an integer to ROS, a number to the schema: take it as 1.0
    (and 640.0 for an integer parameter as 640). Anything else is left for validation."""
    kind = SCHEMA[name]['type']
    if kind == 'number' and type(value) is int:
        return float(value)
    if kind == 'integer' and type(value) is float and value.is_integer():
        return int(value)
    return value


def ros_parameter_rules(args: list[str] | None) -> list[str]:
    """['-p', 'name:=value', ...]: the parameter rules of a command line's --ros-args sections."""
    args, rules, in_ros_args, i = list(args or []), [], False, 0
    while i < len(args):
        if args[i] == '--ros-args':
            in_ros_args = True
        elif args[i] == '--':
            in_ros_args = False
        elif in_ros_args and args[i] in ('-p', '--param') and i + 1 < len(args):
            rules += args[i:i + 2]
            i += 1
        i += 1
    return rules


class StreamWindow:
    """The image stream as /diagnostics judges it: when frames arrived, and the recent ones that
    were tracked (with their latency) or rejected. Only the last `window_s` seconds count, so a
    bad frame warns for one window and the status recovers by itself. Monotonic seconds."""

    def __init__(self):
        # (time, latency ms, stamp age ms or None): latency = callback start -> tracks
        # published; stamp age = the image's header stamp -> callback start (its transport and
        # its wait in the queue), None where the stamp is not this clock's recent past (a
        # replayed bag's original stamps, an unstamped image).
        self.tracked: collections.deque = collections.deque()
        self.rejected: collections.deque = collections.deque()    # time
        self.last_frame: float | None = None
        # The first frame after activation or after a stale gap: the rate is judged only once
        # frames have been arriving for a whole window (not the moment a stream starts).
        self.stream_start: float | None = None

    def frame_arrived(self, now: float, stale_after_s: float) -> None:
        if self.last_frame is None or now - self.last_frame > stale_after_s:
            self.stream_start = now
        self.last_frame = now

    def forget_before(self, start: float) -> None:
        while self.tracked and self.tracked[0][0] < start:
            self.tracked.popleft()
        while self.rejected and self.rejected[0] < start:
            self.rejected.popleft()

    def judge(self, now: float, params: dict, topic: str) -> tuple[list[str], dict]:
        """(problems, values) over the last window: no frame yet or for too long, a rate below
        or a median latency above its threshold, rejected frames."""
        window = params['diagnostics.window_s']
        self.forget_before(now - window)
        latencies = sorted(latency for _, latency, _ in self.tracked)
        ages = sorted(age for _, _, age in self.tracked if age is not None)
        rate = len(self.tracked) / window
        p50 = latencies[len(latencies) // 2] if latencies else None
        problems = []
        if self.last_frame is None:
            problems.append(f'waiting for images on {topic}')
        elif now - self.last_frame > params['diagnostics.stale_after_s']:
            problems.append(f'no image for {now - self.last_frame:.1f} s on {topic}')
        elif now - self.stream_start >= window and rate < params['diagnostics.min_rate_hz']:
            problems.append(f"rate {rate:.2f} Hz below {params['diagnostics.min_rate_hz']:g} Hz "
                            f'over the last {window:g} s')
        if p50 is not None and p50 > params['diagnostics.max_latency_ms']:
            problems.append(f"latency p50 {p50:.1f} ms above "
                            f"{params['diagnostics.max_latency_ms']:g} ms over the last "
                            f'{window:g} s')
        if self.rejected:
            problems.append(f'{len(self.rejected)} bad frames rejected in the last {window:g} s')
        values = {
            'window_s': f'{window:g}',
            'frames_rejected_in_window': len(self.rejected),
            'seconds_since_last_image': 'n/a' if self.last_frame is None else
            f'{now - self.last_frame:.1f}',
            'rate_hz': f'{rate:.2f}',
            'latency_ms_p50': 'n/a' if p50 is None else f'{p50:.1f}',
            'latency_ms_max': f'{latencies[-1]:.1f}' if latencies else 'n/a',
            'stamp_age_ms_p50': f'{ages[len(ages) // 2]:.1f}' if ages else 'n/a',
        }
        return problems, values


def _one_line(text: str) -> str:
    """'invalid tracker parameters:\n  a: ...\n  b: ...' -> 'invalid tracker parameters: a: ...;
    b: ...' (a log line, a diagnostic message, a SetParametersResult reason)."""
    head, *rest = [line.strip() for line in str(text).strip().splitlines()] or ['']
    return f"{head} {'; '.join(rest)}" if rest else head


class TrackerNode(LifecycleNode):

    def __init__(self, command_line: list[str] | None = None, **kwargs):
        """`command_line`: the process's arguments (main passes them), to see every `-p`
        override as given (see _command_line_overrides)."""
        # Only the schema's parameters exist: an unknown name is an error, never a parameter
        # that nobody reads.
        super().__init__('tracker_node', allow_undeclared_parameters=False,
                         automatically_declare_parameters_from_overrides=False, **kwargs)
        # Overrides that could not be declared (unknown name, wrong type, out of range):
        # configure names them with every other problem, until a valid value replaces them.
        self._bad_overrides: dict = {}
        given = {p.name for p in kwargs.get('parameter_overrides') or []}
        self._declare_parameters({
            **self._parameter_overrides,     # params files and -p; rclpy has no getter
            **{name: p for name, p in self._command_line_overrides(command_line).items()
               if name not in given}})       # the constructor's overrides win, as in rclpy
        self.add_pre_set_parameters_callback(self._as_schema_types)
        self.add_on_set_parameters_callback(self._check_parameter_change)
        self.add_post_set_parameters_callback(self._apply_parameter_change)
        self._params: dict = {}
        self._pipeline: TrackingPipeline | None = None
        self._subs: list = []
        self._pubs: dict = {}
        self._reset_srv = None
        self._counters = collections.Counter()
        self._stream = StreamWindow()
        self._last_stamp: Time | None = None
        # The last tracked frame's (message, rgb, result): a repeated stamp is answered with it.
        self._last_answer: tuple | None = None
        # Last publication sequence number taken, per publisher gid (drop counting).
        self._last_publication_seq: collections.OrderedDict = collections.OrderedDict()
        self._camera_info_size: tuple[int, int] | None = None
        self._image_size: tuple[int, int] | None = None
        # Why the last transition failed (None: it did not). /diagnostics is published in every
        # state, so a node that cannot configure still says why.
        self._failure: str | None = None
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics',
                                                      QoSProfile(depth=10))
        self._diagnostics_timer = self.create_timer(1.0, self._publish_diagnostics)
        # Set when autostart could not configure and activate: main() then ends the process.
        self.autostart_failure: str | None = None
        if self.get_parameter('autostart').value:
            if (self.trigger_configure() != TransitionCallbackReturn.SUCCESS
                    or self.trigger_activate() != TransitionCallbackReturn.SUCCESS):
                self.autostart_failure = self._failure or 'autostart failed'
        elif self._bad_overrides:
            # Say it now, not at the first configure: nothing will configure with these.
            try:
                self._validated_parameters()
            except parameters.ParameterError as error:
                self._fail('start', error)

    def _command_line_overrides(self, command_line: list[str] | None) -> dict:
        """The command line's `-p` overrides for this node, typed by rcl. rcl merges them into
        the params file's values, and where the types differ (-p detection_threshold:=abc over
        the file's 0.4) rclpy receives the file's value: the override is lost without a word.
        A node that parses only the -p rules (no global arguments) recovers them."""
        rules = ros_parameter_rules(command_line)
        if not rules:
            return {}
        probe = rclpy.create_node(self.get_name(), namespace=self.get_namespace(),
                                  context=self.context, cli_args=['--ros-args', *rules],
                                  use_global_arguments=False, enable_rosout=False,
                                  start_parameter_services=False)
        try:
            return dict(probe._parameter_overrides)
        finally:
            probe.destroy_node()

    def _declare_parameters(self, overrides: dict) -> None:
        """Declare every schema parameter with its descriptor and its override, else default.
        rclpy infers a parameter's type from the value declared, so an override is declared
        only if it has the schema's type (after as_schema_type) and is in range."""
        for name, spec in SCHEMA.items():
            value = spec['default']
            if name in overrides:
                override = as_schema_type(name, overrides[name].value)
                if Parameter.Type.from_parameter_value(override) == ROS_TYPES[spec['type']]:
                    value = override
                else:
                    self._bad_overrides[name] = override
            try:
                self.declare_parameter(name, value, parameter_descriptor(name, spec),
                                       ignore_override=True)
            except InvalidParameterValueException:      # outside the descriptor's range
                self._bad_overrides[name] = value
                self.declare_parameter(name, spec['default'], parameter_descriptor(name, spec),
                                       ignore_override=True)
        for name, override in overrides.items():
            if not self.has_parameter(name):    # neither ours nor rclpy's own (use_sim_time)
                self._bad_overrides[name] = override.value

    def _validated_parameters(self) -> dict:
        """The declared values with the overrides that could not be declared (so their problem
        is named with the others); raises parameters.ParameterError."""
        values = {name: self.get_parameter(name).value for name in SCHEMA}
        return parameters.validate({**values, **self._bad_overrides})

    # -- parameter changes at runtime -----------------------------------------------------
    def _as_schema_types(self, changed: list[Parameter]) -> list[Parameter]:
        """`ros2 param set ... detection_threshold 1` sends an integer: take it as 1.0 before
        rclpy checks it against the declared type."""
        return [Parameter(p.name, value=as_schema_type(p.name, p.value))
                if p.name in SCHEMA else p for p in changed]

    def _check_parameter_change(self, changed: list[Parameter]) -> SetParametersResult:
        """Accept a change only if the whole resulting parameter set is valid (as configure
        checks it) and the node can use it in its current state."""
        mine = {p.name: p.value for p in changed if p.name in SCHEMA}
        reload = sorted(name for name in mine.keys() & CONFIGURE_PARAMETERS
                        if mine[name] != self.get_parameter(name).value)
        if reload and self._configured:
            return SetParametersResult(successful=False, reason=(
                f"{', '.join(reload)}: read only by configure (the model is loaded with it); "
                'deactivate and clean up the node, set it, then configure and activate'))
        values = {**{name: self.get_parameter(name).value for name in SCHEMA}, **mine}
        try:
            parameters.tracker_config(parameters.validate(values))  # rules between thresholds too
        except ValueError as error:                         # ParameterError is one
            reason = _one_line(str(error))
            if not isinstance(error, parameters.ParameterError):
                reason = f"{', '.join(sorted(mine))}: {reason}"
            return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_parameter_change(self, changed: list[Parameter]) -> None:
        """Give accepted values to what reads them: the running tracker takes new thresholds
        at once (tracks and memory kept), the next frame the per-frame ones; configure reads
        the rest."""
        mine = {p.name: p.value for p in changed if p.name in SCHEMA}
        for name in mine:
            self._bad_overrides.pop(name, None)       # a valid value replaced it
        if not mine:
            return
        if not self._configured:
            self.get_logger().info('parameters set, used at configure: ' + ', '.join(
                f'{name} {value}' for name, value in mine.items()))
            return
        was = {name: self._params[name] for name in mine}
        self._params.update(mine)
        if self._pipeline is not None and mine.keys() & TRACKER_CONFIG_FIELDS.keys():
            self._pipeline.set_tracker_config(
                parameters.tracker_config(self._params, self._pipeline.tracker_config))
        self.get_logger().info('parameters changed: ' + ', '.join(
            f'{name} {was[name]} -> {value}' for name, value in mine.items()))

    # -- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            params = self._validated_parameters()
            pipeline = TrackingPipeline.from_params(params)
        except Exception as error:  # noqa: BLE001 - rclpy would swallow it without a word
            return self._fail('configure', error)
        self._params, self._pipeline, self._failure = params, pipeline, None
        self._pubs = {
            'tracks': self.create_lifecycle_publisher(TrackedObjectArray, 'tracks', 10),
            'belief': self.create_lifecycle_publisher(BeliefArray, 'belief', 10),
            'belief_grid': self.create_lifecycle_publisher(OccupancyGrid, 'belief_grid', 10),
            'markers': self.create_lifecycle_publisher(MarkerArray, 'markers', 10),
            'debug_image': self.create_lifecycle_publisher(Image, 'debug_image',
                                                           qos_profile_sensor_data),
        }
        if Detection2DArray is not None:
            self._pubs['detections'] = self.create_lifecycle_publisher(
                Detection2DArray, 'detections', 10)
            self.get_logger().info('vision_msgs output on: vision_msgs/Detection2DArray on '
                                   f"{self.resolve_topic_name('detections')}")
        else:
            self.get_logger().info(f'vision_msgs output off: {VISION_MSGS_MISSING}; '
                                   'tracks carries the same objects')
        # Depth 1: the newest image wins; the ones it replaced are counted as dropped
        # (publication sequence numbers, see _count_dropped).
        if self._params['image_transport'] == 'compressed':
            # image_transport's convention: the compressed stream of `image` is
            # `<image>/compressed`, after remapping (image:=/camera/image_raw ->
            # /camera/image_raw/compressed), so the base name is resolved first.
            self._subs = [self.create_subscription(
                CompressedImage, self._image_topic(), self._on_compressed_image, IMAGE_QOS)]
        else:
            self._subs = [self.create_subscription(Image, 'image', self._on_image, IMAGE_QOS)]
        if self._params['use_camera_info']:
            self._subs.append(self.create_subscription(
                CameraInfo, 'camera_info', self._on_camera_info, qos_profile_sensor_data))
        self._reset_srv = self.create_service(Trigger, '~/reset', self._on_reset)
        self.get_logger().info(f'configured: {self._pipeline.describe()}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        if self._pipeline is None:        # freed by deactivate
            try:
                self._pipeline = TrackingPipeline.from_params(self._params)
            except Exception as error:  # noqa: BLE001 - see on_configure
                return self._fail('activate', error)
        self._failure = None
        self._stream = StreamWindow()     # judged from this activation on: waiting for images
        self.get_logger().info(f'active: tracking images on {self._image_topic()}')
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._pipeline = None
        self._last_stamp = None
        self._last_answer = None
        # Frames that arrive while inactive are ignored, not dropped: restart the count.
        self._last_publication_seq.clear()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _fail(self, transition: str, error: Exception) -> TransitionCallbackReturn:
        """Log in one line why `transition` failed and keep it for /diagnostics (and for main():
        under autostart the process exits). An unexpected error adds its traceback."""
        self._failure = f'{transition} failed: {_one_line(str(error))}'
        trace = '' if isinstance(error, EXPECTED_ERRORS) else \
            f'\n{traceback.format_exc().rstrip()}'
        self.get_logger().error(self._failure + trace)
        return TransitionCallbackReturn.FAILURE

    def _release(self):
        if self._reset_srv is not None:
            self.destroy_service(self._reset_srv)
        for sub in self._subs:
            self.destroy_subscription(sub)
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._reset_srv = self._pipeline = None
        self._subs, self._pubs = [], {}

    def _image_topic(self) -> str:
        """The resolved (namespaced, remapped) topic images arrive on, per image_transport."""
        base = self.resolve_topic_name('image')
        return f'{base}/compressed' if self._params.get('image_transport') == 'compressed' \
            else base

    @property
    def _configured(self) -> bool:
        """inactive or active: configure created the publishers, cleanup removes them."""
        return bool(self._pubs)

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
        self._last_answer = None
        self._counters['resets'] += 1
        response.success, response.message = True, 'memory and tracks cleared'
        self.get_logger().info('reset by service call')
        return response

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info_size = (msg.width, msg.height)

    def _on_image(self, msg: Image, info: dict) -> None:
        # `info` (rclpy's MessageInfo) has no default on purpose: rclpy passes it (sequence
        # numbers) only to a callback that cannot be called with the message alone.
        self._on_frame(msg, info, _decode_raw)

    def _on_compressed_image(self, msg: CompressedImage, info: dict) -> None:
        self._on_frame(msg, info, _decode_compressed)

    def _on_frame(self, msg, info: dict, decode) -> None:
        """One frame, raw or compressed: they differ only in `decode` (message -> RGB)."""
        if not self._active:
            return
        started = time.perf_counter()
        arrived = self.get_clock().now()
        self._counters['frames_received'] += 1
        self._stream.frame_arrived(time.monotonic(), self._params['diagnostics.stale_after_s'])
        try:
            self._count_dropped(info)
            stamp = self._track(msg, decode)
            if stamp is None:
                return
            age = (arrived - stamp).nanoseconds / 1e6
        except Exception as error:  # noqa: BLE001 - one frame must never end the node
            if not self.context.ok():
                raise       # shut down while publishing: main() treats it as a normal stop
            self._reject(msg, error)
            return
        self._counters['frames_processed'] += 1
        self._stream.tracked.append((time.monotonic(), (time.perf_counter() - started) * 1000.0,
                                     age if 0.0 <= age < MAX_STAMP_AGE_MS else None))

    def _reject(self, msg, error: Exception) -> None:
        """Count and log (rate-limited, one call site for all reasons) a frame we cannot track:
        a malformed image, a stamp rclpy cannot represent, a failure anywhere downstream."""
        self._counters['frames_rejected'] += 1
        self._stream.rejected.append(time.monotonic())
        # A malformed image explains itself; anything else needs its traceback to be fixed.
        trace = '' if isinstance(error, ImageConversionError) else \
            f'\n{traceback.format_exc().rstrip()}'
        self.get_logger().error(
            f'dropping image (frame_id "{msg.header.frame_id}"): {error} '
            f'[{self._counters["frames_rejected"]} rejected so far]{trace}',
            throttle_duration_sec=self._params['error_log_period_s'])

    def _track(self, msg, decode) -> Time | None:
        """Track one frame (Image or CompressedImage, turned into RGB by `decode`) and publish
        the result; its stamp, or None if it was skipped as a duplicate."""
        rgb = decode(msg)
        stamp = Time.from_msg(msg.header.stamp)     # raises for a negative stamp
        if stamp.nanoseconds and stamp == self._last_stamp:
            # The frame we just processed, again (a resend, a doubled driver message): tracking
            # it twice would age every track by a frame that did not happen, so it gets the same
            # answer again (a client that resends because our first answer never reached it,
            # e.g. published before its subscription was matched, is answered). Unstamped (0)
            # images are never treated as duplicates.
            self._counters['frames_duplicate'] += 1
            if self._last_answer is not None:
                self._publish(*self._last_answer, repeat=True)
            return None
        if self._last_stamp is not None and stamp < self._last_stamp:
            # A bag looped or a sensor restarted: the memory describes another moment.
            self._pipeline.reset()
            self._counters['resets'] += 1
            self.get_logger().warning('time jumped backwards: memory and tracks reset')
        self._last_stamp = stamp
        self._image_size = (rgb.shape[1], rgb.shape[0])
        result = self._pipeline.process(rgb)
        self._publish(msg, rgb, result)
        self._last_answer = (msg, rgb, result)
        return stamp

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

    def _publish(self, msg, rgb: np.ndarray, result, repeat: bool = False) -> None:
        """The frame's outputs; `repeat`: the answer to a repeated stamp, only the stamped
        outputs (markers carry no stamp to tell the repeat from the next frame's; the debug
        image is display only)."""
        header, p = msg.header, self._params
        self._pubs['tracks'].publish(tracks_to_msg(header, result.tracks))
        if 'detections' in self._pubs:
            self._pubs['detections'].publish(tracks_to_detections(header, result.tracks))
        self._pubs['belief'].publish(beliefs_to_msg(header, result.beliefs,
                                                    (rgb.shape[1], rgb.shape[0]),
                                                    p['belief_topk']))
        # Display-only topics are built only for someone who watches them (per-frame cost).
        grid = self._pipeline.grid
        if self._pubs['belief_grid'].get_subscription_count() > 0:
            self._pubs['belief_grid'].publish(belief_occupancy_grid(
                header, result.beliefs, (grid.height, grid.width), p['display_scale']))
        if repeat:
            return
        if self._pubs['markers'].get_subscription_count() > 0:
            self._pubs['markers'].publish(track_markers(header, result.tracks,
                                                        p['display_scale']))
        debug_pub = self._pubs['debug_image']
        if p['publish_debug_image'] and debug_pub.get_subscription_count() > 0:
            debug_pub.publish(rgb_to_image_msg(
                header, draw_tracks(rgb, result.tracks, result.beliefs)))

    def _publish_diagnostics(self) -> None:
        if self._failure is not None:
            status = self._failure_status()
        elif self._active:
            status = self._tracking_status()
        else:
            return      # unconfigured or inactive, as asked: nothing to report
        diag = DiagnosticArray()
        diag.header.stamp = self.get_clock().now().to_msg()
        diag.status = [status]
        self._diagnostics_pub.publish(diag)

    def _failure_status(self) -> DiagnosticStatus:
        """ERROR with the reason a transition failed, until one succeeds."""
        return DiagnosticStatus(
            level=DiagnosticStatus.ERROR, name=f'{self.get_fully_qualified_name()}: tracking',
            message=self._failure)

    def _tracking_status(self) -> DiagnosticStatus:
        status = DiagnosticStatus()
        status.name = f'{self.get_fully_qualified_name()}: tracking'
        status.hardware_id = self._pipeline.device_name if self._pipeline else ''
        problems, window_values = self._stream.judge(time.monotonic(), self._params,
                                                     self._image_topic())
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
            **window_values,
            'backend': self._pipeline.backend_name if self._pipeline else 'released',
            'device': self._pipeline.device_name if self._pipeline else 'released',
        }
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        return status


def _decode_raw(msg: Image) -> np.ndarray:
    return image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                        msg.is_bigendian)


def _decode_compressed(msg: CompressedImage) -> np.ndarray:
    return compressed_to_rgb(msg.format, msg.data)


def main(args=None):
    rclpy.init(args=args)
    node = TrackerNode(command_line=sys.argv if args is None else args)
    if node.autostart_failure:
        # A process that stays up unconfigured publishes nothing and looks alive to respawn
        # and supervisors: end it, non-zero (the reason is logged above).
        node.get_logger().fatal('autostart failed: exiting with status 1')
        node.destroy_node()
        rclpy.try_shutdown()
        return 1
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
