"""The layout's rule: ram_tracker's core imports no ROS; only ram_tracker/ros/ does.

The core (model, walk, tracker, pipeline, backends, ram-track) must run on a machine without
ROS 2. Every import statement of the installed package's modules is read (ast, so imports inside
functions count too) and any of rclpy or a ROS interface package outside ros/ is named with its
file and line. ament_index_python is allowed: a file lookup with a fallback when it is missing
(pipeline.py resolves package:// paths with it).
"""
import ast
import importlib.util
from pathlib import Path

# ROS client libraries and tools a core module might reach for; interface packages are found by
# name (*_msgs, *_srvs, *_interfaces) or by what they hold (a msg/, srv/ or action/ folder).
ROS_MODULES = {'rclpy', 'rcl', 'rmw', 'rosidl_runtime_py', 'rosidl_parser', 'launch', 'launch_ros',
               'rosbag2_py', 'message_filters', 'tf2_ros', 'cv_bridge', 'image_transport'}
INTERFACE_SUFFIXES = ('_msgs', '_srvs', '_interfaces', '_actions')


def _package_dir() -> Path:
    """The ram_tracker package Python imports (the installed one, as the node runs it)."""
    spec = importlib.util.find_spec('ram_tracker')
    assert spec is not None and spec.submodule_search_locations, 'ram_tracker is not importable'
    return Path(list(spec.submodule_search_locations)[0])


def _is_interface_package(name: str) -> bool:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    return any((Path(folder) / kind).is_dir() for folder in spec.submodule_search_locations
               for kind in ('msg', 'srv', 'action'))


def is_ros_module(module: str) -> bool:
    top = module.split('.')[0]
    return (top in ROS_MODULES or top.endswith(INTERFACE_SUFFIXES)
            or (top != 'ram_tracker' and _is_interface_package(top)))


def ros_imports(path: Path) -> list[str]:
    """'file:line imports name' for each ROS import in the Python file at `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [f'{path}:{node.lineno} imports {name}' for name in names if is_ros_module(name)]
    return found


def test_the_rule_recognises_ros_imports(tmp_path):
    """The checker itself: what it must catch and what it must let through."""
    probe = tmp_path / 'probe.py'
    probe.write_text('import numpy\nfrom ram_tracker import walk\n'
                     'def f():\n    from sensor_msgs.msg import Image\n    import rclpy.node\n'
                     'from ram_msgs.msg import TrackedObject\n')
    assert sorted(line.split(' imports ')[1] for line in ros_imports(probe)) == \
        ['ram_msgs.msg', 'rclpy.node', 'sensor_msgs.msg']


def test_core_modules_import_no_ros():
    package = _package_dir()
    core = [path for path in sorted(package.rglob('*.py'))
            if 'ros' not in path.relative_to(package).parts[:1]]
    assert len(core) > 10 and (package / 'pipeline.py') in core, f'no core modules in {package}'
    violations = [line for path in core for line in ros_imports(path)]
    assert not violations, ('ROS imported outside ram_tracker/ros/ (move the module into ros/ '
                            'or the import out of the core):\n' + '\n'.join(violations))

