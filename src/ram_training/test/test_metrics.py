"""Tracking metrics: KITTI result files, trackeval's HOTA / CLEAR / Identity on hand-made scenes
and on motmetrics' real TUD files, our Track AP on hand cases and against trackeval's TrackMAP."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ram_training.data.kitti import KittiObject, read_labels
from ram_training.evaluation.kitti_results import (read_results, read_results_dir, to_kitti_objects,
                                                   write_results, write_results_dir)
from ram_training.evaluation.track_ap import (Track, average_precision, spatio_temporal_iou, track_ap,
                                              track_ap_trackeval)


def gt_row(t, tid, box, kind="Car", truncated=0, occluded=0):
    return KittiObject(frame=t, track_id=tid, type=kind, truncated=truncated, occluded=occluded, alpha=0.0,
                       box=tuple(float(v) for v in box))


def dont_care(t, box):
    return KittiObject.dont_care(t, box)


A = (10.0, 100.0, 60.0, 160.0)     # two cars, 50 x 60 px, far apart
B = (300.0, 100.0, 350.0, 160.0)
N = 10


def two_car_gt():
    return [gt_row(t, 0, A) for t in range(N)] + [gt_row(t, 1, B) for t in range(N)]


# ---------------------------------------------------------------------------------------
# KITTI result files


def test_results_round_trip(tmp_path):
    frames = [[(3, "car", 10.5, 20.25, 30.0, 40.0, 0.875), (4, "Pedestrian", 1, 2, 3, 4, 0.5)],
              [],
              [(3, "car", 11.0, 21.0, 31.0, 41.0, 0.75)]]
    path = write_results(tmp_path / "seq" / "0001.txt", frames)
    lines = path.read_text().splitlines()
    assert lines[0].split() == ["0", "3", "Car", "-1", "-1", "-10.000000", "10.500000", "20.250000", "30.000000",
                                "40.000000", "-1.000000", "-1.000000", "-1.000000", "-1000.000000", "-1000.000000",
                                "-1000.000000", "-10.000000", "0.875000"]
    assert [p.name for p in path.parent.iterdir()] == ["0001.txt"]          # no temp file left
    back = read_results(path)
    assert back == {0: [(3, "car", 10.5, 20.25, 30.0, 40.0, 0.875), (4, "pedestrian", 1.0, 2.0, 3.0, 4.0, 0.5)],
                    2: [(3, "car", 11.0, 21.0, 31.0, 41.0, 0.75)]}
    # the project's label reader accepts the file (18 fields: with score)
    assert [o.score for o in read_labels(path)] == [0.875, 0.5, 0.75]
    # dict form, several sequences, an empty sequence still gets its file
    write_results_dir(tmp_path / "dir", {"0000": {2: frames[2]}, "0005": []})
    assert read_results_dir(tmp_path / "dir") == {"0000": {2: back[2]}, "0005": {}}


@pytest.mark.parametrize("bad", [[(1, "car", 10, 0, 5, 10, 0.5)],            # x2 < x1
                                 [(-1, "car", 0, 0, 5, 10, 0.5)],            # negative id
                                 [(1, "bus", 0, 0, 5, 10, 0.5)],             # not a KITTI type
                                 [(1, "car", 0, 0, 5, 10, 0.5), (1, "car", 0, 0, 5, 10, 0.4)]])
def test_results_reject_bad_predictions(bad):
    with pytest.raises(ValueError):
        to_kitti_objects([bad])


# ---------------------------------------------------------------------------------------
# HOTA / MOTA / IDF1 through trackeval


@pytest.fixture(scope="module")
def mot():
    pytest.importorskip("trackeval", reason="trackeval==1.3.0 (pip --no-deps) runs HOTA/CLEAR/Identity")
    from ram_training.evaluation import mot_metrics
    return mot_metrics


def test_perfect_tracker_scores_100(mot):
    perfect = [[(5, "car", *A, 0.9), (6, "car", *B, 0.8)] for _ in range(N)]
    r = mot.evaluate_kitti({"0000": two_car_gt()}, {"0000": perfect}, classes=["car"])["car"]
    for key in ("HOTA", "DetA", "AssA", "MOTA", "IDF1"):
        assert r[key] == 100.0, key
    assert (r["CLR_TP"], r["CLR_FP"], r["CLR_FN"], r["IDSW"]) == (20, 0, 0, 0)


def test_one_id_switch(mot):
    # Car B's predicted id changes from 6 to 7 at frame 5; every box is exact.
    # CLEAR: 20 GT boxes, TP 20, FP 0, FN 0, IDSW 1 -> MOTA = 1 - (0 + 0 + 1) / 20 = 95.00.
    # Identity: A <-> 5 (10 frames), B <-> 6 (5 frames; 7's 5 frames are unmatched):
    #   IDTP 15, IDFN 5, IDFP 5 -> IDF1 = 2*15 / (2*15 + 5 + 5) = 75.00.
    # HOTA (every IoU 1, so all alphas agree): DetA 1; AssA = mean over the 20 TPs of
    #   TPA / (TPA + FNA + FPA): A's 10 -> 1, B's 10 -> 5 / (5 + 5 + 0) = 0.5; AssA 0.75;
    #   HOTA = sqrt(1 * 0.75) = 86.60.
    switched = [[(5, "car", *A, 0.9), (6 if t < 5 else 7, "car", *B, 0.8)] for t in range(N)]
    r = mot.evaluate_kitti({"0000": two_car_gt()}, {"0000": switched}, classes=["car"])["car"]
    assert r["IDSW"] == 1
    assert r["MOTA"] == 95.0
    assert (r["IDTP"], r["IDFN"], r["IDFP"]) == (15, 5, 5)
    assert r["IDF1"] == 75.0
    assert (r["DetA"], r["AssA"], r["HOTA"]) == (100.0, 75.0, 86.6)


def test_empty_tracker_scores_0(mot):
    r = mot.evaluate_kitti({"0000": two_car_gt()}, {"0000": []}, classes=["car"])["car"]
    assert (r["HOTA"], r["DetA"], r["AssA"], r["MOTA"], r["IDF1"]) == (0.0, 0.0, 0.0, 0.0, 0.0)
    assert r["CLR_FN"] == 20


def test_kitti_protocol_classes_dontcare_and_files(mot, tmp_path):
    """Both classes from one call; a false positive inside a DontCare region and one on a
    Van are not counted (KITTI protocol); the folder entry point reads result files."""
    gt = two_car_gt() + [gt_row(t, 2, (500, 100, 540, 200), "Pedestrian") for t in range(N)]
    gt += [dont_care(t, (600, 50, 700, 150)) for t in range(N)]
    gt += [gt_row(t, 3, (800, 100, 900, 160), "Van") for t in range(N)]
    preds = [[(1, "car", *A, 0.9), (2, "car", *B, 0.9), (3, "pedestrian", 500, 100, 540, 200, 0.7),
              (4, "car", 610, 60, 690, 140, 0.6),                    # inside DontCare: ignored
              (5, "car", 800, 100, 900, 160, 0.6)] for _ in range(N)]  # on the Van: ignored
    write_results_dir(tmp_path / "res", {"0000": preds})
    (tmp_path / "gt").mkdir()
    from ram_training.data.kitti import write_labels
    write_labels(tmp_path / "gt" / "0000.txt", gt)
    r = mot.evaluate_kitti_dirs(tmp_path / "gt", tmp_path / "res")
    assert r["car"]["MOTA"] == 100.0 and r["car"]["CLR_FP"] == 0
    assert r["pedestrian"]["HOTA"] == 100.0 and r["pedestrian"]["GT_Dets"] == N


def test_frames_past_the_sequence_end_are_an_error(mot):
    with pytest.raises(ValueError, match="length"):
        mot.evaluate_kitti({"0000": two_car_gt()}, {"0000": {N: [(5, "car", *A, 0.9)]}}, num_frames={"0000": N})


def test_tud_reference_values(mot):
    """motmetrics 1.4.0 ships TUD-Campus / TUD-Stadtmitte ground truth + tracker output; both
    together have known values (trackeval and motmetrics agree on MOTA and IDF1)."""
    spec = importlib.util.find_spec("motmetrics")
    if spec is None:
        pytest.skip("motmetrics==1.4.0 (pip --no-deps) provides the TUD reference files")
    root = Path(spec.submodule_search_locations[0]) / "data"
    seqs = ["TUD-Campus", "TUD-Stadtmitte"]
    r = mot.evaluate_mot_files({s: root / s / "gt.txt" for s in seqs},
                               {s: root / s / "test.txt" for s in seqs})["pedestrian"]
    expected = {"MOTA": 55.51, "IDF1": 62.43, "HOTA": 40.00, "DetA": 39.77, "AssA": 41.24}
    for key, value in expected.items():
        assert r[key] == pytest.approx(value, abs=0.01), key


# ---------------------------------------------------------------------------------------
# Track AP


def test_spatio_temporal_iou_by_hand():
    a = Track(1, np.array([0, 1]), np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float), np.ones(2))
    b = Track(2, np.array([1, 2]), np.array([[5, 0, 15, 10], [5, 0, 15, 10]], float), np.ones(2))
    # frame 1: intersection 50; union = 4 boxes * 100 - 50 = 350
    assert spatio_temporal_iou(a, b) == pytest.approx(50 / 350)
    assert spatio_temporal_iou(a, a) == pytest.approx(1.0)


def one_car(frames=range(N)):
    return [gt_row(t, 0, A) for t in frames]


def test_track_ap_perfect_track():
    r = track_ap({"s": one_car()}, {"s": [[(1, "car", *A, 0.9)] for _ in range(N)]}, classes=["car"])
    assert r["car"]["AP"] == pytest.approx(100.0) and r["mAP"] == pytest.approx(100.0)


def test_track_ap_iou_04_is_a_miss():
    # exact boxes in 4 of the 10 ground-truth frames: IoU = 4 * area / (10 * area) = 0.4 < 0.5
    preds = {t: [(1, "car", *A, 0.9)] for t in range(4)}
    r = track_ap({"s": one_car()}, {"s": preds}, classes=["car"])
    assert r["car"]["AP"] == 0.0 and r["car"]["num_tp"] == 0


def test_track_ap_false_positive_ranked_first():
    # The false positive (far away) has frame scores 1.0, 0.8 -> track score 0.9; the true
    # positive 0.95, 0.25 -> 0.6 (its best frame beats the FP's, its mean does not).
    # Ranked: FP, TP. recall 0, 1; precision 0, 1/2 -> made monotone 1/2, 1/2; every one of
    # the 101 recall points reads 1/2: AP 50.
    preds = {0: [(1, "car", *B, 1.0), (2, "car", *A, 0.95)], 1: [(1, "car", *B, 0.8), (2, "car", *A, 0.25)]}
    r = track_ap({"s": one_car([0, 1])}, {"s": preds}, classes=["car"])
    assert r["car"]["AP"] == pytest.approx(50.0)
    # A second ground-truth track nobody finds: recall reaches only 1/2, so the 51 points
    # 0, 0.01, ..., 0.50 read 1/2 and the 50 above read 0: AP = 100 * 51 * 0.5 / 101.
    gt = one_car([0, 1]) + [gt_row(t, 9, (400, 100, 450, 160)) for t in (0, 1)]
    r = track_ap({"s": gt}, {"s": preds}, classes=["car"])
    assert r["car"]["AP"] == pytest.approx(100 * 51 * 0.5 / 101)
    assert r["car"]["recall"] == pytest.approx(50.0)


def test_ignore_filtering_removes_prediction_in_dontcare():
    region = (600, 50, 700, 150)
    gt = one_car() + [dont_care(t, region) for t in range(N)]
    preds = [[(1, "car", 610, 60, 690, 140, 0.95), (2, "car", *A, 0.6)] for _ in range(N)]
    with_ignore = track_ap({"s": gt}, {"s": preds}, classes=["car"])["car"]
    assert with_ignore["AP"] == pytest.approx(100.0) and with_ignore["num_ignored"] == 1
    without = track_ap({"s": gt}, {"s": preds}, classes=["car"], ignore_threshold=None)["car"]
    assert without["AP"] == pytest.approx(50.0) and without["num_ignored"] == 0
    # averaged over the track's frames: inside the region in 2 of 10 frames -> 0.2, not > 0.2
    brief = [[(1, "car", 610, 60, 690, 140, 0.95)] if t < 2 else [(1, "car", 800, 60, 880, 140, 0.95)]
             for t in range(N)]
    for t in range(N):
        brief[t].append((2, "car", *A, 0.6))
    assert track_ap({"s": gt}, {"s": brief}, classes=["car"])["car"]["num_ignored"] == 0


def test_ignore_mode_keeps_true_positive_next_to_a_van():
    # A correct car track whose box is 40% covered by a Van's box in every frame.
    van = (40.0, 100.0, 100.0, 160.0)   # overlaps A over x 40..60: 20 of A's 50 px width
    gt = one_car() + [gt_row(t, 5, van, "Van") for t in range(N)]
    preds = [[(1, "car", *A, 0.9)] for _ in range(N)]
    assert track_ap({"s": gt}, {"s": preds}, classes=["car"])["car"]["AP"] == pytest.approx(100.0)
    before = track_ap({"s": gt}, {"s": preds}, classes=["car"], ignore_mode="before_matching")["car"]
    assert before["AP"] == 0.0 and before["num_ignored"] == 1


def test_class_without_ground_truth_is_left_out_of_map():
    r = track_ap({"s": one_car()}, {"s": [[(1, "car", *A, 0.9), (2, "pedestrian", 0, 0, 10, 30, 0.5)]] * N})
    assert r["pedestrian"]["AP"] is None and r["mAP"] == pytest.approx(100.0)


def test_average_precision_empty_cases():
    assert average_precision(np.zeros(0), np.zeros(0, bool), 0) == (None, 0.0)
    assert average_precision(np.zeros(0), np.zeros(0, bool), 3) == (0.0, 0.0)


def random_scene(rng, num_seqs=3, frames=30):
    """Ground truth of both classes and a noisy tracker: jittered, fragmented, id-swapped
    copies of the truth plus false positives, random frame scores."""
    gt, preds = {}, {}
    for s in range(num_seqs):
        rows, out = [], {t: [] for t in range(frames)}
        next_id = 0
        for k in range(int(rng.integers(3, 7))):
            kind = "Car" if k % 2 == 0 else "Pedestrian"
            start = int(rng.integers(0, frames // 2))
            stop = int(rng.integers(start + 3, frames + 1))
            x, y = rng.uniform(0, 1000), rng.uniform(0, 300)
            w, h = (rng.uniform(40, 120), rng.uniform(30, 80)) if kind == "Car" else (rng.uniform(15, 40), rng.uniform(40, 100))
            vx = rng.uniform(-5, 5)
            boxes = {t: (x + vx * t, y, x + vx * t + w, y + h) for t in range(start, stop)}
            rows += [gt_row(t, k, b, kind) for t, b in boxes.items()]
            # 0-2 predicted pieces of this object, each a random span with jitter
            for _ in range(int(rng.integers(0, 3))):
                a = int(rng.integers(start, stop)) if rng.uniform() < 0.4 else start
                b = int(rng.integers(a + 1, stop + 1)) if rng.uniform() < 0.4 else stop
                jitter = rng.uniform(0, 0.1) * w
                for t in range(a, b):
                    bx = np.array(boxes[t]) + rng.normal(0, jitter, 4)
                    bx[2:] = np.maximum(bx[2:], bx[:2] + 1)
                    out[t].append((next_id, kind.lower(), *bx, float(rng.uniform(0.1, 1.0))))
                next_id += 1
        for _ in range(int(rng.integers(1, 4))):   # false positives
            kind = ["car", "pedestrian"][int(rng.integers(2))]
            a = int(rng.integers(0, frames - 1))
            x, y = rng.uniform(0, 1000), rng.uniform(0, 300)
            for t in range(a, min(frames, a + int(rng.integers(1, 10)))):
                out[t].append((next_id, kind, x, y, x + 30, y + 50, float(rng.uniform(0.1, 1.0))))
            next_id += 1
        gt[f"{s:04d}"], preds[f"{s:04d}"] = rows, out
    return gt, preds


@pytest.mark.parametrize("seed", range(6))
def test_track_ap_agrees_with_trackeval_trackmap(seed):
    pytest.importorskip("trackeval", reason="trackeval==1.3.0 (pip --no-deps) provides TrackMAP")
    gt, preds = random_scene(np.random.default_rng(seed))
    ours = track_ap(gt, preds, ignore_threshold=None)
    theirs = track_ap_trackeval(gt, preds)
    for c in ("car", "pedestrian"):
        assert ours[c]["AP"] == pytest.approx(theirs[c], abs=1e-9), c
    assert ours["mAP"] == pytest.approx(theirs["mAP"], abs=1e-9)
    assert 0.0 < ours["mAP"] < 100.0      # a non-trivial case


def test_track_ap_from_files(tmp_path):
    from ram_training.data.kitti import write_labels
    from ram_training.evaluation.track_ap import main
    write_labels(tmp_path / "gt" / "0000.txt", one_car())
    write_results(tmp_path / "res" / "0000.txt", [[(1, "car", *A, 0.9)] for _ in range(N)])
    assert main(["--gt", str(tmp_path / "gt"), "--results", str(tmp_path / "res"),
                 "--out", str(tmp_path / "ap.json")]) == 0
    import json
    assert json.loads((tmp_path / "ap.json").read_text())["car"]["AP"] == pytest.approx(100.0)


# ---------------------------------------------------------------------------------------
# Sitting people: KITTI tracking labels say `Person`, the object benchmark and some tools
# `Person_sitting`; both are distractors for pedestrians (the reader is case-insensitive,
# like trackeval and the KITTI devkit).


@pytest.mark.parametrize("spelling", ["Person", "Person_sitting", "person_sitting"])
def test_sitting_person_is_a_pedestrian_distractor(mot, tmp_path, spelling):
    walker, sitter = (500.0, 100.0, 540.0, 200.0), (700.0, 120.0, 740.0, 200.0)
    line = " ".join(["{t}", "4", spelling, "0", "0", "0.0", *(f"{v:.6f}" for v in sitter),
                     "-1", "-1", "-1", "-1000", "-1000", "-1000", "-10"])
    label = tmp_path / "0000.txt"
    label.write_text("".join(gt_row(t, 2, walker, "Pedestrian").to_line() + "\n" + line.format(t=t) + "\n"
                             for t in range(N)))
    preds = [[(1, "pedestrian", *walker, 0.8), (2, "pedestrian", *sitter, 0.9)] for _ in range(N)]
    hota = mot.evaluate_kitti({"0000": label}, {"0000": preds}, classes=["pedestrian"])["pedestrian"]
    assert (hota["CLR_FP"], hota["MOTA"], hota["GT_Dets"]) == (0, 100.0, N)
    ap = track_ap({"0000": label}, {"0000": preds}, classes=["pedestrian"])["pedestrian"]
    assert (ap["AP"], ap["num_tp"], ap["num_ignored"]) == (pytest.approx(100.0), 1, 1)
