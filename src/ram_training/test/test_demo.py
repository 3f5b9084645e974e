"""The demo's World 2 summary: which full occlusions an object came out of with its id kept,
and how far the hidden track's box was from the true hidden position (hand-computed)."""
from ram_training.demo import occlusion_events


def _row(track_id, state, cx, cy=50.0, name='car'):
    # kitti_eval row: id, class, state, cx, cy, w, h, score, frames_since_seen
    return [track_id, name, state, float(cx), float(cy), 20.0, 10.0, 0.9, 0]


def test_occlusion_events_id_kept_and_hidden_error():
    # object 5 (car) moves +10 px per frame: visible 0-1, hidden 2-4, visible 5-6;
    # object 6 (car) at x=300: visible 0-1, hidden 2-3, visible 4-6;
    # object 7 (pedestrian) is hidden at the end and never comes back (no event).
    truth, node = [], []
    for t in range(7):
        x5 = 100.0 + 10 * t
        objects = {5: ((x5, 50.0, 20.0, 10.0, 'car'), 2 <= t <= 4),
                   6: ((300.0, 50.0, 20.0, 10.0, 'car'), 2 <= t <= 3),
                   7: ((500.0, 50.0, 20.0, 10.0, 'pedestrian'), t >= 5)}
        truth.append(objects)
        rows = []
        # track 1 follows object 5; while hidden its box stays 4 px behind the truth
        rows.append(_row(1, 'occluded' if 2 <= t <= 4 else 'visible', x5 - (4 if 2 <= t <= 4 else 0)))
        # object 6: track 2 before, track 3 after the occlusion (an id switch); no hidden box
        if t <= 1:
            rows.append(_row(2, 'visible', 300.0))
        if t >= 4:
            rows.append(_row(3, 'visible', 300.0))
        if t < 5:
            rows.append(_row(4, 'visible', 500.0, name='pedestrian'))
        node.append(rows)
    events = occlusion_events(node, truth)
    assert [(e['object'], e['first_hidden_frame'], e['hidden_frames']) for e in events] == [(5, 2, 3), (6, 2, 2)]
    kept, switched = events
    assert kept['id_before'] == 1 and kept['id_after'] == 1 and kept['id_kept']
    assert kept['followed_frames'] == 3 and kept['belief_error_px'] == 4.0
    # last seen at x=110: the truth is 10, 20, 30 px further -> mean 20
    assert kept['last_seen_error_px'] == 20.0
    assert switched['id_before'] == 2 and switched['id_after'] == 3 and not switched['id_kept']
    assert switched['followed_frames'] == 0 and switched['belief_error_px'] is None
