"""The evaluation report (REPORT.md + plots) from a hand-made results dict, its error messages, the
CLI, and the belief filmstrip / GIF of the shipped World 1 model on a short World 1 video."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ram_training.evaluation import report as rep

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "models" / "world1_ram.safetensors"


def hand_made():
    return {
        "commit": "abc1234",
        "datasets": {
            "world1": {"methods": {
                "ram": {"miou_visible": 0.9171, "miou_occluded": 0.793, "miou_contained": 0.8224,
                        "miou_carried": 0.633, "videos_carried": 17, "frames_carried": 1234},
                "last_seen": {"miou_visible": 0.89, "miou_occluded": 0.818, "miou_contained": 0.69,
                              "miou_carried": None, "videos_carried": 0, "frames_carried": 0},
                "nearest_occluder": {"miou_visible": 0.901, "miou_occluded": 0.47,
                                     "miou_contained": 0.554, "miou_carried": 0.559}}},
            "world2": {
                "methods": {
                    "ram": {"car": {"HOTA": 79.5, "DetA": 77.25, "AssA": 81.9, "MOTA": 88.12,
                                    "IDF1": 90.4, "TrackAP": 75.7, "IDSW": 12},
                            "pedestrian": {"HOTA": 52.7, "DetA": 50.0, "AssA": 55.6, "MOTA": 60.0,
                                           "IDF1": 61.0, "TrackAP": 44.4, "IDSW": 30}},
                    "sort": {"car": {"HOTA": 70.1, "DetA": 76.0, "AssA": 64.7, "MOTA": 85.0,
                                     "IDF1": 80.0, "TrackAP": 64.4, "IDSW": 40},
                             "pedestrian": {"HOTA": 45.0, "DetA": 49.0, "AssA": 41.3, "MOTA": 55.5,
                                            "IDF1": 52.0, "TrackAP": None, "IDSW": 77}}},
                "occluded_localization_px": {"ram": 12.34, "sort": 31.5}},
        },
        "occlusion_errors": [
            {"dataset": "world2", "method": "ram", "occlusion_length": 1, "error_px": 2.0},
            {"dataset": "world2", "method": "ram", "occlusion_length": 1, "error_px": 4.0},
            {"dataset": "world2", "method": "ram", "occlusion_length": 12, "error_px": 10.0},
            {"dataset": "world2", "method": "ram", "occlusion_length": 14, "error_px": 20.0},
            {"dataset": "world2", "method": "ram", "occlusion_length": 15, "error_px": 60.0},
            {"dataset": "world2", "method": "sort", "occlusion_length": 12, "error_px": None},
            {"dataset": "world2", "method": "sort", "occlusion_length": 3, "error_px": 7.5},
            {"dataset": "world1", "method": "ram", "occlusion_length": 200, "error_px": 33.3},
        ],
        "timing": {"eval_s": 123.4},
    }


def decode_png(path):
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"{path} does not decode as an image"
    return image


def test_report_tables_hold_every_number_and_the_plots_decode(tmp_path):
    path = rep.write_report(hand_made(), tmp_path / "eval")
    assert path == tmp_path / "eval" / "REPORT.md"
    md = path.read_text()
    assert "abc1234" in md
    # headline tables, numbers formatted as shown, None as n/a
    assert "| ram | 0.917 | 0.793 | 0.822 | 0.633 |" in md
    assert "| last_seen | 0.890 | 0.818 | 0.690 | n/a |" in md
    assert "| ram | car | 79.50 | 77.25 | 81.90 | 88.12 | 90.40 | 75.70 |" in md
    assert "| sort | pedestrian | 45.00 | 49.00 | 41.30 | 55.50 | 52.00 | n/a |" in md
    assert "| ram | 12.34 |" in md and "| sort | 31.50 |" in md
    # fields beyond the headline: all of them, per method
    assert "| IDSW | 12 | 40 |" in md and "| IDSW | 30 | 77 |" in md
    assert "| frames_carried | 1234 | 0 | n/a |" in md
    # occlusion-length bins, by hand: ram 1 -> mean 3, median 3; 9-16 -> (10+20+60)/3 = 30, median 20
    assert "| world2 | ram | 1 | 2 | 3.000 | 3.000 | 0 |" in md
    assert "| world2 | ram | 9-16 | 3 | 30.00 | 20.00 | 0 |" in md
    assert "| world2 | sort | 9-16 | 1 | n/a | n/a | 1 |" in md
    assert "| world1 | ram | 65+ | 1 | 33.30 | 33.30 | 0 |" in md
    # a section the report does not know is still shown
    assert "| timing.eval_s | 123.40 |" in md
    # every number of the datasets appears in the report
    for _, value in rep._leaves(hand_made()["datasets"]):
        assert rep._fmt(value) in md
    # plots: exist, decode, are linked from the report
    links = [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]
    assert sorted(links) == ["occlusion_error.png", "world1_miou.png", "world2_tracking.png"]
    for name in links:
        image = decode_png(tmp_path / "eval" / name)
        assert image.shape[0] > 200 and image.shape[1] > 400
    # nothing but the report and its plots (atomic writes leave no temp files)
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == sorted(["REPORT.md", *links])


def test_plots_show_the_values(tmp_path):
    """The bar chart is drawn from the numbers: changing one mIoU changes the picture."""
    a = hand_made()
    b = hand_made()
    b["datasets"]["world1"]["methods"]["ram"]["miou_carried"] = 0.05
    rep.write_report(a, tmp_path / "a")
    rep.write_report(b, tmp_path / "b")
    pa, pb = decode_png(tmp_path / "a" / "world1_miou.png"), decode_png(tmp_path / "b" / "world1_miou.png")
    assert pa.shape == pb.shape and np.any(pa != pb)
    assert np.array_equal(decode_png(tmp_path / "a" / "world2_tracking.png"),
                          decode_png(tmp_path / "b" / "world2_tracking.png"))


@pytest.mark.parametrize("results, expected", [
    ({}, "No dataset results"),
    ({"commit": "x"}, "No dataset results"),
    ({"datasets": {"world2": {"occluded_localization_px": {"ram": 5.0}}}}, "| ram | 5.000 |"),
    ({"datasets": {"world1": {"methods": {"ram": {"miou_visible": 0.5}}}}}, "| ram | 0.500 | n/a | n/a | n/a |"),
    ({"occlusion_errors": [{"method": "ram", "occlusion_length": 2, "error_px": 1.5}]},
     "| all | ram | 2 | 1 | 1.500 | 1.500 | 0 |"),
])
def test_missing_sections_are_tolerated(tmp_path, results, expected):
    md = rep.write_report(results, tmp_path).read_text()
    assert expected in md


@pytest.mark.parametrize("results, message", [
    ([], "results must be an object"),
    ({"datasets": {"world2": {"methods": {"ram": {"car": {"HOTA": "high"}}}}}},
     r"datasets\.world2\.methods\.ram\.car\.HOTA must be a number"),
    ({"datasets": {"world2": {"methods": {"ram": {"car": 3}}}}}, r"datasets\.world2\.methods\.ram is neither"),
    ({"datasets": {"w": {"methods": {"a": {"miou_visible": 0.5}, "b": {"car": {"HOTA": 1}}}}}}, "mixes"),
    ({"occlusion_errors": [{"method": "ram", "occlusion_length": 2}]}, r"occlusion_errors\[0\] has no 'error_px'"),
    ({"occlusion_errors": [{"method": "ram", "occlusion_length": 0, "error_px": 1}]},
     r"occlusion_errors\[0\]\.occlusion_length must be an integer >= 1"),
    ({"occlusion_errors": [{"method": "ram", "occlusion_length": 3, "error_px": -1}]}, "must be >= 0"),
])
def test_bad_results_name_the_problem(tmp_path, results, message):
    with pytest.raises(rep.ResultsError, match=message):
        rep.write_report(results, tmp_path)


def test_cli(tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(hand_made()))
    assert rep.main([str(results), "--out", str(tmp_path / "eval")]) == 0
    assert (tmp_path / "eval" / "REPORT.md").is_file()
    assert rep.main([str(tmp_path / "missing.json"), "--out", str(tmp_path / "x")]) == 2
    assert "missing.json does not exist" in capsys.readouterr().err
    results.write_text("{not json")
    assert rep.main([str(results), "--out", str(tmp_path / "x")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------
# Belief filmstrip


@pytest.fixture(scope="module")
def hidden_video(tmp_path_factory):
    """An 80-frame World 1 test video at full size (320x240) in which the golden target is
    visible for 42 frames, then occluded and contained by a cone (frames 42-68), then seen."""
    from ram_training.data import world_lacater as w1
    root = tmp_path_factory.mktemp("w1hidden")
    spec = w1.World1DatasetSpec(config=w1.World1Config(num_frames=80),
                                counts={"train": 0, "val": 0, "test": 1}, base_seed=3)
    w1.generate_dataset(root, spec, workers=1)
    return w1.list_videos(root, "test")[0]


def test_belief_filmstrip_follows_the_longest_hidden_stretch(hidden_video, tmp_path):
    from PIL import Image

    from ram_training.data import world_lacater as w1
    _, ann = w1.load_video(hidden_video)
    hidden = np.flatnonzero(ann.states != 0)
    runs = rep._longest_run(ann.states != 0)
    assert runs == (42, 68) and set(range(42, 69)) <= set(hidden.tolist())  # the video is as described
    info = rep.belief_filmstrip(MODEL, hidden_video, tmp_path / "strip.png", tmp_path / "belief.gif")
    assert info["hidden"] == (42, 68)
    # 12 tiles from 6 frames before to 6 after the stretch, 4 per row, each 320x240
    assert info["frames"][0] == 36 and info["frames"][-1] == 74 and len(info["frames"]) == 12
    strip = decode_png(tmp_path / "strip.png")
    assert strip.shape == (3 * 240, 4 * 320, 3)
    # the GIF: every frame of the stretch and its context
    gif = Image.open(tmp_path / "belief.gif")
    assert gif.n_frames == len(info["gif_frames"]) == 74 - 36 + 1
    assert gif.size == (320, 240)
    # the shipped model keeps a walker on the hidden target: its belief is drawn on every tile
    # inside the hidden stretch (the heatmap the figure is about)
    inside = [b for t, b in zip(info["frames"], info["target_belief"]) if 42 <= t <= 68]
    assert inside and all(inside)


def test_belief_filmstrip_on_bare_frames_uses_the_trackers_occlusion(hidden_video, tmp_path):
    from ram_training.data.clips import World1VideoSource
    video = World1VideoSource(hidden_video)
    frames = [video.image(t) for t in range(30, 60)]       # visible until 41, hidden from 42
    info = rep.belief_filmstrip(MODEL, frames, tmp_path / "s.png", tmp_path / "s.gif", num_tiles=8)
    first, last = info["hidden"]
    assert first <= 42 - 30 <= last and last == 29          # the stretch the tracker reports
    assert decode_png(tmp_path / "s.png").shape == (2 * 240, 4 * 320, 3)


def test_belief_filmstrip_needs_a_hidden_target(world1, tmp_path):
    # the conftest World 1 fixture's first training video: the target is visible throughout
    from ram_training.data import world_lacater as w1
    path = w1.list_videos(world1, "train")[0]
    assert (w1.load_video(path)[1].states == 0).all()
    with pytest.raises(ValueError, match="never hidden"):
        rep.belief_filmstrip(MODEL, path, tmp_path / "s.png", tmp_path / "s.gif")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        rep.belief_filmstrip(MODEL, tmp_path / "nope.npz", tmp_path / "s.png", tmp_path / "s.gif")
    assert not (tmp_path / "s.png").exists()
