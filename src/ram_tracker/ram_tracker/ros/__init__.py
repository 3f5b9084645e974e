"""The ROS 2 side of ram_tracker: the nodes, message building and the launch's RViz config.

Everything in this subpackage may import rclpy and message packages; nothing outside it does
(test_core_imports_no_ros checks). The nodes call the core (ram_tracker.pipeline, ...) for all
computation.
"""
