"""World 2 (KITTI-like street): KITTI layout, determinism, labels agree with the pixels,
crafted occlusion behind a parked van, and KITTI round trip of the written files."""
import json

import cv2
import numpy as np
import pytest
from conftest import rounded_sha256

from ram_training.data import kitti
from ram_training.data import world_street as w2

SMALL = w2.World2Config(width=310, height=94, min_frames=12, max_frames=12)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("world2")
    summary = w2.generate_dataset(root, w2.World2DatasetSpec(config=SMALL, num_sequences=2, base_seed=3), workers=1)
    return root, summary


def test_kitti_layout(small_dataset):
    root, summary = small_dataset
    training = root / "training"
    for name in ("0000", "0001"):
        images = sorted((training / "image_02" / name).iterdir())
        assert [p.name for p in images] == [f"{t:06d}.png" for t in range(12)]
        assert cv2.imread(str(images[0])).shape == (94, 310, 3)
        for folder in ("label_02", "hidden_02", "calib"):
            assert (training / folder / f"{name}.txt").is_file()
    seqmap = (root / "evaluate_tracking.seqmap.training").read_text().splitlines()
    assert seqmap == ["0000 empty 000000 000012", "0001 empty 000000 000012"]
    meta = json.loads((root / "world2.json").read_text())
    assert meta["frames"] == 24 and meta["labels"] > 0
    calib = kitti.read_calib(training / "calib" / "0000.txt")
    assert calib.P2[0, 0] == pytest.approx(w2.KITTI_FOCAL * 310 / 1242)


def test_same_seed_same_bytes(tmp_path):
    for run in ("a", "b"):
        w2.generate_sequence(tmp_path / run, 4, SMALL, base_seed=9)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 12 + 3
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    w2.generate_sequence(tmp_path / "c", 5, SMALL, base_seed=9)
    assert (tmp_path / "c" / "training" / "label_02" / "0005.txt").read_text() != \
        (tmp_path / "a" / "training" / "label_02" / "0004.txt").read_text()


def test_seed_gives_the_street_existing_datasets_were_made_with():
    """A seed is a dataset's name: the same seed must script the same street as it did when the
    datasets (and the models trained on them) were made, so every random draw stays in order."""
    seq = w2.simulate(w2.World2Config(), w2.sequence_seed(0, 3))
    kinds = [o.kind for o in seq.objects]
    assert (seq.num_frames, len(seq.objects), len(seq.scenery), kinds.count("Pedestrian")) == (126, 74, 89, 20)
    assert rounded_sha256(seq.ego_z, *[np.concatenate([o.x, o.z, o.dims, [o.yaw], np.ravel(o.colors)])
                                       for o in seq.objects + seq.scenery]) == "efe42dbf984960d3"


def test_labels_agree_with_rendered_pixels():
    seq = w2.simulate(SMALL, w2.sequence_seed(3, 0))
    labels, hidden, stats = w2.annotate(seq)
    assert labels and stats["tracks"] > 0
    object_of = stats["track_objects"]
    min_pixels = max(1, round(SMALL.label_min_visible_pixels * SMALL.width * SMALL.height / (1242 * 375)))
    for t in (0, 6, 11):
        frame = w2.render_frame(seq, t)
        vis = frame.visibility()
        for row in labels:
            if row.frame != t or row.type == "DontCare":
                continue
            oid = object_of[row.track_id] + 1
            assert frame.visible_pixels[oid] >= min_pixels and vis[oid] >= SMALL.label_min_visibility
            np.testing.assert_allclose(row.box, frame.boxes[oid])
            expected_level = 0 if vis[oid] >= 0.8 else (1 if vis[oid] >= 0.4 else 2)
            assert row.occluded == expected_level
            assert seq.objects[oid - 1].kind == row.type
        for row in hidden:
            if row.frame == t:
                oid = object_of[row.track_id] + 1
                assert frame.visible_pixels[oid] < min_pixels or vis[oid] < SMALL.label_min_visibility
                assert row.occluded == 3


def test_pedestrian_behind_parked_van_is_hidden_then_labelled_again():
    T = 50
    cfg = w2.World2Config(width=310, height=94, min_frames=T, max_frames=T)
    const = lambda v: np.full(T, float(v))  # noqa: E731
    van = w2.StreetObject("Van", (2.0, 2.4, 5.2), [(0.8, 0.8, 0.8), (0.1, 0.1, 0.1), (0.2, 0.2, 0.3)],
                          const(w2.PARKING_X), const(20.0), 0.0)
    walker = w2.StreetObject("Pedestrian", (0.6, 1.75, 0.6), [(0.9, 0.1, 0.1), (0.1, 0.1, 0.3), (0.8, 0.6, 0.5)],
                             const(11.0), np.linspace(12.0, 46.0, T), 0.0)  # hidden at z ~ 22-38 m
    seq = w2.StreetSequence(config=cfg, seed=[0], ego_z=np.zeros(T), objects=[van, walker], scenery=[])
    labels, hidden, stats = w2.annotate(seq)
    walker_track = [tid for tid, oid in stats["track_objects"].items() if oid == 1][0]
    labelled = sorted(r.frame for r in labels if r.track_id == walker_track)
    hidden_frames = sorted(r.frame for r in hidden if r.track_id == walker_track)
    assert hidden_frames, "the van must hide the pedestrian completely for a while"
    assert labelled[0] < hidden_frames[0] and labelled[-1] > hidden_frames[-1]
    assert stats["occlusion_runs"] == [len(hidden_frames)]
    # the hidden gap shows in the labels exactly like a real KITTI full occlusion
    assert kitti.label_gap_lengths(labels) == [len(hidden_frames)]


def test_written_files_round_trip(small_dataset):
    root, _ = small_dataset
    for folder in ("label_02", "hidden_02"):
        path = root / "training" / folder / "0000.txt"
        rows = kitti.read_labels(path)
        assert rows
        copy = path.parent / "copy.txt"
        kitti.write_labels(copy, rows)
        assert copy.read_text() == path.read_text()
        copy.unlink()
    seq = kitti.load_sequence(root, "0000")
    assert seq.num_frames == 12 and seq.hidden
    ann = seq.track_annotations(include_hidden=True)
    hidden_entries = ann.present & (ann.visibility == 0)
    assert hidden_entries.sum() == sum(1 for r in seq.hidden if r.type in kitti.DEFAULT_CLASSES)


def test_street_has_all_classes_and_occlusion_levels(small_dataset):
    root, _ = small_dataset
    stats = kitti.dataset_statistics(root)
    for kind in ("Car", "Pedestrian", "DontCare"):
        assert stats["rows_per_type"].get(kind, 0) > 0, kind
    levels = stats["rows_per_occluded_level"]
    assert levels["0"] > 0 and levels["1"] + levels["2"] > 0


def test_cli_world2_stats_half_split_and_bag(tmp_path, capsys):
    from ram_training.data import cli
    out = tmp_path / "w2"
    assert cli.main(["world2", str(out), "--sequences", "1", "--min-frames", "6", "--max-frames", "6",
                     "--width", "124", "--height", "38", "--workers", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 6
    assert cli.main(["stats", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 6
    assert cli.main(["half-split", str(out), str(tmp_path / "val")]) == 0
    capsys.readouterr()
    assert (tmp_path / "val" / "evaluate_tracking.seqmap.val_half").read_text() == "0000 empty 000000 000003\n"
    assert cli.main(["to-bag", str(out), "0000", str(tmp_path / "bag"), "--storage", "sqlite3"]) == 0
    capsys.readouterr()
    assert cli.main(["read-bag", str(tmp_path / "bag")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 6 and report["rate_hz"] == pytest.approx(10.0)
