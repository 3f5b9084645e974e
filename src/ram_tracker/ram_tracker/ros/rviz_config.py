"""The RViz config for one tracker_node, made from config/ram_tracker.rviz at launch time.

The shipped file names the node's own topics (`image`, `debug_image`, `belief_grid`, `markers`)
and the frame of the stand-in camera. RViz would resolve those names in its own namespace and
knows nothing of the launch's remaps, so `namespace:=` or `image:=` left its displays empty.
Here each display topic is resolved exactly as rcl resolves the tracker's own (remap target,
then the node's namespace) and the fixed frame is set; the result goes into a new file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

TRACKER_NODE_NAME = 'tracker_node'


def _resolve(name: str, namespace: str) -> str:
    from rclpy.exceptions import InvalidNamespaceException, InvalidTopicNameException
    from rclpy.expand_topic_name import expand_topic_name
    from rclpy.validate_full_topic_name import validate_full_topic_name
    from rclpy.validate_namespace import validate_namespace
    try:
        validate_namespace(namespace)
        topic = expand_topic_name(name, TRACKER_NODE_NAME, namespace)
        validate_full_topic_name(topic)
    except (InvalidNamespaceException, InvalidTopicNameException) as error:
        raise ValueError(f"topic '{name}' in namespace '{namespace}': {error}") from None
    return topic


def rviz_config(template: Path, namespace: str, remaps: dict[str, str],
                fixed_frame: str) -> dict:
    """`template` (an .rviz file naming the tracker's own topics) with every display topic
    resolved for a tracker_node in `namespace` (absolute) with `remaps` (node name -> target,
    e.g. {'image': 'camera/image_raw'}), and `fixed_frame` as RViz's fixed frame."""
    if not fixed_frame:
        raise ValueError('fixed_frame is empty: give the frame_id of the images '
                         '(e.g. fixed_frame:=camera)')
    try:
        config = yaml.safe_load(Path(template).read_text())
        manager = config['Visualization Manager']
        displays = manager['Displays']
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise ValueError(f'RViz config template {template}: {error}') from None
    for display in displays:
        for key in ('Topic', 'Update Topic'):
            if key in display:
                name = display[key]['Value']
                display[key]['Value'] = _resolve(remaps.get(name, name), namespace)
    manager['Global Options']['Fixed Frame'] = fixed_frame
    return config


def write_rviz_config(template: Path, namespace: str, remaps: dict[str, str], fixed_frame: str,
                      directory: Path | None = None) -> Path:
    """rviz_config(...) written to a new file in `directory` (default: the temp dir); its path.
    Nothing is written when an argument is bad."""
    text = yaml.safe_dump(rviz_config(template, namespace, remaps, fixed_frame),
                          sort_keys=False)
    descriptor, path = tempfile.mkstemp(prefix='ram_tracker_', suffix='.rviz', dir=directory)
    with os.fdopen(descriptor, 'w') as out:
        out.write(text)
    return Path(path)
