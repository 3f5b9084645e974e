"""The launch file: its RViz config follows the launch arguments, and rviz:=true without RViz
fails before anything starts.

The RViz config generator runs everywhere. The other tests need the real upstream `launch_ros`
(and `ros2 launch` for the process test): a full ROS 2 install has them; the PyPI wheels do not,
so there they are skipped with the reason.
"""
import importlib.util
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from ram_tracker.ros.rviz_config import write_rviz_config
from ram_training.ros_env import isolated_ros_env

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / 'launch' / 'tracker.launch.py'
RVIZ_TEMPLATE = ROOT / 'config' / 'ram_tracker.rviz'


def _needs_launch_ros():
    if importlib.util.find_spec('launch_ros') is None:
        pytest.skip('launch_ros is not installed here (no PyPI wheel); the launch file is '
                    'exercised on machines with a full ROS 2 install')


def _launch_module():
    _needs_launch_ros()
    spec = importlib.util.spec_from_file_location('tracker_launch', LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _displays(config: dict) -> dict:
    """Display name -> (class, topic, update topic or None)."""
    return {d['Name']: (d['Class'], d['Topic']['Value'], d.get('Update Topic', {}).get('Value'))
            for d in config['Visualization Manager']['Displays']}


def _rviz2_installed() -> bool:
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    try:
        get_package_prefix('rviz2')
        return True
    except PackageNotFoundError:
        return False


def test_launch_file_and_rviz_config_are_installed():
    from ament_index_python.packages import get_package_share_directory
    share = Path(get_package_share_directory('ram_tracker'))
    assert (share / 'launch' / 'tracker.launch.py').is_file()
    for name in ('tracker.yaml', 'fastdds_shm.xml', 'ram_tracker.rviz'):
        assert (share / 'config' / name).is_file(), name


def test_shipped_rviz_config_shows_the_nodes_own_topic_names():
    """The template: the node's own (relative) names, which the launch file resolves."""
    config = yaml.safe_load(RVIZ_TEMPLATE.read_text())
    topics = {topic: cls for cls, topic, _ in _displays(config).values()}
    assert topics == {'image': 'rviz_default_plugins/Image',
                      'debug_image': 'rviz_default_plugins/Image',
                      'belief_grid': 'rviz_default_plugins/Map',
                      'markers': 'rviz_default_plugins/MarkerArray'}


def test_generated_rviz_config_follows_namespace_image_remap_and_fixed_frame(tmp_path):
    path = write_rviz_config(RVIZ_TEMPLATE, namespace='/front',
                             remaps={'image': 'camera/image_raw'}, fixed_frame='front_camera',
                             directory=tmp_path)
    config = yaml.safe_load(path.read_text())
    displays = _displays(config)
    # The tracker (node namespace /front) reads the remapped image as /front/camera/image_raw
    # (a relative remap target is resolved in the node's namespace) and publishes under /front.
    assert displays['Camera image'][1] == '/front/camera/image_raw'
    assert displays['RAM debug image (boxes, ids, beliefs)'][1] == '/front/debug_image'
    assert displays['Belief of occluded tracks'][1:] == ('/front/belief_grid',
                                                         '/front/belief_grid_updates')
    assert displays['Tracks'][1] == '/front/markers'
    assert config['Visualization Manager']['Global Options']['Fixed Frame'] == 'front_camera'
    # Everything else is the shipped config's.
    template = yaml.safe_load(RVIZ_TEMPLATE.read_text())
    assert config['Visualization Manager']['Views'] == template['Visualization Manager']['Views']
    assert [d['Class'] for d in config['Visualization Manager']['Displays']] == \
        [d['Class'] for d in template['Visualization Manager']['Displays']]


def test_generated_rviz_config_keeps_an_absolute_image_topic(tmp_path):
    path = write_rviz_config(RVIZ_TEMPLATE, namespace='/', remaps={'image': '/cam/image_raw'},
                             fixed_frame='camera', directory=tmp_path)
    displays = _displays(yaml.safe_load(path.read_text()))
    assert displays['Camera image'][1] == '/cam/image_raw'
    assert displays['Tracks'][1] == '/markers'


@pytest.mark.parametrize('kwargs, message', [
    ({'fixed_frame': ''}, 'fixed_frame'),
    ({'remaps': {'image': 'bad topic'}}, 'bad topic'),
    ({'namespace': '/bad ns'}, 'bad ns'),
])
def test_generator_names_bad_arguments(tmp_path, kwargs, message):
    arguments = {'namespace': '/', 'remaps': {'image': 'image'}, 'fixed_frame': 'camera',
                 **kwargs}
    with pytest.raises(ValueError, match=message):
        write_rviz_config(RVIZ_TEMPLATE, directory=tmp_path, **arguments)
    assert list(tmp_path.iterdir()) == []          # no half-written config left behind


def test_generator_names_a_missing_template(tmp_path):
    with pytest.raises(ValueError, match='no_such.rviz'):
        write_rviz_config(tmp_path / 'no_such.rviz', namespace='/', remaps={},
                          fixed_frame='camera', directory=tmp_path)


def test_launch_description_builds():
    module = _launch_module()
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    names = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert {'image', 'params_file', 'model', 'device', 'namespace', 'rviz',
            'fixed_frame'} <= names


def test_launch_gives_rviz_a_config_for_its_namespace_and_image():
    """The launch file's RViz config step with namespace:=front image:=camera/image_raw
    fixed_frame:=front_camera, included under PushRosNamespace('robot'): the config names the
    tracker's real topics."""
    module = _launch_module()
    from launch import LaunchContext
    context = LaunchContext()
    context.launch_configurations.update({
        'namespace': 'front', 'image': 'camera/image_raw', 'fixed_frame': 'front_camera',
        'ros_namespace': '/robot'})
    config_path = module.rviz_config_file(context)
    try:
        config = yaml.safe_load(config_path.read_text())
    finally:
        config_path.unlink()
    displays = _displays(config)
    assert displays['Camera image'][1] == '/robot/front/camera/image_raw'
    assert displays['RAM debug image (boxes, ids, beliefs)'][1] == '/robot/front/debug_image'
    assert displays['Tracks'][1] == '/robot/front/markers'
    assert config['Visualization Manager']['Global Options']['Fixed Frame'] == 'front_camera'


def _processes_with(marker: str) -> list[int]:
    """PIDs whose command line contains `marker`."""
    pids = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / 'cmdline').read_bytes().replace(b'\0', b' ').decode()
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(entry.name))
    return pids


def test_rviz_true_without_rviz2_starts_nothing(tmp_path):
    """`ros2 launch ... rviz:=true` where RViz is not installed: a non-zero exit with a message
    that says what to do, and no tracker_node left running (it used to start anyway and stay,
    orphaned, after launch had failed)."""
    _needs_launch_ros()
    if shutil.which('ros2') is None:
        pytest.skip('the ros2 command (ros2cli + ros2launch) is not installed here')
    if _rviz2_installed():
        pytest.skip('rviz2 is installed here: the missing-rviz2 path cannot be exercised')
    marker = f'launch_test_{uuid.uuid4().hex[:8]}'       # the node's namespace: finds its process
    env = isolated_ros_env()
    env['ROS_LOG_DIR'] = str(tmp_path / 'ros_log')
    result = subprocess.run(
        ['ros2', 'launch', 'ram_tracker', 'tracker.launch.py', 'rviz:=true',
         f'namespace:={marker}'],
        env=env, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    # The node used to start right after launch had already failed: give it time to show up.
    deadline = time.monotonic() + 5.0
    survivors = []
    while time.monotonic() < deadline and not survivors:
        survivors = _processes_with(f'__ns:=/{marker}')
        time.sleep(0.2)
    for pid in survivors:                                # leave nothing behind, then fail
        os.kill(pid, 9)
    assert not survivors, f'tracker_node left running after the failed launch:\n{output}'
    assert result.returncode != 0, output
    assert 'rviz2' in output and 'rviz:=false' in output, output
    assert 'process started' not in output, output
