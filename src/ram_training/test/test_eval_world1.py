"""World 1 evaluation protocol: IoU, the target box choice, per-video then per-state averaging,
and an end-to-end run over a tiny generated dataset."""
import numpy as np
import pytest
import torch

from ram_tracker.model import ModelConfig, build_model
from ram_tracker.pipeline import FrameResult, TrackOutput
from ram_training.data import world_lacater
from ram_training.evaluation.world1 import (OCCLUSION_MODELS, box_iou, evaluate_models, summarize,
                                            target_box)


def test_box_iou_known_values():
    assert box_iou(np.array([0, 0, 10, 10]), np.array([0, 0, 10, 10])) == 1.0
    assert box_iou(np.array([0, 0, 10, 10]), np.array([5, 0, 15, 10])) == pytest.approx(50 / 150)
    assert box_iou(np.array([0, 0, 10, 10]), np.array([20, 20, 30, 30])) == 0.0


def _track(cls, score, state, cx):
    return TrackOutput(track_id=1, class_id=0, class_name=cls, score=score,
                       box_cxcywh=np.array([cx, 10.0, 4.0, 4.0]), velocity=np.zeros(2),
                       state=state, box_source='walker', frames_since_seen=0,
                       walker_confidence=1.0, visibility=1.0, age=1)


def test_target_box_is_the_best_live_target_including_walker_boxes():
    result = FrameResult(tracks=[_track('cube', 0.99, 'visible', 50),
                                 _track('target', 0.6, 'occluded', 20),
                                 _track('target', 0.9, 'lost', 80),
                                 _track('target', 0.5, 'visible', 30)], beliefs=[],
                         num_detections=0)
    np.testing.assert_allclose(target_box(result), [18, 8, 22, 12])
    assert target_box(FrameResult([], [], 0)) is None


def test_summary_averages_within_videos_then_over_videos():
    videos = [{'visible': [1.0, 1.0, 1.0, 0.0], 'occluded': [0.5], 'contained': [],
               'carried': []},
              {'visible': [0.0], 'occluded': [], 'contained': [0.2, 0.4], 'carried': []}]
    s = summarize(videos)
    assert s['miou_visible'] == pytest.approx((0.75 + 0.0) / 2)      # not 3/5
    assert s['miou_occluded'] == pytest.approx(0.5) and s['videos_occluded'] == 1
    assert s['miou_contained'] == pytest.approx(0.3)
    assert s['miou_carried'] is None and s['frames_visible'] == 5


def test_end_to_end_on_a_tiny_world(tmp_path):
    spec = world_lacater.World1DatasetSpec(
        config=world_lacater.World1Config(width=64, height=48, num_frames=12),
        counts={'train': 0, 'val': 0, 'test': 2}, base_seed=3)
    world_lacater.generate_dataset(tmp_path, spec, workers=1)
    torch.manual_seed(0)
    model = build_model(ModelConfig(class_names=world_lacater.CLASS_NAMES, backbone_width=8,
                                    neck_channels=16, memory_channels=16, head_channels=16,
                                    embed_channels=16, embed_pool='none'))
    results = evaluate_models({'m': (model.eval(), dict(OCCLUSION_MODELS))}, tmp_path, 'test',
                              (64, 64), log=lambda *_: None)
    assert set(results) == {f'm/{k}' for k in OCCLUSION_MODELS}
    for metrics in results.values():
        assert metrics['frames_visible'] + metrics['frames_occluded'] + \
            metrics['frames_contained'] + metrics['frames_carried'] == 24
        # an untrained detector finds nothing: every frame scores 0
        assert all(metrics[f'miou_{s}'] in (None, 0.0) for s in world_lacater.STATE_NAMES)
