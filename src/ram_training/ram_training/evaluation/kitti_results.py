"""Tracker output in the KITTI tracking *result* format, written atomically and read back.

One implementation, in ram_tracker.kitti_format (ram-track writes its tracks with it; the core
package must not import ram_training): the evaluation imports the names from here as before.
"""
from ram_tracker.kitti_format import (Prediction, frame_items, kitti_type,  # noqa: F401
                                      read_results, read_results_dir, results_text,
                                      to_kitti_objects, write_results, write_results_dir)
