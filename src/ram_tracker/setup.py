from glob import glob

from setuptools import find_packages, setup

package_name = 'ram_tracker'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['schema/*.json']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        # launch/, config/ and models/ live at the repository root; the package folder links to
        # them so `ros2 launch ram_tracker tracker.launch.py` finds them in share/ram_tracker/.
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.json')
         + glob('config/*.xml') + glob('config/*.rviz')),
        # The model config/tracker.yaml names by default (package://ram_tracker/models/...): the
        # installed node tracks with trained weights, never silently with an untrained model.
        ('share/' + package_name + '/models', ['models/world2_ram.safetensors']),
    ],
    install_requires=['setuptools'],
    extras_require={'test': ['pytest']},
    zip_safe=True,
    maintainer='RAM-ROS maintainers',
    maintainer_email='maintainers@ram-ros.dev',
    description='RAM object-permanence tracker: inference core and ROS 2 node.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'tracker_node = ram_tracker.ros.tracker_node:main',
            'image_publisher = ram_tracker.ros.image_publisher_node:main',
            'track_monitor = ram_tracker.ros.track_monitor_node:main',
            'ram-export = ram_tracker.inference.export:main',
            'ram-track = ram_tracker.track_cli:main',
        ],
    },
)
