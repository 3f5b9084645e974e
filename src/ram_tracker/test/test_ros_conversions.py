"""Pipeline results -> ROS messages, and the debug drawing, on hand-made tracks and beliefs."""
import numpy as np
import pytest

pytest.importorskip('rclpy')
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from ram_msgs.msg import TrackedObject  # noqa: E402
from ram_tracker.pipeline import Belief, TrackOutput  # noqa: E402
from ram_tracker.ros.ros_conversions import (belief_occupancy_grid, beliefs_to_msg,  # noqa: E402
                                             track_markers, tracks_to_detections, tracks_to_msg)
from ram_tracker.visualize import belief_image, draw_tracks, filmstrip  # noqa: E402


def _track(track_id, state, cx=100.0, cy=50.0):
    return TrackOutput(track_id=track_id, class_id=0, class_name='car', score=0.9,
                       box_cxcywh=np.array([cx, cy, 40.0, 20.0]), velocity=np.array([2.0, -1.0]),
                       state=state, box_source='detection' if state == 'visible' else 'walker',
                       frames_since_seen=0 if state == 'visible' else 3,
                       walker_confidence=1.0 if state == 'visible' else 0.3, visibility=0.8,
                       age=7)


def _belief(track_id=2, peak_cell=(1, 5), shape=(4, 8)):
    prob = np.full(shape, 0.5 / (shape[0] * shape[1] - 1), np.float32)
    prob[peak_cell] = 0.5
    return Belief(track_id=track_id, class_name='car', probability=prob, cell_width=16.0,
                  cell_height=16.0, origin_x=0.0, origin_y=0.0)


def _header():
    h = Header()
    h.stamp.sec, h.stamp.nanosec, h.frame_id = 42, 7, 'camera'
    return h


def test_tracks_message_copies_header_and_fields():
    msg = tracks_to_msg(_header(), [_track(1, 'visible'), _track(2, 'occluded')])
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == \
        (42, 7, 'camera')
    visible, occluded = msg.tracks
    assert visible.id == 1 and visible.class_id == 'car' and visible.state == \
        TrackedObject.STATE_VISIBLE and visible.box_source == TrackedObject.SOURCE_DETECTION
    assert (visible.bbox.center.position.x, visible.bbox.size_x) == (100.0, 40.0)
    assert occluded.state == TrackedObject.STATE_OCCLUDED and occluded.box_source == \
        TrackedObject.SOURCE_WALKER and occluded.frames_since_seen == 3
    assert occluded.walker_confidence == pytest.approx(0.3) and occluded.velocity_x == 2.0


def test_detections_carry_id_class_score_and_box_of_visible_and_hidden_tracks():
    """vision_msgs/Detection2DArray: the track id in `id`, class and score as the one hypothesis,
    the box in image pixels; an occluded track is there (its walker box), an ended one is not."""
    pytest.importorskip('vision_msgs.msg', reason='vision_msgs not importable: the workspace '
                        'builds it from src/third_party/vision_msgs (colcon build)')
    msg = tracks_to_detections(_header(), [_track(1, 'visible'), _track(7, 'occluded', 60, 30),
                                           _track(3, 'lost')])
    assert (msg.header.stamp.sec, msg.header.frame_id) == (42, 'camera')
    assert [d.id for d in msg.detections] == ['1', '7']
    hidden = msg.detections[1]
    assert hidden.header.frame_id == 'camera'
    assert [(r.hypothesis.class_id, r.hypothesis.score) for r in hidden.results] == \
        [('car', pytest.approx(0.9))]
    assert (hidden.bbox.center.position.x, hidden.bbox.center.position.y,
            hidden.bbox.size_x, hidden.bbox.size_y) == (60.0, 30.0, 40.0, 20.0)


def test_belief_dense_and_top_k():
    belief = _belief()
    dense = beliefs_to_msg(_header(), [belief], (128, 64)).beliefs[0]
    assert (dense.width, dense.height, dense.cell_width) == (8, 4, 16.0)
    assert len(dense.probability) == 32 and not len(dense.top_indices)
    assert sum(dense.probability) == pytest.approx(1.0, abs=1e-5)
    assert dense.confidence == pytest.approx(0.5)
    compact = beliefs_to_msg(_header(), [belief], (128, 64), top_k=3).beliefs[0]
    assert not len(compact.probability)
    assert compact.top_indices[0] == 1 * 8 + 5           # row-major flat index of the peak
    assert compact.top_probabilities[0] == pytest.approx(0.5)
    assert len(compact.top_indices) == 3


def test_occupancy_grid_scales_to_costmap_range_and_aligns_with_image():
    grid = belief_occupancy_grid(_header(), [_belief()], (4, 8), display_scale=0.01)
    data = np.array(grid.data, np.int16).reshape(4, 8)
    assert data.max() == 98 and data.min() >= 0 and data[1, 5] == 98
    assert grid.info.resolution == pytest.approx(0.16)
    assert grid.header.frame_id == 'camera'
    empty = belief_occupancy_grid(_header(), [], (4, 8), display_scale=0.01)
    assert max(empty.data) == 0 and len(empty.data) == 32


def test_markers_clear_then_draw_live_tracks():
    markers = track_markers(_header(), [_track(1, 'visible'), _track(2, 'occluded'),
                                        _track(3, 'lost')], display_scale=0.01).markers
    assert markers[0].action == Marker.DELETEALL
    assert sorted(m.id for m in markers[1:]) == [2, 3, 4, 5]   # lost track 3 not drawn
    box = next(m for m in markers if m.id == 2)
    xs = sorted({round(p.x, 6) for p in box.points})
    assert xs == [0.8, 1.2]                                     # 100 +- 20 px at 1 cm / px


def test_debug_drawing_marks_boxes_and_belief():
    rgb = np.zeros((64, 128, 3), np.uint8)
    belief = _belief()
    heat = belief_image(belief, 128, 64)
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert abs(x - (5 * 16 + 8)) <= 1 and abs(y - (1 * 16 + 8)) <= 1   # peak cell's centre
    drawn = draw_tracks(rgb, [_track(1, 'visible', 30, 30), _track(2, 'occluded', 88, 24)],
                        [belief])
    assert drawn.shape == rgb.shape and drawn.any()
    assert drawn[24, 88].sum() > 0                               # belief overlaid at its peak
    strip = filmstrip([drawn, drawn, drawn], columns=2, width=64)
    assert strip.shape == (64, 128, 3)
