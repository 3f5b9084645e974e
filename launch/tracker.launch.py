"""Start the RAM tracker node (and optionally RViz).

    ros2 launch ram_tracker tracker.launch.py image:=/camera/image_raw model:=/path/model.safetensors
    ros2 launch ram_tracker tracker.launch.py rviz:=true namespace:=front

Arguments left empty keep the value of the params file (config/tracker.yaml by default).
Without launch_ros (PyPI wheels), the same node and parameters start with:
    install/ram_tracker/lib/ram_tracker/tracker_node --ros-args \
        --params-file install/ram_tracker/share/ram_tracker/config/tracker.yaml -r image:=/camera/image_raw
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


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
        name='tracker_node',
        namespace=LaunchConfiguration('namespace'),
        parameters=[LaunchConfiguration('params_file'), overrides],
        remappings=[('image', LaunchConfiguration('image')),
                    ('camera_info', LaunchConfiguration('camera_info'))],
        output='screen',
        emulate_tty=True,
    )]


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
                              description='Open RViz with config/ram_tracker.rviz'),
        DeclareLaunchArgument('localhost_only', default_value='true',
                              description='Keep DDS discovery on this machine'),
        DeclareLaunchArgument('shm_transport', default_value='true',
                              description='Fast DDS shared-memory profile (no dropped images)'),
        SetEnvironmentVariable('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST',
                               condition=IfCondition(LaunchConfiguration('localhost_only'))),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE',
                               PathJoinSubstitution([share, 'config', 'fastdds_shm.xml']),
                               condition=IfCondition(LaunchConfiguration('shm_transport'))),
        OpaqueFunction(function=_tracker),
        Node(package='rviz2', executable='rviz2', name='rviz2', output='log',
             arguments=['-d', PathJoinSubstitution([share, 'config', 'ram_tracker.rviz'])],
             condition=IfCondition(LaunchConfiguration('rviz'))),
    ])
