"""World 1 (LA-CATER-like): determinism, pixel-measured visibility and states on crafted
scenes, splits, and the presence of long occlusions."""
import json

import numpy as np
import pytest
from conftest import rounded_sha256

from ram_training.data import world_lacater as w1

TINY = w1.World1Config(width=96, height=72, num_frames=40)


def crafted_video(objects, num_frames=2, contained_by=None, config=None):
    """A hand-made scene. objects: list of (shape, size, height, positions (T,3) or (3,)),
    the first is the target. Camera static at the default pose."""
    cfg = config or w1.World1Config(width=160, height=120, num_frames=num_frames)
    n = len(objects)
    positions = np.zeros((num_frames, n, 3))
    for i, (_, _, _, pos) in enumerate(objects):
        positions[:, i] = np.broadcast_to(np.asarray(pos, dtype=np.float64), (num_frames, 3))
    camera = np.tile(np.array([0.0, 6.5, -10.0, 0.0, np.arctan2(6.5, 10.0)]), (num_frames, 1))
    return w1.World1Video(
        config=cfg, seed=[0], shapes=[o[0] for o in objects],
        colors=np.array([w1._GOLD] + [(0.2, 0.3, 0.8)] * (n - 1)),
        sizes=np.array([o[1] for o in objects], dtype=np.float64),
        heights=np.array([o[2] for o in objects], dtype=np.float64),
        specular=np.zeros(n), yaws=np.zeros(n), positions=positions, camera=camera,
        contained_by=np.full(num_frames, -1) if contained_by is None else np.asarray(contained_by))


TARGET = ("sphere", w1.TARGET_RADIUS, 2 * w1.TARGET_RADIUS, (0.0, 0.0, 0.0))


def test_target_alone_is_fully_visible():
    ann, _ = w1.annotate(crafted_video([TARGET]))
    assert ann.visibility[0, 0] == pytest.approx(1.0)
    assert ann.full_pixels[0, 0] > 50
    assert ann.states[0] == w1.VISIBLE


def test_cube_in_front_hides_target_and_true_box_is_kept():
    alone, _ = w1.annotate(crafted_video([TARGET]))
    # a large cube 1.5 m closer to the camera (camera looks along +z from z = -10)
    hidden, _ = w1.annotate(crafted_video([TARGET, ("cube", 0.6, 1.4, (0.0, 0.0, -1.5))]))
    assert hidden.visible_pixels[0, 0] == 0
    assert hidden.visibility[0, 0] == 0.0
    assert hidden.states[0] == w1.OCCLUDED
    # the true box of the hidden target is the unoccluded one
    np.testing.assert_array_equal(hidden.boxes[0, 0], alone.boxes[0, 0])
    # the cube itself is fully visible
    assert hidden.visibility[0, 1] == pytest.approx(1.0)


def test_partial_occlusion_gives_a_fraction_and_state_visible():
    ann, _ = w1.annotate(crafted_video([TARGET, ("cube", 0.3, 1.4, (0.45, 0.0, -1.5))]))
    assert 0.0 < ann.visibility[0, 0] < 1.0
    assert ann.states[0] == w1.VISIBLE
    assert ann.visibility[0, 0] == pytest.approx(ann.visible_pixels[0, 0] / ann.full_pixels[0, 0])


def test_object_behind_target_does_not_hide_it():
    ann, _ = w1.annotate(crafted_video([TARGET, ("cube", 0.6, 2.0, (0.0, 0.0, 1.0))]))
    assert ann.visibility[0, 0] == pytest.approx(1.0)
    assert ann.visibility[0, 1] < 1.0


def test_cone_over_target_is_contained_then_carried():
    T = 3
    cone_path = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.4, 0.0, 0.0]])
    video = crafted_video([("sphere", w1.TARGET_RADIUS, 0.6, cone_path),
                           ("cone", 0.72, 1.35, cone_path)], num_frames=T, contained_by=[1, 1, 1])
    ann, _ = w1.annotate(video)
    assert (ann.visible_pixels[:, 0] == 0).all(), "the smallest cone must swallow the target completely"
    assert ann.states.tolist() == [w1.CONTAINED, w1.CONTAINED, w1.CARRIED]


def test_cone_settling_onto_target_is_contained_not_carried():
    # the cone's last lowering step lands at the contained frame: vertical motion is not carrying
    cone_path = np.array([[0.0, 0.05, 0.0], [0.0, 0.0, 0.0]])
    target = ("sphere", w1.TARGET_RADIUS, 0.6, (0.0, 0.0, 0.0))
    video = crafted_video([target, ("cone", 0.72, 1.35, cone_path)], contained_by=[-1, 1])
    ann, _ = w1.annotate(video)
    assert ann.states[1] == w1.CONTAINED


def test_contained_relation_without_cover_is_not_reported_contained():
    # the relation says contained, but the pixels show the target: the rendering decides
    video = crafted_video([TARGET, ("cone", 0.72, 1.35, (2.0, 0.0, 0.0))], contained_by=[1, 1])
    ann, _ = w1.annotate(video)
    assert ann.states[0] == w1.VISIBLE


def test_same_seed_same_bytes_and_seeds_differ(tmp_path):
    for run in ("a", "b"):
        w1.generate_video(tmp_path / run, "train", 3, TINY, base_seed=5, frames="png")
    a = (tmp_path / "a" / "train" / "00003.npz").read_bytes()
    b = (tmp_path / "b" / "train" / "00003.npz").read_bytes()
    assert a == b
    frames_a = sorted((tmp_path / "a" / "train" / "frames" / "00003").iterdir())
    assert len(frames_a) == TINY.num_frames
    for fa in frames_a:
        assert fa.read_bytes() == (tmp_path / "b" / "train" / "frames" / "00003" / fa.name).read_bytes()
    w1.generate_video(tmp_path / "c", "train", 4, TINY, base_seed=5)
    assert (tmp_path / "c" / "train" / "00004.npz").read_bytes() != a


@pytest.mark.parametrize("moving, contained_changes, fingerprint", [
    (False, [61, 85, 181, 220], "5ef46d55ce9da714"), (True, [37, 258], "7297dc224356fe8c")])
def test_seed_gives_the_scene_existing_datasets_were_made_with(moving, contained_changes, fingerprint):
    """A seed is a dataset's name: the same seed must script the same video as it did when the
    datasets (and the models trained on them) were made, so every random draw stays in order."""
    video = w1.simulate(w1.World1Config(moving_camera=moving), w1.video_seed(0, "train", 7))
    assert video.shapes == ["sphere", "cube", "cube", "cylinder", "cube", "sphere", "cone", "cone", "cone"]
    assert np.flatnonzero(np.diff(video.contained_by)).tolist() == contained_changes
    assert rounded_sha256(video.positions, video.camera, video.colors, video.sizes, video.heights,
                          video.specular, video.yaws, video.contained_by) == fingerprint


def test_stored_video_rerenders_identically(tmp_path):
    video = w1.simulate(TINY, w1.video_seed(0, "val", 1))
    ann, images = w1.annotate(video, keep_images=True)
    w1.save_video(tmp_path / "v.npz", video, ann)
    loaded, loaded_ann = w1.load_video(tmp_path / "v.npz")
    np.testing.assert_array_equal(loaded_ann.states, ann.states)
    for t in (0, 17, TINY.num_frames - 1):
        np.testing.assert_array_equal(w1.render_frame(loaded, t).image, images[t])


def test_split_seeds_are_fixed_and_distinct():
    seeds = {tuple(w1.video_seed(0, s, i)) for s in w1.SPLITS for i in range(3)}
    assert len(seeds) == 9
    a = w1.simulate(TINY, w1.video_seed(0, "test", 0))
    b = w1.simulate(TINY, w1.video_seed(0, "train", 0))
    assert not np.array_equal(a.positions, b.positions) or a.shapes != b.shapes


def test_generate_dataset_writes_splits_and_stats(tmp_path):
    spec = w1.World1DatasetSpec(config=TINY, counts={"train": 2, "val": 1, "test": 1}, base_seed=1)
    summary = w1.generate_dataset(tmp_path, spec, workers=1)
    assert [len(w1.list_videos(tmp_path, s)) for s in w1.SPLITS] == [2, 1, 1]
    on_disk = json.loads((tmp_path / "world1.json").read_text())
    assert on_disk["all"]["frames"] == 4 * TINY.num_frames == summary["all"]["frames"]
    assert sum(on_disk["all"]["frames_per_state"].values()) == 4 * TINY.num_frames


def test_default_videos_have_all_states_and_long_occlusions():
    # default length and dynamics at a small resolution (visibility is resolution independent
    # up to rounding); three videos already show every state and occlusions > 2 s
    cfg = w1.World1Config(width=128, height=96)
    states, runs = [], []
    for i in range(3):
        ann, _ = w1.annotate(w1.simulate(cfg, w1.video_seed(0, "train", i)))
        states.append(ann.states)
        runs += w1.occlusion_runs(ann.states)
    counts = np.bincount(np.concatenate(states), minlength=4)
    assert (counts > 0).all(), counts
    assert max(runs) > 2 * cfg.fps


def test_moving_camera_moves_and_keeps_target_in_view():
    cfg = w1.World1Config(width=96, height=72, num_frames=120, moving_camera=True)
    video = w1.simulate(cfg, w1.video_seed(0, "train", 0))
    assert np.ptp(video.camera[:, 3]) > 0.05  # the camera turns
    ann, _ = w1.annotate(video)
    assert (ann.full_pixels[:, 0] > 0).all()


def test_occlusion_runs():
    s = np.array([0, 1, 1, 0, 2, 2, 3, 0, 1])
    assert w1.occlusion_runs(s) == [2, 3, 1]


def test_cli_world1_and_stats(tmp_path, capsys):
    from ram_training.data import cli
    assert cli.main(["world1", str(tmp_path), "--train", "1", "--val", "1", "--test", "0", "--num-frames", "20",
                     "--width", "64", "--height", "48", "--workers", "1", "--moving"]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 40
    assert cli.main(["stats", str(tmp_path)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["train"]["frames"] == 20 and stats["val"]["frames"] == 20 and stats["test"]["videos"] == 0
