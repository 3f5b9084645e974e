"""Targets and losses (ram_training.targets / ram_training.losses) on hand-built clips."""
import pytest
import torch

from ram_tracker import walk
from ram_tracker.model import ModelConfig, build_model
from ram_training.losses import LossConfig, compute_losses, ram_losses, smoothing_mask
from ram_training.targets import build_targets


H, W = 64, 64                       # stride 4 -> 16x16 maps; unpooled nodes 16x16, stride 4 px
GRID = walk.NodeGrid(16, 16, 4.0)
WALK = walk.WalkSettings()         # local window r = 0.2 (R = 3 nodes on this grid), tau 0.1


def make_clip(tracks, T, classes=None):
    """tracks: list (objects) of list (frames) of (x1, y1, x2, y2, visibility) or None (absent)."""
    K = len(tracks)
    clip = {"images": torch.rand(1, T, 3, H, W), "boxes": torch.zeros(1, T, K, 4),
            "present": torch.zeros(1, T, K, dtype=torch.bool), "visibility": torch.zeros(1, T, K),
            "classes": torch.tensor([classes or [0] * K]).long().reshape(1, K),
            "track_ids": torch.arange(K).view(1, K)}
    for k, frames in enumerate(tracks):
        for t, f in enumerate(frames):
            if f is not None:
                clip["boxes"][0, t, k] = torch.tensor(f[:4])
                clip["visibility"][0, t, k] = f[4]
                clip["present"][0, t, k] = True
    return clip


def box_at(cx, cy, vis=1.0, s=8):
    return (cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2, vis)


def test_detection_targets_and_label_hygiene():
    clip = make_clip([[box_at(18, 22)], [box_at(48, 40, vis=0.1)], [box_at(40, 10, vis=0.0)]], T=1, classes=[1, 0, 0])
    tg = build_targets(clip, 2, GRID, LossConfig(), WALK)
    # visible object: peak 1 at its stride-4 centre cell (4, 5), class channel 1, sub-pixel offset
    assert tg["hm"][0, 0, 1, 5, 4] == 1 and tg["hm"][0, 0, 0].max() == 0
    assert tg["ind"][0, 0, 0] == 5 * 16 + 4
    assert torch.allclose(tg["reg"][0, 0, 0], torch.tensor([0.5, 0.5]))
    assert torch.allclose(tg["wh"][0, 0, 0], torch.tensor([8.0, 8.0]))             # input pixels
    # 0.05 < visibility <= 0.15: ignore region, no regression label; invisible: nothing in RAM
    assert tg["hm_weight"][0, 0, 0, 10, 12] == 0 and tg["hm_weight"][0, 0, 1, 10, 12] == 1
    assert tg["reg_mask"][0, 0].tolist() == [True, False, False]
    # dataset ignore regions (KITTI DontCare): no heatmap loss inside, any class
    clip["ignore_boxes"] = torch.tensor([[[[40.0, 40.0, 60.0, 60.0], [0, 0, 0, 0]]]])
    clip["ignore_valid"] = torch.tensor([[[True, False]]])
    tg = build_targets(clip, 2, GRID, LossConfig(), WALK)
    assert (tg["hm_weight"][0, 0, :, 12, 12] == 0).all() and (tg["hm_weight"][0, 0, :, 2, 2] == 1).all()
    # supervised-invisible baseline: the hidden object becomes a heavy positive
    tg = build_targets(clip, 2, GRID, LossConfig(variant="supervised_invisible"), WALK)
    assert tg["hm"][0, 0, 0, 2, 10] == 1 and tg["hm_weight"][0, 0, 0, 2, 10] == 20
    assert tg["reg_mask"][0, 0].tolist() == [True, False, True] and not tg["walk_valid"].any()


def test_walk_labels_occlusion_weights_and_late_start():
    hidden = box_at(30, 30, vis=0.0)
    a = [box_at(20, 30), box_at(24, 30), hidden, hidden, box_at(36, 30)]
    b = [None, None, box_at(50, 50), box_at(50, 46), box_at(50, 42)]            # appears late
    tg = build_targets(make_clip([a, b], T=5), 1, GRID, LossConfig(), WALK)
    assert tg["walk_start"][0].tolist() == [0, 2] and tg["walk_valid"][0].tolist() == [True, True]
    assert tg["walk_visible"][0, :, 0].tolist() == [False, True, False, False, True]
    assert tg["walk_occluded"][0, :, 0].tolist() == [False, False, True, True, False]
    assert tg["walk_weight"][0, :, 0].tolist() == [0, 1, 0, 0, 41]               # 20 * 2 + 1
    assert tg["walk_visible"][0, :, 1].tolist() == [False, False, False, True, True]
    assert tg["node"][0, 4, 0] == GRID.pixel_to_node(torch.tensor([36.0, 30.0]))
    # overlap map: visible objects' nodes, never the occluded one's
    assert tg["overlap_map"][0, 2, tg["node"][0, 2, 1]] == 1
    assert tg["overlap_map"][0, 2].sum() < 10


def test_ambiguous_starts_and_fast_tracks_are_dropped():
    a = [box_at(20, 20), box_at(20, 20)]
    b = [box_at(24, 20), box_at(24, 20)]                                         # one node from a
    c = [box_at(50, 50), box_at(50, 50)]
    fast = [box_at(8, 56), box_at(56, 56)]                                       # 12 nodes in one frame
    tg = build_targets(make_clip([a, b, c, fast], T=2), 1, GRID, LossConfig(), WALK)   # R = int(0.2*16) = 3
    assert tg["walk_valid"][0].tolist() == [False, False, True, False]
    tg = build_targets(make_clip([fast], T=2), 1, GRID, LossConfig(), walk.WalkSettings(local=False))
    assert tg["walk_valid"][0].tolist() == [True]                                 # global walk reaches anywhere
    tg = build_targets(make_clip([a, b], T=2), 1, GRID, LossConfig(skip_ambiguous_starts=False), WALK)
    assert tg["walk_valid"][0].tolist() == [True, True]


def position_embeddings(T, shift_per_frame=0, D=256):
    """Node embeddings that make the walk move every node by shift_per_frame columns per frame:
    q_t(y, x) = e(y, x - t * shift). A is ~one-hot for tau 0.1 (orthogonal unit vectors)."""
    eye = torch.eye(D)[: 16 * 16].reshape(16, 16, D)
    frames = [torch.roll(eye, shifts=t * shift_per_frame, dims=1).permute(2, 0, 1) for t in range(T)]
    return torch.stack(frames).unsqueeze(0)                                       # (1, T, D, 16, 16)


def test_ram_loss_rewards_walks_that_follow_the_object():
    hidden = lambda x: box_at(x, 30, vis=0.0)                                     # noqa: E731
    track = [box_at(10, 30), box_at(14, 30), hidden(18), hidden(22), box_at(26, 30)]   # +1 node per frame
    tg = build_targets(make_clip([track], T=5), 1, GRID, LossConfig(), WALK)
    cfg = LossConfig(label_smoothing=False)
    follow = ram_losses(position_embeddings(5, 1), tg, cfg, GRID, WALK)
    stay = ram_losses(position_embeddings(5, 0), tg, cfg, GRID, WALK)
    assert follow["ram"] < 1e-3 < 1.0 < stay["ram"]
    assert follow["overlap"] == 0
    # global walk gives the same numbers when the window covers the grid
    g = ram_losses(position_embeddings(5, 1), tg, cfg, GRID, walk.WalkSettings(local=False))
    big = ram_losses(position_embeddings(5, 1), tg, cfg, GRID, walk.WalkSettings(radius=1.0))
    assert torch.allclose(g["ram"], big["ram"], atol=1e-6)


def shifted_embeddings(shifts, D=256):
    """Node embeddings whose walk from frame t-1 to t moves every node by shifts[t] - shifts[t-1]
    columns (position_embeddings with any path)."""
    eye = torch.eye(D)[: 16 * 16].reshape(16, 16, D)
    return torch.stack([torch.roll(eye, shifts=s, dims=1).permute(2, 0, 1) for s in shifts]).unsqueeze(0)


def test_hidden_path_term_tells_a_walker_that_stays_from_one_that_wanders_and_returns():
    # a still object hidden for frames 2-4: the paper's loss only scores where the walk ends, so a
    # walker that wanders 3 nodes off while the object is hidden and comes back scores as one that
    # stays; the path term (not in the paper) tells them apart
    hidden = box_at(30, 30, vis=0.0)
    track = [box_at(30, 30), box_at(30, 30), hidden, hidden, hidden, box_at(30, 30)]
    tg = build_targets(make_clip([track], T=6), 1, GRID, LossConfig(), WALK)
    assert tg["walk_path"][0, :, 0].tolist() == [False, False, True, True, True, False]
    assert (tg["path_node"][0, 2:5, 0] == tg["node"][0, 1, 0]).all()
    stay, wander = shifted_embeddings([0] * 6), shifted_embeddings([0, 0, 3, 3, 3, 0])
    paper = LossConfig(label_smoothing=False)
    assert ram_losses(stay, tg, paper, GRID, WALK)["path"] == 0                       # off by default
    assert torch.allclose(ram_losses(stay, tg, paper, GRID, WALK)["ram"],
                          ram_losses(wander, tg, paper, GRID, WALK)["ram"])
    path = LossConfig(label_smoothing=False, hidden_path_weight=1.0)
    on_path, off_path = ram_losses(stay, tg, path, GRID, WALK)["path"], ram_losses(wander, tg, path, GRID, WALK)["path"]
    assert on_path < 1e-3 < 1.0 < off_path
    total = lambda emb: compute_losses(                                               # noqa: E731
        {"embed": emb, **{k: torch.zeros(1, 6, c, 16, 16) for k, c in
                          (("hm", 1), ("wh", 2), ("reg", 2), ("tracking", 2), ("visibility", 1))}},
        tg, path, GRID, WALK)["total"]
    assert total(wander) - total(stay) == pytest.approx(float(off_path - on_path), rel=1e-4)


def test_hidden_path_follows_the_line_between_the_visible_ends():
    # hidden for 3 frames, back 16 px (4 nodes) to the right: the line between the visible ends is
    # the label; the hidden boxes (put far away here) are never read
    track = [box_at(10, 30), box_at(20, 30, vis=0.0), box_at(60, 60, vis=0.0), box_at(60, 60, vis=0.0), box_at(26, 30)]
    tg = build_targets(make_clip([track], T=5), 1, GRID, LossConfig(), WALK)
    line = [GRID.pixel_to_node(torch.tensor([10.0 + 4 * t, 30.0])) for t in (1, 2, 3)]
    assert tg["path_node"][0, 1:4, 0].tolist() == [int(n) for n in line]
    # an occlusion that does not end inside the clip has no line
    tg = build_targets(make_clip([track[:4]], T=4), 1, GRID, LossConfig(), WALK)
    assert not tg["walk_path"].any()


def test_overlap_penalises_walkers_on_visible_objects():
    hidden = box_at(30, 30, vis=0.0)
    occluded = [box_at(30, 30), hidden, hidden]
    occluder = [box_at(60, 60), box_at(30, 30), box_at(30, 30)]   # sits on the hidden object's node
    tg = build_targets(make_clip([occluded, occluder], T=3), 1, GRID, LossConfig(), WALK)
    out = ram_losses(position_embeddings(3, 0), tg, LossConfig(), GRID, WALK)           # walker stays put
    # all its mass is on the occluder in both hidden frames; per-frame means summed over frames / T
    assert out["overlap"] > 0.99 * 2 / 3


def test_smoothing_mask_zeroes_the_peak_of_the_gaussian_only():
    node = torch.tensor([[5 * 16 + 5]])
    Hm = smoothing_mask(node, torch.tensor([[2]]), GRID)[0, 0].view(16, 16)
    assert Hm[5, 5] == 1 and Hm[5, 6] < 0.5 and Hm[5, 8] == 1 and Hm[0, 0] == 1


@pytest.mark.parametrize("variant", ["ram", "no_walk", "supervised_invisible"])
def test_losses_finite_with_empty_frames_and_lost_objects(variant):
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone_width=8, neck_channels=16, memory_channels=16, head_channels=16,
                                    embed_channels=16, class_names=("a",), embed_pool="none"))
    hidden = box_at(30, 30, vis=0.0)
    never_back = [box_at(20, 30), box_at(24, 30), hidden, hidden]
    tracks = [never_back, [None] * 4]                                             # second slot: empty
    cfg = LossConfig(variant=variant)
    for clip in (make_clip(tracks, T=4), make_clip([[None] * 4], T=4), make_clip([], T=4)):
        out = model(clip["images"])
        losses = compute_losses(out, build_targets(clip, 1, model.node_grid(H, W), cfg, model.cfg.walk), cfg,
                                model.node_grid(H, W), model.cfg.walk)
        assert all(torch.isfinite(v) for v in losses.values()), losses
        losses["total"].backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        model.zero_grad()
    assert (losses["ram"] == 0) and (losses["overlap"] == 0)


def test_ram_gradient_reaches_embedding_head():
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone_width=8, neck_channels=16, memory_channels=16, head_channels=16,
                                    embed_channels=16, class_names=("a",), embed_pool="none"))
    track = [box_at(10, 30), box_at(14, 30), box_at(18, 30, 0.0), box_at(22, 30)]
    clip = make_clip([track], T=4)
    cfg = LossConfig()
    losses = compute_losses(model(clip["images"]), build_targets(clip, 1, model.node_grid(H, W), cfg, model.cfg.walk),
                            cfg, model.node_grid(H, W), model.cfg.walk)
    assert losses["ram"] > 0
    (losses["ram"] + losses["overlap"]).backward()
    assert model.embed.conv2.weight.grad.abs().sum() > 0
    assert model.memory.candidate.weight.grad.abs().sum() > 0
    assert model.heads.heads["hm"][0].weight.grad is None                         # the walk does not touch heads


def test_walk_loss_is_normalised_within_each_frame():
    """The authors' trainer normalises the occlusion weights within each frame and averages the
    frames. A single weighted mean over the clip (the old form) lets one re-appearance term with
    weight 20 * gap + 1 outweigh every other frame: the loss must be the sum of its frames'
    separately normalised losses, each 1/T of the clip."""
    hidden = box_at(30, 30, vis=0.0)
    reappears = [box_at(10, 30), box_at(14, 30), hidden, hidden, hidden, box_at(30, 30)]   # weight 61 at t=5
    always = [box_at(10, 50), box_at(14, 50), box_at(18, 50), box_at(22, 50), box_at(26, 50), box_at(30, 50)]
    tg = build_targets(make_clip([reappears, always], T=6), 1, GRID, LossConfig(), WALK)
    assert tg["walk_weight"][0, 5].tolist() == [61.0, 1.0]
    cfg = LossConfig(label_smoothing=False)
    embed = position_embeddings(6, 0)                                            # walkers stay: every term > 0
    whole = ram_losses(embed, tg, cfg, GRID, WALK)["ram"]
    frames = []
    for t in range(6):
        only_t = dict(tg, walk_visible=torch.zeros_like(tg["walk_visible"]))
        only_t["walk_visible"][:, t] = tg["walk_visible"][:, t]
        frames.append(ram_losses(embed, only_t, cfg, GRID, WALK)["ram"])
    assert torch.allclose(whole, sum(frames), rtol=1e-5)
    # and its scale does not depend on how long the occlusion was (weights are relative per frame)
    heavier = ram_losses(embed, dict(tg, walk_weight=tg["walk_weight"] * (1 + 9 * (tg["walk_weight"] > 1))), cfg, GRID, WALK)
    assert torch.allclose(heavier["ram"], whole, rtol=0.25)
    # the old single weighted mean is kept as an ablation and is a different number
    old = ram_losses(embed, tg, LossConfig(label_smoothing=False, walk_normalisation="global"), GRID, WALK)["ram"]
    assert not torch.allclose(old, whole, rtol=1e-2)


def test_visibility_head_learns_the_visible_fraction():
    """Its targets were all ones (only visible objects are labelled), so the head learned nothing.
    It now regresses the visible fraction of each labelled object."""
    clip = make_clip([[box_at(18, 22, vis=1.0)], [box_at(48, 40, vis=0.5)], [box_at(30, 50, vis=0.3)]], T=1)
    tg = build_targets(clip, 1, GRID, LossConfig(), WALK)
    assert tg["vis_mask"][0, 0].tolist() == [True, True, True]
    assert torch.allclose(tg["vis_target"][0, 0], torch.tensor([1.0, 0.5, 0.3]))
