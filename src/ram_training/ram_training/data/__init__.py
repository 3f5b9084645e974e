"""RAM-ROS data: synthetic occlusion worlds, KITTI tracking format, training clips, rosbag2.

Modules: world_lacater (World 1, LA-CATER-like), world_street (World 2, KITTI-like), render
(shared 2.5D renderer), kitti (KITTI tracking reader/writer), clips (clip sampling, Dataset,
collate), rosbag_io (KITTI -> rosbag2, bag reader), player (bag -> live ROS graph), cli
(`ram-data`). See docs/DATA.md.
"""
