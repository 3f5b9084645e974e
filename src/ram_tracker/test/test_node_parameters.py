"""The installed tracker_node's parameters and failed starts, over real DDS.

A failed configure never leaves a silent process behind: under autostart the process exits
non-zero (respawn and supervisors see it); without autostart the node stays unconfigured and
says why on /diagnostics. Parameters are declared from the schema (type, range, description:
describe_parameters shows them), an integer on the command line is taken as a number, and a
runtime change is validated like configure validates, then applied to the running tracker.
Every test talks to the node process through real services and topics of a second rclpy node.
"""
import hashlib
import subprocess
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip('rclpy')
from ament_index_python.packages import get_package_prefix, get_package_share_directory  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.msg import ParameterType  # noqa: E402
from rcl_interfaces.srv import (DescribeParameters, GetParameters, SetParameters,  # noqa: E402
                                SetParametersAtomically)
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from ram_msgs.msg import TrackedObjectArray  # noqa: E402
from test_node_live import (SMALL_CPU, _hot_weights, _image, _Listener,  # noqa: E402,F401
                            _shut_down, _start, _stop, ros_env)

NODE = '/tracker_node'
EXIT_TIMEOUT_S = 90     # process start (imports) on two busy cores, then the failed configure


def _installed_command(values: dict) -> list[str]:
    """The installed executable with the installed params file and `values` as -p overrides,
    given as the command line spells them."""
    executable = Path(get_package_prefix('ram_tracker')) / 'lib' / 'ram_tracker' / 'tracker_node'
    params_file = Path(get_package_share_directory('ram_tracker')) / 'config' / 'tracker.yaml'
    overrides = [arg for k, v in values.items() for arg in ('-p', f'{k}:={v}')]
    return [str(executable), '--ros-args', '--params-file', str(params_file), *overrides]


def _node_command(**params) -> list[str]:
    """The installed node, small, on one CPU thread, eager torch (no ONNX export)."""
    return _installed_command({**SMALL_CPU, 'backend': 'torch', **params})


def _run_until_exit(env, **params) -> tuple[int, str]:
    """Start the node and wait for it to end by itself: (exit status, stderr)."""
    proc = subprocess.Popen(_node_command(**params), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _stop(proc)
        _, err = proc.communicate()
        pytest.fail(f'tracker_node still running {EXIT_TIMEOUT_S} s after its start failed '
                    f'(a process that publishes nothing); stderr:\n{err}')
    return proc.returncode, err


def _call(node, srv_type, name: str, request, timeout: float = 30.0, resend_s: float = 0.0):
    """One service call. `resend_s` > 0 (read-only queries only) sends the request again when
    no answer came within that time: with Fast DDS a server can be discovered (wait_for_service
    returns) before it has matched the client's response reader, and its first answer is then
    lost (CI: get_state unanswered for 30 s while the node was up)."""
    client = node.create_client(srv_type, name)
    try:
        assert client.wait_for_service(timeout_sec=timeout), f'no service {name}'
        deadline = time.monotonic() + timeout
        while True:
            future = client.call_async(request)
            wait = max(0.0, deadline - time.monotonic())
            rclpy.spin_until_future_complete(node, future, timeout_sec=min(resend_s, wait)
                                             if resend_s > 0 else wait)
            if future.done() or not resend_s or time.monotonic() >= deadline:
                break
            client.remove_pending_request(future)
        assert future.result() is not None, f'{name}: no answer'
        return future.result()
    finally:
        node.destroy_client(client)


def _set(node, **values):
    """SetParameters, one result per parameter (rclpy sets them one after the other)."""
    request = SetParameters.Request(
        parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
    return _call(node, SetParameters, f'{NODE}/set_parameters', request).results


def _set_atomically(node, **values):
    request = SetParametersAtomically.Request(
        parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
    return _call(node, SetParametersAtomically, f'{NODE}/set_parameters_atomically',
                 request).result


def _get(node, *names):
    response = _call(node, GetParameters, f'{NODE}/get_parameters',
                     GetParameters.Request(names=list(names)), resend_s=5.0)
    return dict(zip(names, response.values))


def _state(node, timeout: float = 30.0) -> str:
    return _call(node, GetState, f'{NODE}/get_state', GetState.Request(), timeout=timeout,
                 resend_s=5.0).current_state.label


# -- a start that fails exits, under autostart --------------------------------------------------
def test_autostart_with_missing_weights_exits_non_zero_naming_the_file(ros_env, tmp_path):
    missing = tmp_path / 'no_such_model.safetensors'
    status, stderr = _run_until_exit(ros_env, model_path=str(missing))
    assert status != 0, stderr
    assert str(missing) in stderr and 'not found' in stderr, stderr


def test_autostart_with_corrupt_weights_exits_non_zero_naming_the_file(ros_env, tmp_path):
    garbage = tmp_path / 'garbage.safetensors'
    garbage.write_bytes(b'\x13\x37 not a safetensors file ' * 200)
    status, stderr = _run_until_exit(ros_env, model_path=str(garbage))
    assert status != 0, stderr
    assert str(garbage) in stderr and 'not a readable safetensors' in stderr, stderr


@pytest.mark.parametrize('override, named', [
    ({'detection_treshold': 0.3}, "'detection_treshold' was unexpected"),    # misspelled name
    ({'detection_threshold': 'abc'}, "detection_threshold: 'abc' is not of type 'number'"),
    ({'detection_threshold': 0.6}, 'new_track_threshold'),     # above new_track_threshold 0.5
    ({'device': 'tpu'}, "device: 'tpu' does not match"),
    ({'backend': 'magic'}, "backend: 'magic' is not one of"),
])
def test_autostart_with_a_bad_parameter_exits_non_zero_with_one_clear_error(ros_env, override,
                                                                            named):
    """A misspelled name would otherwise be ignored (the default used in silence), a string for
    a number crashed with rclpy's InvalidParameterTypeException traceback, and bad values left
    a process that published nothing."""
    status, stderr = _run_until_exit(ros_env, **override)
    assert status != 0, stderr
    assert named in stderr, stderr
    assert 'Traceback' not in stderr, stderr


def test_autostart_with_an_empty_model_path_exits_asking_for_allow_untrained(ros_env):
    """An empty model_path tracked with an untrained model after one INFO line: detections
    that mean nothing, unnoticed. Now it takes allow_untrained:=true, said in one line."""
    status, stderr = _run_until_exit(ros_env, model_path="''")
    assert status != 0, stderr
    assert 'model_path is empty' in stderr and 'allow_untrained:=true' in stderr, stderr
    assert 'Traceback' not in stderr, stderr


# -- the installed parameters run the shipped model --------------------------------------------
def test_installed_parameters_configure_the_shipped_model_at_its_trained_size(ros_env,
                                                                              tmp_path):
    """Nothing but the installed params file (and a CPU for this machine): the node loads the
    World 2 model installed in share/ram_tracker/models, says which (file, sha256) when it
    configures, and runs it at the input size its weights record (640x192)."""
    share = Path(get_package_share_directory('ram_tracker'))
    shipped = share / 'models' / 'world2_ram.safetensors'
    assert shipped.is_file(), f'{shipped} missing: run colcon build'
    sha = hashlib.sha256(shipped.read_bytes()).hexdigest()
    log_path = tmp_path / 'node.log'
    node_proc, node_log = _start(_installed_command({'device': 'cpu', 'num_threads': 1,
                                                     'backend': 'torch'}), ros_env, log_path)
    rclpy.init()
    node = rclpy.create_node('test_model_client')
    try:
        deadline = time.monotonic() + 120
        # autostart configures before the node spins: get_state is answered after the model
        # loaded, however long that takes on a busy machine (up to the deadline)
        while (time.monotonic() < deadline
               and _state(node, timeout=max(5.0, deadline - time.monotonic())) != 'active'):
            assert node_proc.poll() is None, f'tracker_node ended:\n{log_path.read_text()}'
            time.sleep(0.5)
        node_log.flush()
        log_text = log_path.read_text()
        configured = [line for line in log_text.splitlines() if 'configured:' in line]
        assert configured, log_text
        assert 'world2_ram.safetensors' in configured[-1], configured[-1]
        assert f'sha256 {sha[:12]}' in configured[-1], configured[-1]
        assert 'input 640x192' in configured[-1] and 'untrained' not in configured[-1]
        values = _get(node, 'model_path', 'allow_untrained', 'input_width', 'input_height')
        assert values['model_path'].string_value == \
            'package://ram_tracker/models/world2_ram.safetensors'
        assert not values['allow_untrained'].bool_value
        assert (values['input_width'].integer_value, values['input_height'].integer_value) == \
            (0, 0)                                  # left to the weights
        assert node_proc.poll() is None
    finally:
        _shut_down(node, node_proc, node_log)


# -- a failed configure without autostart: unconfigured, alive, an ERROR diagnostic -------------
def test_failed_configure_without_autostart_stays_unconfigured_with_an_error_diagnostic(
        ros_env, tmp_path):
    missing = tmp_path / 'no_such_model.safetensors'
    node_proc, node_log = _start(_node_command(autostart='false', model_path=str(missing)),
                                 ros_env, tmp_path / 'node.log')
    rclpy.init()
    node = rclpy.create_node('test_lifecycle_client')
    errors: list[DiagnosticStatus] = []

    def on_diagnostics(msg):
        errors.extend(s for s in msg.status
                      if 'tracker_node' in s.name and s.level == DiagnosticStatus.ERROR)

    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    try:
        assert _state(node) == 'unconfigured'
        request = ChangeState.Request()
        request.transition.id = Transition.TRANSITION_CONFIGURE
        response = _call(node, ChangeState, f'{NODE}/change_state', request)
        assert not response.success
        assert _state(node) == 'unconfigured'
        deadline = time.monotonic() + 30
        while not errors and time.monotonic() < deadline:
            assert node_proc.poll() is None, (tmp_path / 'node.log').read_text()
            rclpy.spin_once(node, timeout_sec=0.2)
        assert errors, 'no ERROR diagnostic from tracker_node on /diagnostics'
        assert str(missing) in errors[-1].message and 'not found' in errors[-1].message, \
            errors[-1]
        assert node_proc.poll() is None, 'a node without autostart must stay up for its manager'
        assert _call(node, GetState, f'{NODE}/get_state',
                     GetState.Request()).current_state.id == State.PRIMARY_STATE_UNCONFIGURED
    finally:
        _shut_down(node, node_proc, node_log)


# -- parameters as ROS sees them ------------------------------------------------------------------
def test_parameters_are_described_from_the_schema_and_an_integer_is_taken_as_a_number(
        ros_env, tmp_path):
    """`detection_threshold:=1` is an integer to ROS and a number to the schema: the node runs
    with 1.0 (it crashed with InvalidParameterTypeException)."""
    log_path = tmp_path / 'node.log'
    node_proc, node_log = _start(_node_command(detection_threshold=1, new_track_threshold=1),
                                 ros_env, log_path)
    rclpy.init()
    node = rclpy.create_node('test_parameter_client')
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert node_proc.poll() is None, f'tracker_node ended:\n{log_path.read_text()}'
            if _state(node) == 'active':
                break
            time.sleep(0.5)
        assert _state(node) == 'active', log_path.read_text()
        values = _get(node, 'detection_threshold', 'new_track_threshold')
        for value in values.values():
            assert (value.type, value.double_value) == (ParameterType.PARAMETER_DOUBLE, 1.0)

        names = ['detection_threshold', 'input_width', 'backend', 'display_scale']
        described = {d.name: d for d in _call(
            node, DescribeParameters, f'{NODE}/describe_parameters',
            DescribeParameters.Request(names=names)).descriptors}
        threshold = described['detection_threshold']
        assert threshold.type == ParameterType.PARAMETER_DOUBLE
        assert (threshold.floating_point_range[0].from_value,
                threshold.floating_point_range[0].to_value) == (0.0, 1.0)
        assert 'Minimum heatmap score' in threshold.description
        assert '> 0' in threshold.additional_constraints      # exclusive: a range cannot say it
        width = described['input_width']
        assert width.type == ParameterType.PARAMETER_INTEGER
        assert (width.integer_range[0].from_value, width.integer_range[0].to_value,
                width.integer_range[0].step) == (0, 4096, 32)     # 0: the weights' size
        assert described['backend'].type == ParameterType.PARAMETER_STRING
        assert 'onnxruntime' in described['backend'].additional_constraints
        scale = described['display_scale']          # no maximum in the schema
        assert scale.floating_point_range[0].to_value == float('inf')
        assert node_proc.poll() is None
    finally:
        _shut_down(node, node_proc, node_log)


def test_runtime_parameter_changes_are_validated_and_thresholds_apply_at_once(ros_env, tmp_path):
    """set_parameters on the running node: an inconsistent pair, a wrong type, a value out of
    range, an unknown name and a parameter that needs a reload are refused with a reason; valid
    thresholds are taken by the running tracker (no restart): a frame that started tracks
    before starts none once detection_threshold is 0.99."""
    log_path = tmp_path / 'node.log'
    node_proc, node_log = _start(_node_command(model_path=_hot_weights(tmp_path)), ros_env,
                                 log_path)
    rclpy.init()
    side = _Listener()
    counts: dict[int, int] = {}
    side.node.create_subscription(
        TrackedObjectArray, 'tracks', lambda m: counts.__setitem__(m.header.stamp.sec,
                                                                   len(m.tracks)),
        QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    node = side.node
    try:
        assert side.spin_until(lambda: side.pub.get_subscription_count() > 0, node_proc,
                               log_path, timeout=120), 'no tracker_node subscribed to image'
        assert side.spin_until(lambda: 1 in counts, node_proc, log_path, timeout=60,
                               resend=_image(1, 'good/before')), log_path.read_text()
        assert counts[1] > 0, 'the hot model should start tracks at the default thresholds'

        # Refused, each with a reason that names the problem; nothing changes.
        result = _set_atomically(node, detection_threshold=0.99, new_track_threshold=0.1)
        assert not result.successful
        assert 'new_track_threshold' in result.reason and 'detection_threshold' in result.reason
        wrong_type, out_of_range, unknown, reload = _set(
            node, detection_threshold='abc', hidden_score_decay=1.5, detection_treshold=0.3,
            model_path='/elsewhere/model.safetensors')
        assert not wrong_type.successful and 'type' in wrong_type.reason
        assert not out_of_range.successful and 'hidden_score_decay' in out_of_range.reason
        # rclpy's reason should name it, but lists [] (its name generator is consumed by any()).
        assert not unknown.successful and 'undeclared parameter' in unknown.reason
        assert not reload.successful and 'model_path' in reload.reason
        assert 'configure' in reload.reason, reload.reason
        values = _get(node, 'detection_threshold', 'new_track_threshold', 'hidden_score_decay')
        assert [v.double_value for v in values.values()] == [0.4, 0.5, 1.0]

        # Accepted (an integer for a number is that number) and applied to the running tracker.
        result = _set_atomically(node, detection_threshold=0.99, new_track_threshold=1)
        assert result.successful, result.reason
        values = _get(node, 'detection_threshold', 'new_track_threshold')
        assert [(v.type, v.double_value) for v in values.values()] == \
            [(ParameterType.PARAMETER_DOUBLE, 0.99), (ParameterType.PARAMETER_DOUBLE, 1.0)]
        # Forget the tracks the first frame started; the thresholds survive a reset.
        assert _call(node, Trigger, f'{NODE}/reset', Trigger.Request()).success
        assert side.spin_until(lambda: 2 in counts, node_proc, log_path, timeout=60,
                               resend=_image(2, 'good/after')), log_path.read_text()
        assert counts[2] == 0, f'{counts[2]} tracks: the new thresholds were not applied'
        node_log.flush()
        assert 'detection_threshold 0.4 -> 0.99' in log_path.read_text()
        assert node_proc.poll() is None
    finally:
        _shut_down(side.node, node_proc, node_log)


def test_every_schema_parameter_says_what_a_runtime_change_does():
    """Applied to the running tracker, read per frame, refused until cleanup, or read at
    start-up: each schema parameter in exactly one group (a new one must choose)."""
    from ram_tracker import parameters
    from ram_tracker.ros.tracker_node import (CONFIGURE_PARAMETERS, PER_FRAME_PARAMETERS,
                                              STARTUP_PARAMETERS, TRACKER_CONFIG_FIELDS)
    groups = [set(TRACKER_CONFIG_FIELDS), PER_FRAME_PARAMETERS, CONFIGURE_PARAMETERS,
              STARTUP_PARAMETERS]
    names = [name for group in groups for name in group]
    assert sorted(names) == sorted(parameters.load_schema()['properties'])
