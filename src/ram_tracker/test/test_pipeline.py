"""Weights files, devices and the stream pipeline (model + Algorithm 1), without ROS."""
import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ram_tracker import parameters
from ram_tracker.checkpoint import WeightsError, load_weights, save_weights, trained_input_size
from ram_tracker.model import ModelConfig, build_model
from ram_tracker.pipeline import TrackingPipeline, resolve_device, resolve_model_path

TINY = ModelConfig(class_names=('car', 'pedestrian'), backbone_width=8, neck_channels=16,
                   memory_channels=16, head_channels=16, embed_channels=16)


def test_weights_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    path = save_weights(tmp_path / 'm.safetensors', model, {'name': 'tiny', 'input_size': [64, 32]})
    loaded, info = load_weights(path)
    assert info == {'name': 'tiny', 'input_size': [64, 32]}
    assert loaded.cfg == model.cfg
    x = torch.rand(1, 3, 32, 64)
    with torch.no_grad():
        a, _ = model.step(x, model.initial_state(1, 32, 64))
        b, _ = loaded.step(x, loaded.initial_state(1, 32, 64))
    for key in ('hm', 'wh', 'embed'):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert [p.name for p in tmp_path.iterdir()] == ['m.safetensors']   # no temporary left


def test_bad_weights_files_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.safetensors'):
        load_weights(tmp_path / 'nope.safetensors')
    corrupt = tmp_path / 'corrupt.safetensors'
    corrupt.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": garbage')
    with pytest.raises(WeightsError, match='corrupt.safetensors'):
        load_weights(corrupt)
    foreign = tmp_path / 'foreign.safetensors'
    save_file({'w': torch.zeros(2)}, str(foreign))
    with pytest.raises(WeightsError, match='metadata format'):
        load_weights(foreign)
    mismatched = tmp_path / 'mismatched.safetensors'
    model = build_model(TINY)
    save_weights(mismatched, model)
    # same file, but claiming a different architecture
    from safetensors.torch import load_file
    import json
    tensors = load_file(str(mismatched))
    config = dict(TINY.to_dict(), neck_channels=32)
    save_file(tensors, str(mismatched), metadata={'format': 'ram-ros-weights/1',
                                                  'model_config': json.dumps(config)})
    with pytest.raises(WeightsError, match='do not match'):
        load_weights(mismatched)


def test_device_resolution():
    assert resolve_device('cpu').type == 'cpu'
    assert resolve_device('auto').type == ('cuda' if torch.cuda.is_available() else 'cpu')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='CUDA is not available'):
            resolve_device('cuda:0')


def _pipeline(tmp_path, **overrides):
    torch.manual_seed(0)
    path = save_weights(tmp_path / 'tiny.safetensors', build_model(TINY))
    params = parameters.validate({'model_path': str(path), 'device': 'cpu', 'input_width': 64,
                                  'input_height': 32, 'num_threads': 1, **overrides})
    return TrackingPipeline.from_params(params)


def test_pipeline_streams_and_restarts_on_new_resolution(tmp_path):
    pipeline = _pipeline(tmp_path)
    assert 'input 64x32' in pipeline.describe() and 'cpu' in pipeline.describe()
    rng = np.random.default_rng(0)
    for _ in range(3):
        result = pipeline.process(rng.integers(0, 255, (48, 96, 3), dtype=np.uint8))
        assert result.tracks == []           # untrained: the heatmap prior is below threshold
    assert pipeline.stream._state[0].abs().sum() > 0     # the GRU memory carries the stream
    new_frame = rng.integers(0, 255, (60, 120, 3), dtype=np.uint8)
    pipeline.process(new_frame)
    # A new resolution is a new stream: the memory equals that of a pipeline that saw only
    # this frame.
    fresh = _pipeline(tmp_path)
    fresh.process(new_frame)
    torch.testing.assert_close(pipeline.stream._state[0], fresh.stream._state[0])
    assert pipeline.stream._source_size == (120, 60)


def test_inconsistent_thresholds_are_rejected(tmp_path):
    with pytest.raises(ValueError, match='det_threshold'):
        _pipeline(tmp_path, detection_threshold=0.6, new_track_threshold=0.5)


def test_set_tracker_config_applies_to_decoding_and_tracking_from_the_next_frame(tmp_path):
    """One setter changes Algorithm 1's settings on a running stream (the node's parameter
    changes use it): the next frame is decoded and tracked with them, memory and tracks kept."""
    torch.manual_seed(0)
    hot = ModelConfig(class_names=('car', 'pedestrian'), backbone_width=8, neck_channels=16,
                      memory_channels=16, head_channels=16, embed_channels=16,
                      heatmap_bias=1.0)      # heatmap prior sigmoid(1) = 0.73: every node fires
    path = save_weights(tmp_path / 'hot.safetensors', build_model(hot))
    pipeline = TrackingPipeline.from_params(parameters.validate(
        {'model_path': str(path), 'device': 'cpu', 'input_width': 64, 'input_height': 32,
         'num_threads': 1, 'backend': 'torch'}))
    frame = np.random.default_rng(0).integers(0, 255, (32, 64, 3), dtype=np.uint8)
    started = pipeline.process(frame).tracks
    assert started and all(t.state == 'visible' for t in started)
    strict = replace(pipeline.tracker_config, det_threshold=0.99, new_track_threshold=0.99,
                     max_age=5)
    pipeline.set_tracker_config(strict)
    assert pipeline.tracker_config == strict
    assert len(pipeline.stream.infer(frame).detections) == 0     # decoded with 0.99
    kept = pipeline.process(frame).tracks
    assert {t.track_id for t in kept} == {t.track_id for t in started}   # tracks kept, none new
    assert all(t.state != 'visible' for t in kept)      # nothing above 0.99 to match them


def test_the_transition_waits_until_a_tracker_asks_and_is_computed_once(tmp_path, monkeypatch):
    """infer() hands over the transition uncomputed; the first tracker that walks computes it
    (the same values as computing it at once), the others (evaluation: several trackers on one
    inference) get the same object."""
    pipeline = _pipeline(tmp_path)
    calls = []
    real = pipeline.stream.model.transition
    monkeypatch.setattr(pipeline.stream.model, 'transition',
                        lambda q_prev, q_next: calls.append(1) or real(q_prev, q_next))
    rng = np.random.default_rng(0)
    pipeline.stream.infer(rng.integers(0, 255, (32, 64, 3), dtype=np.uint8))
    previous = pipeline.stream.embed.clone()
    inference = pipeline.stream.infer(rng.integers(0, 255, (32, 64, 3), dtype=np.uint8))
    assert calls == []
    first = inference.transition()
    assert inference.transition() is first and len(calls) == 1
    torch.testing.assert_close(first.values, real(previous, pipeline.stream.embed).values)


# -- which model runs: the shipped one by default, never an untrained one by accident ----------
SHIPPED = Path(__file__).resolve().parents[3] / 'models' / 'world2_ram.safetensors'
CPU = {'device': 'cpu', 'backend': 'torch', 'num_threads': 1}


def test_default_parameters_track_with_the_shipped_model_at_its_trained_size():
    """config/tracker.yaml's values (the schema defaults) used to leave model_path empty: the
    node tracked with random weights. Now they name the shipped World 2 model, and the input
    size comes from its weights (640x192, what it was trained at)."""
    pipeline = TrackingPipeline.from_params(parameters.validate(CPU))
    described = pipeline.describe()
    sha = hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    assert 'world2_ram.safetensors' in described and f'sha256 {sha[:12]}' in described, described
    assert 'untrained' not in described
    assert (pipeline.stream.input_width, pipeline.stream.input_height) == \
        trained_input_size(load_weights(SHIPPED)[1]) == (640, 192)


@pytest.mark.parametrize('name', ['package://ram_tracker/models/world2_ram.safetensors',
                                  'world2_ram', 'world2_ram.safetensors',
                                  'models/world2_ram.safetensors'])
def test_model_path_finds_the_shipped_model_by_package_url_or_name(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)         # not the repository: the installed copy is found
    assert resolve_model_path(name).read_bytes() == SHIPPED.read_bytes()
    with pytest.raises(FileNotFoundError, match='no_such_model'):
        resolve_model_path('no_such_model')


def test_input_size_0_is_read_from_the_weights(tmp_path):
    torch.manual_seed(0)
    path = save_weights(tmp_path / 'tiny.safetensors', build_model(TINY), {'input_size': [96, 64]})
    params = parameters.validate({**CPU, 'model_path': str(path)})
    assert (params['input_width'], params['input_height']) == (0, 0)
    pipeline = TrackingPipeline.from_params(params)
    assert 'input 96x64' in pipeline.describe()
    with pytest.raises(ValueError, match='set both'):
        TrackingPipeline.from_params({**params, 'input_width': 128})
    silent = save_weights(tmp_path / 'silent.safetensors', build_model(TINY))   # no size recorded
    with pytest.raises(ValueError, match='silent.safetensors does not record'):
        TrackingPipeline.from_params({**params, 'model_path': str(silent)})


def test_empty_model_path_fails_unless_untrained_is_allowed():
    params = parameters.validate({**CPU, 'model_path': ''})
    with pytest.raises(ValueError, match='model_path is empty.*allow_untrained:=true'):
        TrackingPipeline.from_params(params)
    untrained = TrackingPipeline.from_params({**params, 'allow_untrained': True})
    assert 'untrained' in untrained.describe() and 'input 640x192' in untrained.describe()
