"""Pipeline results and images -> ROS messages. The nodes call these; so do tests and the bag
recorder.

The image plane in RViz: belief_grid and markers are drawn in the image's frame_id, one image
pixel = `display_scale` metres, x to the right and y downwards (the grid's origin pose is rotated
180 degrees about x so that rows run down like image rows).
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point
from nav_msgs.msg import OccupancyGrid
from sensor_msgs.msg import Image
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from ram_msgs.msg import BeliefArray, BeliefGrid, TrackedObject, TrackedObjectArray
from ram_tracker.image_conversion import rgb_to_image_fields
from ram_tracker.pipeline import Belief, TrackOutput
from ram_tracker.visualize import track_colour

# vision_msgs is optional: no PyPI wheel, and not every ROS install has it (this workspace builds
# the upstream package, src/third_party/vision_msgs). Without it the node publishes everything
# but `detections`.
try:
    from vision_msgs.msg import (Detection2D, Detection2DArray, ObjectHypothesis,
                                 ObjectHypothesisWithPose)
    VISION_MSGS_MISSING = ''
except ImportError as error:
    Detection2DArray = None
    VISION_MSGS_MISSING = f'vision_msgs is not importable ({error})'

STATE = {'visible': TrackedObject.STATE_VISIBLE, 'occluded': TrackedObject.STATE_OCCLUDED,
         'lost': TrackedObject.STATE_LOST}
SOURCE = {'detection': TrackedObject.SOURCE_DETECTION, 'walker': TrackedObject.SOURCE_WALKER}


def rgb_to_image_msg(header: Header, rgb: np.ndarray, encoding: str = 'rgb8') -> Image:
    """(H, W, 3) uint8 RGB as a sensor_msgs/Image in `encoding` (any that image_to_rgb reads,
    rows unpadded); ImageConversionError for another array or encoding."""
    fields = rgb_to_image_fields(rgb, encoding)
    image = Image(header=header, height=fields['height'], width=fields['width'],
                  encoding=fields['encoding'], is_bigendian=fields['is_bigendian'],
                  step=fields['step'])
    image.data = fields['data']
    return image


def track_to_msg(track: TrackOutput) -> TrackedObject:
    m = TrackedObject()
    m.id = track.track_id
    m.class_id = track.class_name
    m.score = float(track.score)
    cx, cy, w, h = (float(v) for v in track.box_cxcywh)
    m.bbox.center.position.x, m.bbox.center.position.y = cx, cy
    m.bbox.size_x, m.bbox.size_y = w, h
    m.state = STATE[track.state]
    m.frames_since_seen = int(track.frames_since_seen)
    m.walker_confidence = float(track.walker_confidence)
    m.velocity_x, m.velocity_y = float(track.velocity[0]), float(track.velocity[1])
    m.box_source = SOURCE[track.box_source]
    m.visibility = float(track.visibility)
    m.age = int(track.age)
    return m


def tracks_to_msg(header: Header, tracks: list[TrackOutput]) -> TrackedObjectArray:
    out = TrackedObjectArray()
    out.header = header
    out.tracks = [track_to_msg(t) for t in tracks]
    return out


def tracks_to_detections(header: Header, tracks: list[TrackOutput]) -> 'Detection2DArray':
    """The standard-message view of `tracks` for vision_msgs consumers: one Detection2D per
    visible or occluded track (occluded: the box the walker believes in; ended tracks left out),
    `id` = the track id, one hypothesis with the class name and score, the box in image pixels.
    vision_msgs has no occlusion state: `tracks` carries it."""
    out = Detection2DArray()
    out.header = header
    for track in tracks:
        if track.state == 'lost':
            continue
        detection = Detection2D()
        detection.header = header
        detection.id = str(track.track_id)
        cx, cy, w, h = (float(v) for v in track.box_cxcywh)
        detection.bbox.center.position.x, detection.bbox.center.position.y = cx, cy
        detection.bbox.size_x, detection.bbox.size_y = w, h
        detection.results = [ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(
            class_id=track.class_name, score=float(track.score)))]
        out.detections.append(detection)
    return out


def beliefs_to_msg(header: Header, beliefs: list[Belief], image_size: tuple[int, int],
                   top_k: int = 0) -> BeliefArray:
    """BeliefArray; dense probabilities, or the `top_k` most probable cells when top_k > 0."""
    out = BeliefArray()
    out.header = header
    out.image_width, out.image_height = int(image_size[0]), int(image_size[1])
    for belief in beliefs:
        g = BeliefGrid()
        g.track_id = belief.track_id
        g.class_id = belief.class_name
        g.height, g.width = (int(v) for v in belief.probability.shape)
        g.cell_width, g.cell_height = float(belief.cell_width), float(belief.cell_height)
        g.origin_x, g.origin_y = float(belief.origin_x), float(belief.origin_y)
        flat = belief.probability.astype(np.float32).reshape(-1)
        g.confidence = float(flat.max())
        if top_k > 0:
            k = min(top_k, flat.size)
            top = np.argpartition(-flat, k - 1)[:k]
            top = top[np.argsort(-flat[top], kind='stable')]
            g.top_indices = top.astype(np.uint32)
            g.top_probabilities = flat[top]
        else:
            g.probability = flat
        out.beliefs.append(g)
    return out


def belief_occupancy_grid(header: Header, beliefs: list[Belief], grid_shape: tuple[int, int],
                          display_scale: float) -> OccupancyGrid:
    """All beliefs combined (per-cell max of each belief normalised to its peak), 0..98, for
    RViz's costmap colour scheme (0 transparent, 1..98 blue to red). Cells are square in the
    message; the node grid's cells are (nearly) square because the model input keeps the
    image's aspect ratio to within a pixel, and the cell width sets the resolution."""
    grid = OccupancyGrid()
    grid.header = header
    height, width = grid_shape
    grid.info.height, grid.info.width = height, width
    combined = np.zeros(grid_shape, np.float32)
    cell = 1.0
    origin_x = origin_y = 0.0
    for belief in beliefs:
        peak = float(belief.probability.max())
        if peak > 0:
            combined = np.maximum(combined, belief.probability / peak)
        cell, origin_x, origin_y = belief.cell_width, belief.origin_x, belief.origin_y
    grid.info.resolution = float(cell * display_scale)
    grid.info.origin.position.x = float(origin_x * display_scale)
    grid.info.origin.position.y = float(-origin_y * display_scale)
    # Rotate 180 degrees about x: map +y (rows) points down the image.
    grid.info.origin.orientation.x, grid.info.origin.orientation.w = 1.0, 0.0
    grid.data = np.rint(combined * 98.0).astype(np.int8).reshape(-1).tolist()
    return grid


def track_markers(header: Header, tracks: list[TrackOutput], display_scale: float,
                  namespace: str = 'ram_tracks') -> MarkerArray:
    """A box outline and an id label per track, on the image plane; DELETEALL first so ended
    tracks disappear."""
    out = MarkerArray()
    clear = Marker()
    clear.header = header
    clear.action = Marker.DELETEALL
    out.markers.append(clear)
    for track in tracks:
        if track.state == 'lost':
            continue
        r, g, b = (c / 255.0 for c in track_colour(track.track_id))
        colour = ColorRGBA(r=r, g=g, b=b, a=1.0 if track.state == 'visible' else 0.6)
        cx, cy, w, h = (float(v) * display_scale for v in track.box_cxcywh)
        box = Marker()
        box.header = header
        box.ns = namespace
        box.id = 2 * track.track_id
        box.type = Marker.LINE_STRIP
        box.action = Marker.ADD
        box.pose.orientation.w = 1.0
        box.scale.x = 2.0 * display_scale
        box.color = colour
        corners = [(cx - w / 2, cy - h / 2), (cx + w / 2, cy - h / 2), (cx + w / 2, cy + h / 2),
                   (cx - w / 2, cy + h / 2), (cx - w / 2, cy - h / 2)]
        box.points = [Point(x=x, y=-y, z=0.0) for x, y in corners]   # image y runs down
        label = Marker()
        label.header = header
        label.ns = namespace
        label.id = 2 * track.track_id + 1
        label.type = Marker.TEXT_VIEW_FACING
        label.action = Marker.ADD
        label.pose.position.x, label.pose.position.y = cx, -(cy - h / 2) + 6 * display_scale
        label.pose.orientation.w = 1.0
        label.scale.z = 12.0 * display_scale
        label.color = colour
        label.text = (f'{track.track_id} {track.class_name}' if track.state == 'visible'
                      else f'{track.track_id}? ({track.walker_confidence:.2f})')
        out.markers.extend([box, label])
    return out
