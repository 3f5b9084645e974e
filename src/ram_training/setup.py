from setuptools import find_packages, setup

package_name = 'ram_training'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['recipes/*.yaml']},     # the training recipes (ram-train --config NAME)
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    extras_require={'test': ['pytest']},
    zip_safe=True,
    maintainer='RAM-ROS maintainers',
    maintainer_email='maintainers@ram-ros.dev',
    description='RAM-ROS training, data and evaluation.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'ram-data = ram_training.data.cli:main',
            'ram-train = ram_training.train:main',
            'ram-eval = ram_training.evaluation.kitti_eval:main',
            'ram-diagnose = ram_training.diagnose:main',
        ],
    },
)
