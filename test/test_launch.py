"""The launch file builds its description with the real launch_ros API (skipped without it)."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / 'launch' / 'tracker.launch.py'


def test_launch_file_and_rviz_config_are_installed():
    from ament_index_python.packages import get_package_share_directory
    share = Path(get_package_share_directory('ram_tracker'))
    assert (share / 'launch' / 'tracker.launch.py').is_file()
    for name in ('tracker.yaml', 'fastdds_shm.xml', 'ram_tracker.rviz'):
        assert (share / 'config' / name).is_file(), name


def test_rviz_config_shows_image_debug_image_belief_grid_and_markers():
    yaml = pytest.importorskip('yaml')
    config = yaml.safe_load((ROOT / 'config' / 'ram_tracker.rviz').read_text())
    topics = {d['Topic']['Value']: d['Class'] for d in config['Visualization Manager']['Displays']}
    assert topics == {'image': 'rviz_default_plugins/Image',
                      'debug_image': 'rviz_default_plugins/Image',
                      'belief_grid': 'rviz_default_plugins/Map',
                      'markers': 'rviz_default_plugins/MarkerArray'}


def test_launch_description_builds():
    if importlib.util.find_spec('launch_ros') is None:
        pytest.skip('launch_ros is not installed here (no PyPI wheel); the launch file is '
                    'exercised on machines with a full ROS 2 install')
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    spec = importlib.util.spec_from_file_location('tracker_launch', LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    names = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert {'image', 'params_file', 'model', 'device', 'namespace', 'rviz'} <= names
