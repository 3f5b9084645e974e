"""Clip sampling, reverse padding, the INTERFACES.md clip dict, collate, and both worlds
through the Dataset."""
import numpy as np
import pytest
import torch

from ram_training.data import clips, world_lacater as w1, world_street as w2
from ram_training.data.annotations import TrackAnnotations


class FakeVideo(clips.VideoSource):
    """Frame t is filled with value t; track 0 everywhere, track 1 only in frames 5-7."""

    class_names = ("a", "b")

    def __init__(self, num_frames=10, height=8, width=12):
        self.name = "fake"
        self.height, self.width = height, width
        K = 2
        boxes = np.zeros((num_frames, K, 4), np.float32)
        boxes[:, 0] = [1, 2, 5, 6]
        boxes[:, 1] = [6, 0, 12, 8]
        present = np.zeros((num_frames, K), bool)
        present[:, 0] = True
        present[5:8, 1] = True
        visibility = np.where(present, 1.0, 0.0).astype(np.float32)
        visibility[3:4, 0] = 0.0  # hidden in frame 3 (when the video has one)
        ignore = [np.zeros((t % 3, 4), np.float32) + t for t in range(num_frames)]
        self.annotations = TrackAnnotations(track_ids=np.array([7, 9]), classes=np.array([0, 1]),
                                            boxes=boxes, present=present, visibility=visibility,
                                            ignore_boxes=ignore)

    def image(self, t):
        return np.full((self.height, self.width, 3), t, np.uint8)


def test_pingpong_reverse_padding():
    assert clips.pingpong_indices(5, 0, 12, 1).tolist() == [0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3]
    assert clips.pingpong_indices(5, 1, 6, 2).tolist() == [1, 3, 3, 1, 1, 3]
    assert clips.pingpong_indices(20, 4, 5, 2).tolist() == [4, 6, 8, 10, 12]
    assert clips.pingpong_indices(1, 0, 3, 2).tolist() == [0, 0, 0]


def test_make_clip_matches_interfaces():
    video = FakeVideo()
    clip = clips.make_clip(video, np.array([2, 3, 4]))
    assert clip["images"].shape == (3, 3, 8, 12) and clip["images"].dtype == torch.float32
    assert torch.allclose(clip["images"][1], torch.full((3, 8, 12), 3 / 255.0))
    # only track 0 occurs in frames 2-4
    assert clip["track_ids"].tolist() == [7] and clip["classes"].tolist() == [0]
    assert clip["boxes"].shape == (3, 1, 4) and clip["boxes"].dtype == torch.float32
    assert clip["present"].dtype == torch.bool and clip["present"].all()
    assert clip["visibility"][:, 0].tolist() == [1.0, 0.0, 1.0]
    assert clip["ignore_boxes"].shape == (3, 2, 4)
    assert clip["ignore_valid"].tolist() == [[True, True], [False, False], [True, False]]
    assert clip["frame_index"].tolist() == [2, 3, 4]


def test_resize_scales_boxes_and_ignore_regions():
    clip = clips.make_clip(FakeVideo(), np.array([5, 6]), image_size=(24, 4))
    assert clip["images"].shape == (2, 3, 4, 24)
    np.testing.assert_allclose(clip["boxes"][0, 0].numpy(), [2, 1, 10, 3])
    np.testing.assert_allclose(clip["ignore_boxes"][0, 0].numpy(), [10, 2.5, 10, 2.5])


def test_collate_pads_with_minus_one():
    video = FakeVideo()
    batch = clips.collate_clips([clips.make_clip(video, np.array([0, 1])), clips.make_clip(video, np.array([5, 6]))])
    assert batch["images"].shape == (2, 2, 3, 8, 12)
    assert batch["boxes"].shape == (2, 2, 2, 4)
    assert batch["classes"].tolist() == [[0, -1], [0, 1]]
    assert batch["track_ids"].tolist() == [[7, -1], [7, 9]]
    assert not batch["present"][0, :, 1].any()
    assert batch["ignore_boxes"].shape == (2, 2, 2, 4)
    assert batch["video_index"].shape == (2,)


def test_random_sampling_is_reproducible_and_uses_strides_1_and_2():
    videos = [FakeVideo(10), FakeVideo(30)]
    config = clips.ClipConfig(clip_length=4)
    a = clips.ClipDataset(videos, config, samples_per_epoch=40, seed=1)
    b = clips.ClipDataset(videos, config, samples_per_epoch=40, seed=1)
    draws_a = [a.sample_frames(i) for i in range(40)]
    assert all(va == vb and (fa == fb).all() for (va, fa), (vb, fb) in zip(draws_a, [b.sample_frames(i) for i in range(40)]))
    steps = {int(abs(np.diff(f)).max()) for _, f in draws_a}
    assert steps == {1, 2}
    a.set_epoch(1)
    assert any((fa != a.sample_frames(i)[1]).any() or va != a.sample_frames(i)[0] for i, (va, fa) in enumerate(draws_a))
    with pytest.raises(IndexError):
        a[40]


def test_sequential_windows_cover_every_frame():
    videos = [FakeVideo(10), FakeVideo(3)]
    ds = clips.ClipDataset(videos, clips.ClipConfig(clip_length=4), mode="sequential")
    covered = {0: set(), 1: set()}
    for i in range(len(ds)):
        vi, frames = ds.sample_frames(i)
        assert len(frames) == 4
        covered[vi] |= set(frames.tolist())
    assert covered == {0: set(range(10)), 1: {0, 1, 2}}


def test_clip_has_occlusion():
    present = np.ones((5, 1), bool)
    assert clips.clip_has_occlusion(present, np.array([[1.0], [0.0], [0.0], [1.0], [1.0]]))
    assert not clips.clip_has_occlusion(present, np.array([[1.0], [1.0], [0.0], [0.0], [0.0]]))


@pytest.fixture(scope="module")
def world1_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("w1")
    cfg = w1.World1Config(width=64, height=48, num_frames=120)
    w1.generate_dataset(root, w1.World1DatasetSpec(config=cfg, counts={"train": 2, "val": 0, "test": 0}), workers=1)
    return root


def test_world1_clips(world1_root):
    videos = clips.world1_videos(world1_root, "train")
    assert len(videos) == 2
    ds = clips.ClipDataset(videos, clips.ClipConfig(clip_length=70, require_occlusion=True), samples_per_epoch=3)
    clip = ds[0]
    assert clip["images"].shape == (70, 3, 48, 64)
    assert clip["target_state"].shape == (70,)
    # the target (class 0) is in every clip, with its true box even while hidden
    k = int((clip["classes"] == 0).nonzero()[0, 0])
    assert clip["present"][:, k].all()
    hidden = clip["visibility"][:, k] == 0
    assert hidden.any(), "require_occlusion must give a clip in which the target disappears"
    assert (clip["target_state"][hidden] != w1.VISIBLE).all()
    assert ((clip["boxes"][:, k, 2] - clip["boxes"][:, k, 0]) > 0).all()
    # frames are the rendered frames
    vi, frames = ds.sample_frames(0)
    rendered = w1.render_frame(videos[vi].video, int(frames[5])).image
    assert torch.equal(clip["images"][5], torch.from_numpy(rendered).permute(2, 0, 1).float() / 255)


def test_world2_clips_through_dataloader(tmp_path):
    cfg = w2.World2Config(width=124, height=38, min_frames=8, max_frames=8)
    w2.generate_dataset(tmp_path, w2.World2DatasetSpec(config=cfg, num_sequences=2), workers=1)
    videos = clips.kitti_videos(tmp_path, half="train_half")
    assert [v.num_frames for v in videos] == [4, 4]
    ds = clips.ClipDataset(videos, clips.ClipConfig(clip_length=6, image_size=(64, 20)), samples_per_epoch=4)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=clips.collate_clips)
    batch = next(iter(loader))
    assert batch["images"].shape == (2, 6, 3, 20, 64)
    K = batch["classes"].shape[1]
    assert batch["boxes"].shape == (2, 6, K, 4) and batch["present"].shape == (2, 6, K)
    assert set(batch["classes"].unique().tolist()) <= {-1, 0, 1}
    assert (batch["boxes"][..., 2] <= 64 + 1e-3).all()


class LongOcclusionVideo(FakeVideo):
    """300 frames; track 0 hidden in frames 100-149 (a 50-frame occlusion), track 1 hidden in
    frames 200-202 (3 frames): long runs are rare among runs, but hold most hidden frames."""

    def __init__(self):
        super().__init__(num_frames=300)
        vis = self.annotations.visibility
        vis[:] = 1.0
        self.annotations.present[:] = True
        vis[100:150, 0] = 0.0
        vis[200:203, 1] = 0.0


def ends_inside(video, frames, track, first, last):
    """The clip samples the track visible before `first`, hidden through the run, visible after."""
    vis = video.annotations.visibility[frames, track] > 0.15
    inside = (frames >= first) & (frames <= last)
    before, after = frames < first, frames > last
    return bool(vis[before].any() and (~vis[inside]).all() and inside.any() and vis[after].any()
                and vis[np.flatnonzero(after)[0]])


def test_occlusion_sampler_supervises_long_occlusions():
    """A 50-frame occlusion cannot end inside a 16-frame clip at stride 1 or 2: the uniform
    sampler (with require_occlusion) never supervises it, the occlusion sampler draws it in
    proportion to its length with a longer stride, beginning and end inside the clip."""
    video = LongOcclusionVideo()
    assert [(r.track, r.first, r.last) for r in clips.hidden_runs(video.annotations.present,
            video.annotations.visibility, 0.15)] == [(0, 100, 149), (1, 200, 202)]
    uniform = clips.ClipDataset([video], clips.ClipConfig(clip_length=16, require_occlusion=True), samples_per_epoch=200)
    assert not any(ends_inside(video, uniform.sample_frames(i)[1], 0, 100, 149) for i in range(200))
    focused = clips.ClipDataset([video], clips.ClipConfig(clip_length=16, sampler="occlusion", max_stride=4),
                                samples_per_epoch=200)
    long_runs = short_runs = 0
    for i in range(200):
        frames = focused.sample_frames(i)[1]
        long_runs += ends_inside(video, frames, 0, 100, 149)
        short_runs += ends_inside(video, frames, 1, 200, 202)
    assert long_runs + short_runs == 200                   # every clip holds a whole hidden run
    assert 150 < long_runs < 200 and short_runs > 0        # drawn ~50:3, by hidden frames
    # a run longer than max_stride * (T - 1) - 1 frames cannot fit and is left out
    with pytest.raises(ValueError, match="no hidden run"):
        clips.ClipDataset([video], clips.ClipConfig(clip_length=4, sampler="occlusion", max_stride=1))
