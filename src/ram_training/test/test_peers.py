"""Peer trackers (SORT, ByteTrack, OC-SORT from PyPI `trackers`) on scripted detections: ids kept on
visible stretches, Kalman boxes while a box is missing, classes kept apart, and the output
scored by the KITTI metric pipeline with hand-computed numbers."""
import numpy as np
import pytest

pytest.importorskip("trackers", reason="trackers==2.6.1 (pip --no-deps, requirements-nodeps.in)")

from ram_tracker.tracker import Detections  # noqa: E402
from ram_training.evaluation.peers import PEER_TRACKERS, make_peer, scale_detections  # noqa: E402

SIZE = (40.0, 60.0)


def frame(boxes):
    """boxes: [(cx, cy, class_id, score)] -> Detections."""
    n = len(boxes)
    centers = np.array([[b[0], b[1]] for b in boxes], float).reshape(n, 2)
    return Detections(centers, np.tile(SIZE, (n, 1)), np.array([b[3] for b in boxes], float),
                      np.array([b[2] for b in boxes], np.int64), np.zeros((n, 2)), np.ones(n))


def a_at(t):        # moves right 5 px/frame, always visible
    return (100.0 + 5 * t, 100.0)


def b_at(t):        # moves left 5 px/frame, missing in frames gap[0] .. gap[1]-1
    return (400.0 - 5 * t, 200.0)


def scripted(num_frames=20, gap=(10, 14), score=0.9):
    return [frame([(*a_at(t), 0, score)] + ([] if gap[0] <= t < gap[1] else [(*b_at(t), 0, score)]))
            for t in range(num_frames)]


def ids_near(out, t, xy, tol=1.0):
    return [o.track_id for o in out[t] if np.hypot(*(o.box_cxcywh[:2] - xy)) < tol]


def test_the_installed_trackers_provide_the_three_peers():
    import trackers
    assert PEER_TRACKERS == ("sort", "bytetrack", "ocsort")
    for cls in (trackers.SORTTracker, trackers.ByteTrackTracker, trackers.OCSORTTracker):
        assert callable(getattr(cls, "update"))


@pytest.mark.parametrize("name", PEER_TRACKERS)
def test_ids_are_kept_and_the_missing_box_follows_the_kalman_filter(name):
    out = make_peer(name)(scripted(), frame_rate=10.0)
    assert len(out) == 20
    # A: one id on every frame it is reported (from confirmation on), reported to the end.
    a_ids = {i for t in range(20) for i in ids_near(out, t, a_at(t))}
    assert len(a_ids) == 1 and ids_near(out, 19, a_at(19))
    # B: one id before the gap, Kalman-predicted boxes during it, and the same id after it.
    before = {i for t in range(10) for i in ids_near(out, t, b_at(t))}
    after = {i for t in range(16, 20) for i in ids_near(out, t, b_at(t))}
    assert len(before) == 1 and after == before and before != a_ids
    b_id = before.pop()
    for t in range(10, 14):
        (hidden,) = [o for o in out[t] if o.track_id == b_id]
        assert (hidden.state, hidden.box_source, hidden.frames_since_seen) == ("occluded", "kalman", t - 9)
        # constant velocity -5 px/frame extrapolated by the filter
        np.testing.assert_allclose(hidden.box_cxcywh, [*b_at(t), *SIZE], atol=1.0)
        np.testing.assert_allclose(hidden.velocity, [-5.0, 0.0], atol=0.5)
        assert hidden.score == pytest.approx(0.9) and hidden.walker_confidence == 0.0
    for t in (5, 17):
        (seen,) = [o for o in out[t] if o.track_id == b_id]
        assert (seen.state, seen.box_source, seen.frames_since_seen) == ("visible", "detection", 0)
        np.testing.assert_allclose(seen.box_cxcywh, [*b_at(t), *SIZE])       # the detection's box
        assert seen.class_name == "car" and seen.class_id == 0


def test_confirmation_delays_are_the_libraries_and_are_not_back_filled():
    # SORT: a track is reported from its 3rd match (minimum_consecutive_frames 3, birth frame
    # never); OC-SORT re-confirms a track that comes back (frames 14, 15 missing for B).
    sort = make_peer("sort")(scripted(), 10.0)
    assert [len(f) for f in sort[:3]] == [0, 0, 2]
    ocsort = make_peer("ocsort")(scripted(), 10.0)
    assert [len(ids_near(ocsort, t, b_at(t))) for t in range(13, 17)] == [1, 0, 0, 1]
    assert [o.state for o in ocsort[13] if o.box_source == "kalman"] == ["occluded"]
    assert [o.state for o in ocsort[16] if o.box_source == "detection"] == ["visible", "visible"]


@pytest.mark.parametrize("name", PEER_TRACKERS)
def test_a_gap_longer_than_the_lost_buffer_ends_the_track(name):
    # lost_track_buffer 30 frames at 30 fps = 1 s = 10 frames at 10 fps; B is missing 15 frames.
    out = make_peer(name)(scripted(num_frames=30, gap=(8, 23)), frame_rate=10.0)
    b_before = {i for t in range(8) for i in ids_near(out, t, b_at(t))}
    b_after = {i for t in range(26, 30) for i in ids_near(out, t, b_at(t))}
    assert len(b_before) == 1 and len(b_after) == 1 and b_before != b_after
    hidden = [t for t in range(8, 23) if any(o.track_id in b_before for o in out[t])]
    assert hidden == list(range(8, 18))                       # predicted for 10 frames, then dropped


@pytest.mark.parametrize("name", PEER_TRACKERS)
def test_classes_are_tracked_apart(name):
    # A car and a pedestrian on the same box for 12 frames: one tracker per class keeps both,
    # each with its own id and class; a class-agnostic tracker would keep only one.
    frames = [frame([(200.0 + 2 * t, 150.0, 0, 0.9), (200.0 + 2 * t, 150.0, 1, 0.8)]) for t in range(12)]
    out = make_peer(name, class_names=("car", "pedestrian"))(frames, 10.0)
    classes_of = {}
    for f in out:
        for o in f:
            classes_of.setdefault(o.track_id, set()).add((o.class_id, o.class_name))
    assert sorted(classes_of.values(), key=sorted) == [{(0, "car")}, {(1, "pedestrian")}]
    assert len(out[-1]) == 2


def test_low_scores_are_dropped_like_rams_detection_threshold():
    out = make_peer("sort")(scripted(score=0.35), 10.0)
    assert all(f == [] for f in out)


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="unknown peer tracker 'deepsort'"):
        make_peer("deepsort")
    with pytest.raises(ValueError, match="no parameter.*max_age"):
        make_peer("sort", max_age=3)
    with pytest.raises(ValueError, match="frame_rate"):
        make_peer("sort")(scripted(), 0.0)
    with pytest.raises(ValueError, match="class id 2 has no name"):
        make_peer("sort")([frame([(10.0, 10.0, 2, 0.9)])], 10.0)
    with pytest.raises(TypeError, match="frame 0: expected"):
        make_peer("sort")([[(10, 10, 20, 20)]], 10.0)


def test_scale_detections_maps_model_pixels_to_source_pixels():
    d = scale_detections(frame([(10.0, 20.0, 0, 0.9)]), 2.0, 0.5)
    np.testing.assert_allclose(d.centers, [[20.0, 10.0]])
    np.testing.assert_allclose(d.sizes, [[80.0, 30.0]])


# ---------------------------------------------------------------------------------------
# Into the KITTI result files and trackeval


def to_predictions(out):
    return [[(o.track_id, o.class_name, *(o.box_cxcywh[:2] - o.box_cxcywh[2:] / 2),
              *(o.box_cxcywh[:2] + o.box_cxcywh[2:] / 2), o.score) for o in f] for f in out]


@pytest.fixture(scope="module")
def mot():
    pytest.importorskip("trackeval", reason="trackeval==1.3.0 (pip --no-deps) runs HOTA/CLEAR/Identity")
    from ram_training.evaluation import mot_metrics
    return mot_metrics


def gt_rows(num_frames):
    from ram_training.data.kitti import KittiObject
    rows = []
    for t in range(num_frames):
        for tid, (cx, cy) in ((0, a_at(t)), (1, b_at(t))):
            box = (cx - SIZE[0] / 2, cy - SIZE[1] / 2, cx + SIZE[0] / 2, cy + SIZE[1] / 2)
            rows.append(KittiObject(frame=t, track_id=tid, type="Car", truncated=0, occluded=0,
                                    alpha=0.0, box=box))
    return rows


@pytest.mark.parametrize("params, missed_per_track", [({}, 2), ({"minimum_consecutive_frames": 1}, 1)])
def test_sort_on_perfect_detections_through_kitti_files_and_trackeval(mot, tmp_path, params,
                                                                      missed_per_track):
    from ram_training.evaluation.kitti_results import read_results, write_results
    n = 20
    out = make_peer("sort", **params)(scripted(num_frames=n, gap=(n, n)), 10.0)
    path = write_results(tmp_path / "0000.txt", to_predictions(out))
    r = mot.evaluate_kitti({"0000": gt_rows(n)}, {"0000": read_results(path)}, num_frames={"0000": n},
                           classes=["car"])["car"]
    # Exact boxes, no switches; SORT never reports a track on its birth frame, and by default
    # only from its 3rd match: 2 tracks x missed frames are the only errors.
    fn = 2 * missed_per_track
    assert (r["CLR_FN"], r["CLR_FP"], r["IDSW"]) == (fn, 0, 0)
    assert r["MOTA"] == pytest.approx(100 * (1 - fn / (2 * n)), abs=0.01)
    tp = 2 * n - fn
    assert r["IDF1"] == pytest.approx(100 * 2 * tp / (2 * tp + fn), abs=0.01)
    # HOTA: DetA = TP / (TP + FN); every match's association counts its track's missed frames
    # as FNA: AssA = (n - missed) / n.
    assert r["DetA"] == pytest.approx(100 * tp / (2 * n), abs=0.01)
    assert r["AssA"] == pytest.approx(100 * (n - missed_per_track) / n, abs=0.01)
    assert r["HOTA"] == pytest.approx(np.sqrt(r["DetA"] * r["AssA"]), abs=0.01)
