"""Start the RAM tracker node (and optionally RViz).

    ros2 launch ram_tracker tracker.launch.py image:=/camera/image_raw model:=/path/model.safetensors
    ros2 launch ram_tracker tracker.launch.py rviz:=true namespace:=front fixed_frame:=front_camera

With rviz:=true, RViz gets config/ram_tracker.rviz with its topics resolved for this node
(namespace, image remap) and fixed_frame set, written to a temporary file; if RViz is not
installed the launch fails before it starts anything.

Arguments left empty keep the value of the params file (config/tracker.yaml by default).
Without launch_ros (PyPI wheels), the same node and parameters start with:
    install/ram_tracker/lib/ram_tracker/tracker_node --ros-args \
        --params-file install/ram_tracker/share/ram_tracker/config/tracker.yaml -r image:=/camera/image_raw
"""
from pathlib import Path

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch.substitutions.substitution_failure import SubstitutionFailure
from launch_ros.actions import Node
from launch_ros.substitutions import ExecutableInPackage, FindPackageShare
from launch_ros.utilities import make_namespace_absolute, prefix_namespace

from ram_tracker.ros.rviz_config import TRACKER_NODE_NAME, write_rviz_config


def _tracker_namespace(context) -> str:
    """The tracker's absolute namespace, as launch_ros's Node computes it (a relative
    `namespace` goes under an including file's PushRosNamespace)."""
    return make_namespace_absolute(prefix_namespace(
        context.launch_configurations.get('ros_namespace'),
        LaunchConfiguration('namespace').perform(context)))


def rviz_config_file(context) -> Path:
    """config/ram_tracker.rviz with the tracker's resolved topics and `fixed_frame`, in a
    new temporary file."""
    template = Path(get_package_share_directory('ram_tracker')) / 'config' / 'ram_tracker.rviz'
    return write_rviz_config(
        template, namespace=_tracker_namespace(context),
        remaps={'image': LaunchConfiguration('image').perform(context)},
        fixed_frame=LaunchConfiguration('fixed_frame').perform(context))


def _rviz(context):
    if not IfCondition(LaunchConfiguration('rviz')).evaluate(context):
        return []
    # A Node whose executable is missing fails only when launch executes it, after the
    # processes before it have started (and they are then left running): check first.
    try:
        ExecutableInPackage(executable='rviz2', package='rviz2').perform(context)
    except (PackageNotFoundError, SubstitutionFailure) as error:
        raise RuntimeError(
            f'rviz:=true but RViz 2 cannot be started ({error}). Install it '
            '(sudo apt install ros-$ROS_DISTRO-rviz2) or launch with rviz:=false; nothing '
            'was started.') from None
    return [Node(package='rviz2', executable='rviz2', name='rviz2', output='log',
                 arguments=['-d', str(rviz_config_file(context))])]


def _tracker(context):
    overrides = {}
    for argument, parameter in (('model', 'model_path'), ('device', 'device'),
                                ('backend', 'backend')):
        value = LaunchConfiguration(argument).perform(context)
        if value:
            overrides[parameter] = value
    # rclpy declares use_sim_time itself (not a schema parameter); always given, default false.
    sim_time = LaunchConfiguration('use_sim_time').perform(context).strip().lower()
    if sim_time not in ('true', 'false', '1', '0'):
        raise ValueError(f"use_sim_time must be true or false, got '{sim_time}'")
    overrides['use_sim_time'] = sim_time in ('true', '1')
    return [Node(
        package='ram_tracker',
        executable='tracker_node',
        name=TRACKER_NODE_NAME,
        namespace=LaunchConfiguration('namespace'),
        parameters=[LaunchConfiguration('params_file'), overrides],
        remappings=[('image', LaunchConfiguration('image')),
                    ('camera_info', LaunchConfiguration('camera_info'))],
        output='screen',
        emulate_tty=True,
    )]


def _nodes(context):
    # Every check (RViz installed, argument values) runs before any process is returned to
    # launch: an exception after a process started leaves that process running.
    return _rviz(context) + _tracker(context)


def generate_launch_description():
    share = FindPackageShare('ram_tracker')
    return LaunchDescription([
        DeclareLaunchArgument('image', default_value='image',
                              description='Input sensor_msgs/Image topic'),
        DeclareLaunchArgument('camera_info', default_value='camera_info',
                              description='CameraInfo topic (used if use_camera_info is true)'),
        DeclareLaunchArgument('params_file',
                              default_value=PathJoinSubstitution([share, 'config', 'tracker.yaml']),
                              description='Node parameters (validated at configure time)'),
        DeclareLaunchArgument('model', default_value='',
                              description='Weights (.safetensors); empty: the params file value'),
        DeclareLaunchArgument('device', default_value='',
                              description='auto | cpu | cuda | cuda:N; empty: the params file value'),
        DeclareLaunchArgument('backend', default_value='',
                              description='auto | torch | onnxruntime | tensorrt; empty: the '
                                          'params file value'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='Use /clock (e.g. ros2 bag play --clock) as the node\'s '
                                          'time'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of the node and its topics'),
        DeclareLaunchArgument('rviz', default_value='false',
                              description='Open RViz (config/ram_tracker.rviz, its topics '
                                          'resolved for namespace and image)'),
        DeclareLaunchArgument('fixed_frame', default_value='camera',
                              description="RViz's fixed frame: the frame_id of the images "
                                          '(image_publisher and the demo bags: camera)'),
        DeclareLaunchArgument('localhost_only', default_value='true',
                              description='Keep DDS discovery on this machine'),
        DeclareLaunchArgument('shm_transport', default_value='true',
                              description='Fast DDS shared-memory profile (no dropped images)'),
        SetEnvironmentVariable('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST',
                               condition=IfCondition(LaunchConfiguration('localhost_only'))),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE',
                               PathJoinSubstitution([share, 'config', 'fastdds_shm.xml']),
                               condition=IfCondition(LaunchConfiguration('shm_transport'))),
        OpaqueFunction(function=_nodes),
    ])
