"""KITTI tracking format: parsing real lines, round trips, errors with file:line, the
half-split protocol and the annotations clips are cut from."""
import cv2
import numpy as np
import pytest

from ram_training.data import kitti

# Lines in the exact form of KITTI tracking training label_02/0000.txt
REAL_LINES = [
    "0 -1 DontCare -1 -1 -10.000000 219.310000 188.490000 245.500000 218.560000 -1.000000 -1.000000 -1.000000 -1000.000000 -1000.000000 -1000.000000 -10.000000",
    "0 0 Van 0 0 -1.793451 296.744956 161.752147 455.226042 292.372804 2.000000 1.823255 4.433886 -4.552284 1.858523 13.410495 -2.115488",
    "0 1 Cyclist 0 0 -1.936993 737.619499 161.531951 931.112229 374.000000 1.739063 0.824591 1.785241 1.640400 1.675660 5.776261 -1.675458",
    "1 0 Van 0 0 -1.800002 299.105358 163.300000 457.000000 290.000000 2.000000 1.823255 4.433886 -4.538108 1.858523 13.632506 -2.119999",
]
REAL_CALIB = """P0: 7.215377000000e+02 0.000000000000e+00 6.095593000000e+02 0.000000000000e+00 0.000000000000e+00 7.215377000000e+02 1.728540000000e+02 0.000000000000e+00 0.000000000000e+00 0.000000000000e+00 1.000000000000e+00 0.000000000000e+00
P1: 7.215377000000e+02 0.000000000000e+00 6.095593000000e+02 -3.875744000000e+02 0.000000000000e+00 7.215377000000e+02 1.728540000000e+02 0.000000000000e+00 0.000000000000e+00 0.000000000000e+00 1.000000000000e+00 0.000000000000e+00
P2: 7.215377000000e+02 0.000000000000e+00 6.095593000000e+02 4.485728000000e+01 0.000000000000e+00 7.215377000000e+02 1.728540000000e+02 2.163791000000e-01 0.000000000000e+00 0.000000000000e+00 1.000000000000e+00 2.745884000000e-03
P3: 7.215377000000e+02 0.000000000000e+00 6.095593000000e+02 -3.395242000000e+02 0.000000000000e+00 7.215377000000e+02 1.728540000000e+02 2.199936000000e+00 0.000000000000e+00 0.000000000000e+00 1.000000000000e+00 2.729905000000e-03
R_rect 9.999239000000e-01 9.837760000000e-03 -7.445048000000e-03 -9.869795000000e-03 9.999421000000e-01 -4.278459000000e-03 7.402527000000e-03 4.351614000000e-03 9.999631000000e-01
Tr_velo_cam 7.533745000000e-03 -9.999714000000e-01 -6.166020000000e-04 -4.069766000000e-03 1.480249000000e-02 7.280733000000e-04 -9.998902000000e-01 -7.631618000000e-02 9.998621000000e-01 7.523790000000e-03 1.480755000000e-02 -2.717806000000e-01
Tr_imu_velo 9.999976000000e-01 7.553071000000e-04 -2.035826000000e-03 -8.086759000000e-01 -7.854027000000e-04 9.998898000000e-01 -1.482298000000e-02 3.195559000000e-01 2.024406000000e-03 1.482454000000e-02 9.998881000000e-01 -7.997231000000e-01
"""


def test_parse_real_lines():
    rows = [kitti.KittiObject.from_line(line) for line in REAL_LINES]
    assert rows[0].type == "DontCare" and rows[0].track_id == -1
    van = rows[1]
    assert (van.frame, van.track_id, van.type, van.occluded) == (0, 0, "Van", 0)
    assert van.box == pytest.approx((296.744956, 161.752147, 455.226042, 292.372804))
    assert van.dimensions == pytest.approx((2.0, 1.823255, 4.433886))
    assert van.location == pytest.approx((-4.552284, 1.858523, 13.410495))
    assert van.score is None
    # writing reproduces the line exactly (6 decimals, integer levels)
    for line, row in zip(REAL_LINES, rows):
        assert row.to_line() == line


def test_label_round_trip(tmp_path):
    rows = [kitti.KittiObject.from_line(line) for line in REAL_LINES]
    rows.append(kitti.KittiObject(frame=2, track_id=5, type="Pedestrian", truncated=0.25, occluded=2, alpha=0.5,
                                  box=(1.5, 2.5, 30.25, 80.0), dimensions=(1.7, 0.6, 0.8),
                                  location=(1.0, 1.65, 20.0), rotation_y=0.25, score=0.875))
    path = tmp_path / "label_02" / "0003.txt"
    kitti.write_labels(path, rows)
    again = kitti.read_labels(path)
    assert again == sorted(rows, key=lambda o: (o.frame, o.track_id < 0, o.track_id))
    # and byte-identical when written again
    kitti.write_labels(tmp_path / "copy.txt", again)
    assert (tmp_path / "copy.txt").read_text() == path.read_text()


def test_calib_real_and_round_trip(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_text(REAL_CALIB)
    calib = kitti.read_calib(path)
    assert calib.P2[0, 0] == pytest.approx(721.5377)
    assert calib.P2[0, 3] == pytest.approx(44.85728)
    assert calib.R_rect[0, 1] == pytest.approx(9.83776e-03)
    assert calib.Tr_velo_cam.shape == (3, 4)
    kitti.write_calib(tmp_path / "again.txt", calib)
    again = kitti.read_calib(tmp_path / "again.txt")
    for a, b in zip(calib.P, again.P):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(calib.R_rect, again.R_rect)
    np.testing.assert_array_equal(calib.Tr_imu_velo, again.Tr_imu_velo)


@pytest.mark.parametrize("bad, message", [
    ("0 1 Car 0 0 0.1 1 2 3", "expected 17 or 18 fields"),
    ("0 1 Car 0 0 0.1 1 2 3 4 1.5 1.6 3.9 1 1 10 0.1 0.9 7", "expected 17 or 18 fields"),
    ("0 1 Plane 0 0 0.1 1 2 3 4 1.5 1.6 3.9 1 1 10 0.1", "unknown object type 'Plane'"),
    ("0 1 Car 0 0 abc 1 2 3 4 1.5 1.6 3.9 1 1 10 0.1", "non-numeric"),
    ("x 1 Car 0 0 0.1 1 2 3 4 1.5 1.6 3.9 1 1 10 0.1", "must be integers"),
    ("0 1 Car 0 7 0.1 1 2 3 4 1.5 1.6 3.9 1 1 10 0.1", "occluded must be"),
    ("0 1 Car 0 0 0.1 10 2 3 4 1.5 1.6 3.9 1 1 10 0.1", "x2 < x1"),
    ("0 -1 Car 0 0 0.1 1 2 3 4 1.5 1.6 3.9 1 1 10 0.1", "needs a track id"),
])
def test_bad_label_line_names_file_and_line(tmp_path, bad, message):
    path = tmp_path / "0007.txt"
    path.write_text(REAL_LINES[1] + "\n\n" + bad + "\n")
    with pytest.raises(kitti.KittiFormatError) as err:
        kitti.read_labels(path)
    assert f"{path}:3:" in str(err.value)
    assert message in str(err.value)
    assert err.value.line == 3


def test_bad_calib_names_file_and_line(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_text("P0: 1 2 3\n")
    with pytest.raises(kitti.KittiFormatError, match=r"calib.txt:1: P0: expected 12 numbers, got 3"):
        kitti.read_calib(path)
    path.write_text("R_rect 1 0 0 0 1 0 0 0 1\n")
    with pytest.raises(kitti.KittiFormatError, match="no P2 line"):
        kitti.read_calib(path)


def make_tiny_kitti(root, num_frames=10, archives=False):
    """A KITTI-layout folder with one sequence 0001: 8x6 images and a few tracks."""
    image_dir = (root / "data_tracking_image_2" / "training" if archives else root / "training") / "image_02" / "0001"
    label_dir = (root / "data_tracking_label_2" / "training" if archives else root / "training") / "label_02"
    calib_dir = (root / "data_tracking_calib" / "training" if archives else root / "training") / "calib"
    image_dir.mkdir(parents=True)
    for t in range(num_frames):
        image = np.full((6, 8, 3), t * 20, np.uint8)
        cv2.imwrite(str(image_dir / f"{t:06d}.png"), image)
    rows = []
    for t in range(num_frames):
        if t != 4:  # car 3 hidden in frame 4 (a one-frame label gap)
            rows.append(kitti.KittiObject(t, 3, "Car", 0, t % 3, 0.0, (1.0, 1.0, 4.0, 3.0)))
        rows.append(kitti.KittiObject(t, 8, "Pedestrian", 0, 0, 0.0, (5.0, 0.0, 6.0, 5.0)))
        rows.append(kitti.KittiObject(t, 9, "Van", 0, 0, 0.0, (0.0, 0.0, 2.0, 2.0)))
        rows.append(kitti.KittiObject(t, 10, "Cyclist", 0, 0, 0.0, (0.0, 0.0, 2.0, 2.0)))
        rows.append(kitti.KittiObject.dont_care(t, (6.0, 4.0, 8.0, 6.0)))
    kitti.write_labels(label_dir / "0001.txt", rows)
    calib_dir.mkdir(parents=True)
    (calib_dir / "0001.txt").write_text(REAL_CALIB)
    return rows


@pytest.mark.parametrize("archives", [False, True])
def test_sequence_annotations_and_ignore_regions(tmp_path, archives):
    make_tiny_kitti(tmp_path, archives=archives)
    assert kitti.list_sequences(tmp_path) == ["0001"]
    seq = kitti.load_sequence(tmp_path, "0001")
    assert seq.num_frames == 10
    assert seq.image(3)[0, 0].tolist() == [60, 60, 60]
    ann = seq.track_annotations()
    assert ann.track_ids.tolist() == [3, 8]                       # Car, Pedestrian kept
    assert ann.classes.tolist() == [kitti.DEFAULT_CLASSES.index("Car"), kitti.DEFAULT_CLASSES.index("Pedestrian")]
    assert not ann.present[4, 0] and ann.present[5, 0]            # the gap stays a gap
    assert ann.visibility[1, 0] == kitti.OCCLUSION_TO_VISIBILITY[1]
    assert ann.visibility[2, 0] == kitti.OCCLUSION_TO_VISIBILITY[2]
    np.testing.assert_array_equal(ann.boxes[0, 1], [5, 0, 6, 5])
    # Van and DontCare become ignore regions, Cyclist is dropped
    assert ann.ignore_boxes[0].shape == (2, 4)
    assert {tuple(b) for b in ann.ignore_boxes[0]} == {(0.0, 0.0, 2.0, 2.0), (6.0, 4.0, 8.0, 6.0)}


def test_half_split_protocol(tmp_path):
    make_tiny_kitti(tmp_path, num_frames=11)
    assert kitti.half_split_range(11, "train_half") == (0, 5)
    assert kitti.half_split_range(11, "val_half") == (5, 11)
    train = kitti.load_sequence(tmp_path, "0001", half="train_half")
    val = kitti.load_sequence(tmp_path, "0001", half="val_half")
    assert (train.num_frames, val.num_frames) == (5, 6)
    assert val.image(0)[0, 0, 0] == 100  # frame 5 of the sequence
    assert val.track_annotations().boxes.shape[0] == 6
    kitti.write_half_split_labels(tmp_path, tmp_path / "val_half")
    rows = kitti.read_labels(tmp_path / "val_half" / "label_02" / "0001.txt")
    assert min(r.frame for r in rows) == 0 and max(r.frame for r in rows) == 5
    assert (tmp_path / "val_half" / "evaluate_tracking.seqmap.val_half").read_text() == "0001 empty 000000 000006\n"


def test_labels_beyond_images_and_frame_gaps_are_errors(tmp_path):
    make_tiny_kitti(tmp_path, num_frames=10)
    image_dir = tmp_path / "training" / "image_02" / "0001"
    (image_dir / "000009.png").unlink()
    with pytest.raises(kitti.KittiFormatError, match="label for frame 9 but the sequence has 9 images"):
        kitti.load_sequence(tmp_path, "0001")
    (image_dir / "000003.png").rename(image_dir / "000009.png")
    with pytest.raises(kitti.KittiFormatError, match="000003.png"):
        kitti.load_sequence(tmp_path, "0001")


def test_label_gaps_and_statistics(tmp_path):
    make_tiny_kitti(tmp_path)
    stats = kitti.dataset_statistics(tmp_path)
    assert stats["label_gaps"]["count"] == 1 and stats["label_gaps"]["max_frames"] == 1
    assert stats["rows_per_type"]["DontCare"] == 10
    assert stats["sequences"] == 1 and stats["frames"] == 10


@pytest.mark.parametrize("spelling", ["Person", "Person_sitting", "PERSON_SITTING"])
def test_sitting_people_become_ignore_regions(tmp_path, spelling):
    """KITTI tracking labels spell a sitting person `Person`, other tools `Person_sitting`:
    either is an ignore region for training, never a pedestrian and never dropped."""
    make_tiny_kitti(tmp_path)
    path = tmp_path / "training" / "label_02" / "0001.txt"
    line = f"{{t}} 11 {spelling} 0 1 0.0 3.0 1.0 5.0 6.0 1.2 0.6 0.8 1.0 1.6 9.0 0.0\n"
    path.write_text(path.read_text() + "".join(line.format(t=t) for t in range(10)))
    ann = kitti.load_sequence(tmp_path, "0001").track_annotations()
    assert ann.track_ids.tolist() == [3, 8]                       # not a pedestrian track
    assert {tuple(b) for b in ann.ignore_boxes[0]} == {(0.0, 0.0, 2.0, 2.0), (6.0, 4.0, 8.0, 6.0),
                                                        (3.0, 1.0, 5.0, 6.0)}
