"""`make eval` (evaluation/run_all.py): the whole evaluation end to end on tiny generated World 1
and World 2 sets with tiny models that really track, through the live tracker node when ROS is
here; results.json holds every method of both datasets, the report files decode, a re-run
resumes; the per-occlusion records of world1.py / kitti_eval.py by hand; missing models named."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import children_running, process_state

from ram_tracker.checkpoint import save_weights
from ram_tracker.model import ModelConfig, build_model
from ram_training.data import kitti
from ram_training.data import world_lacater as w1
from ram_training.evaluation import run_all
from ram_training.evaluation.kitti_eval import hidden_object_errors
from ram_training.evaluation.world1 import OCCLUSION_MODELS, occlusion_errors, occlusion_runs

try:
    import rclpy  # noqa: F401
    HAVE_ROS = True
except ImportError:
    HAVE_ROS = False

TINY = dict(backbone_width=8, neck_channels=16, memory_channels=16, head_channels=16,
            embed_channels=16)
WORLD1_METHODS = {*OCCLUSION_MODELS, 'no_walk_loss'}
WORLD2_METHODS = {'ram', 'ram_paper_walk', 'last_seen', 'constant_velocity', 'no_permanence', 'sort', 'bytetrack',
                  'ocsort'} | ({'ram_ros_node'} if HAVE_ROS else set())


# ---------------------------------------------------------------------------------------
# the per-occlusion records (hooks in world1.py and kitti_eval.py), by hand


def test_occlusion_runs_start_after_a_visible_frame():
    #          0  1  2  3  4  5  6  7  8  9
    status = [2, 2, 1, 2, 2, 2, 1, 0, 1, 2]
    # frames 0-1: hidden before ever seen (not an occlusion); 3-5; 9 is cut by the end
    assert occlusion_runs(status) == [(3, 3), (9, 1)]
    assert occlusion_runs([1, 0, 2, 2, 1]) == []          # out of view, then hidden: not after a sighting
    errors = [None, None, 0.0, 3.0, None, 5.0, 0.0, None, 0.0, None]
    assert occlusion_errors(status, errors) == [(3, 3, 4.0), (9, 1, None)]


def _obj(frame, track_id, box, kind='Car'):
    return kitti.KittiObject(frame=frame, track_id=track_id, type=kind, truncated=0, occluded=0,
                             alpha=0.0, box=box, dimensions=(1.5, 1.6, 4.0),
                             location=(0.0, 1.6, 10.0), rotation_y=0.0)


def _row(track_id, state, cx, cy, kind='car'):
    return [track_id, kind, state, cx, cy, 10.0, 10.0, 0.9, 0]


def test_hidden_object_errors_give_one_record_per_occlusion():
    # car 0 labelled at frames 0-1 (box centre 15, 15), hidden 2-4, labelled 5, hidden 6
    # (cut by the end); car 1 hidden from its first frame (no occlusion), pedestrian 2 labelled
    # at frame 0 and hidden 1-2 but never matched by any track.
    labels = [_obj(0, 0, (10, 10, 20, 20)), _obj(1, 0, (10, 10, 20, 20)),
              _obj(5, 0, (30, 10, 40, 20)), _obj(0, 2, (100, 10, 110, 30), 'Pedestrian')]
    hidden = [_obj(t, 0, (10 + 4 * t, 10, 20 + 4 * t, 20)) for t in (2, 3, 4)] + \
             [_obj(6, 0, (34, 10, 44, 20))] + \
             [_obj(t, 1, (200, 10, 210, 20)) for t in (0, 1, 2)] + \
             [_obj(t, 2, (100, 10, 110, 30), 'Pedestrian') for t in (1, 2)]
    frames = [[_row(7, 'visible', 15, 15)],
              [_row(7, 'visible', 15, 15)],
              [_row(7, 'occluded', 18, 15)],            # true centre 23: error 5
              [_row(7, 'lost', 99, 99)],                # lost: no box
              [_row(7, 'occluded', 27, 18)],            # true centre 31, 15: error 5
              [_row(7, 'visible', 35, 15)],
              []]                                       # track gone at frame 6
    sums = hidden_object_errors(frames, labels, hidden)
    # the summed counters are unchanged: hidden frames of owned objects (car 0: 2, 3, 4, 6),
    # kept where the owner is alive (2 and 4)
    assert (sums['hidden_frames'], sums['kept'], sums['error_sum']) == (4, 2, 10.0)
    # [object, first frame, length, mean error]: car 0's two occlusions; car 1 was never seen
    # before hiding (none); the pedestrian's occlusion has no estimate (never matched)
    assert sums['occlusions'] == [[0, 2, 3, 5.0], [0, 6, 1, None], [2, 1, 2, None]]


# ---------------------------------------------------------------------------------------
# end to end


def _spread(model):
    """Heatmap logits spread out (as in test_kitti_eval) so that the paper's thresholds give
    real tracks from an untrained model (its scores otherwise all sit at ~0.01)."""
    with torch.no_grad():
        model.heads.heads.hm[2].weight.mul_(300.0)
        model.heads.heads.hm[2].bias.fill_(-4.0)
        model.heads.heads.wh[2].bias.fill_(12.0)
    return model


@pytest.fixture(scope='module')
def tiny_models(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp('models')
    paths = {}
    for seed, name in ((0, 'world1_ram'), (1, 'world1_nowalk')):
        torch.manual_seed(seed)
        model = _spread(build_model(ModelConfig(class_names=w1.CLASS_NAMES, embed_pool='none',
                                                walk_radius=0.1, **TINY)))
        paths[name] = save_weights(folder / f'{name}.safetensors', model, {'input_size': [64, 64]})
    torch.manual_seed(0)
    model = _spread(build_model(ModelConfig(**TINY)))
    paths['world2_ram'] = save_weights(folder / 'world2_ram.safetensors', model,
                                       {'input_size': [128, 64]})
    # one Table 3 row present (any car/pedestrian model does for the plumbing), the others absent
    ablations = tmp_path_factory.mktemp('ablations')
    torch.manual_seed(2)
    paths['table3'] = save_weights(ablations / 'world2_table3_local_3x3.safetensors',
                                   _spread(build_model(ModelConfig(**TINY))), {'input_size': [128, 64]})
    return paths


def _argv(tmp: Path, models: dict, out: Path) -> list[str]:
    argv = ['--out', str(out), '--threads', '1',
            '--world1-model', str(models['world1_ram']),
            '--world1-baseline', str(models['world1_nowalk']),
            '--world2-model', str(models['world2_ram']),
            '--ablations-dir', str(models['table3'].parent),
            # 2 World 1 videos of 80 frames at 64x48 (seed 3: the target is hidden from ~frame 40)
            '--world1-videos', '2', '--world1-data', str(tmp / 'w1'), '--world1-size', '64x48',
            '--world1-frames', '80', '--world1-seed', '3',
            # 2 World 2 sequences of 30 frames at 256x80 (seed 1: occlusions in both)
            '--world2-sequences', '2', '--world2-data', str(tmp / 'w2'), '--world2-size', '256x80',
            '--world2-frames', '30', '30', '--world2-seed', '1']
    return argv + ([] if HAVE_ROS else ['--skip-ros'])


def _decode_png(path: Path) -> np.ndarray:
    import cv2
    image = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.size, path
    return image


def test_make_eval_end_to_end_and_resume(tiny_models, tmp_path, capsys, monkeypatch):
    from PIL import Image
    out = tmp_path / 'eval'
    assert run_all.main(_argv(tmp_path, tiny_models, out)) == 0
    printed = capsys.readouterr().out
    for stage in ('data', 'world1', 'world2', 'ablations', 'filmstrip', 'report'):
        assert f'[eval] stage {stage}: ' in printed
    results = json.loads((out / 'results.json').read_text())

    # test data generated with the seeds asked for, and recorded
    assert results['data']['world1']['base_seed'] == 3 and results['data']['world1']['generated_now']
    assert results['data']['world1']['names'] == ['00000', '00001']
    assert results['data']['world2']['base_seed'] == 1
    assert results['data']['world2']['sequences'] == ['0000', '0001']
    assert json.loads((tmp_path / 'w2' / 'world2.json').read_text())['base_seed'] == 1

    # World 1: every method, a number for every state that has frames
    world1 = results['datasets']['world1']['methods']
    assert set(world1) == WORLD1_METHODS
    for metrics in world1.values():
        for state in w1.STATE_NAMES:
            value = metrics[f'miou_{state}']
            assert (value is None) == (metrics[f'frames_{state}'] == 0)
            assert value is None or 0.0 <= value <= 1.0
        assert metrics['frames_visible'] > 0 and metrics['frames_visible'] + \
            metrics['frames_occluded'] + metrics['frames_contained'] + metrics['frames_carried'] == 160
    assert any(m['miou_visible'] > 0 for m in world1.values())          # the tiny models do box
    # one record per occlusion of the target and method, matching the videos' ground truth
    runs = []
    for path in w1.list_videos(tmp_path / 'w1', 'test'):
        states = w1.load_video(path)[1].states
        runs += [length for _, length in occlusion_runs(np.where(states == 0, 1, 2))]
    assert runs
    records1 = [r for r in results['occlusion_errors'] if r['dataset'] == 'world1']
    for method in WORLD1_METHODS:
        mine = [r for r in records1 if r['method'] == method]
        assert sorted(r['occlusion_length'] for r in mine) == sorted(runs)
    assert any(r['error_px'] is not None for r in records1)

    # World 2: every method (peers included, the node when ROS is here), every headline number
    world2 = results['datasets']['world2']
    assert set(world2['methods']) == WORLD2_METHODS | {'table3_local_3x3'}
    for per_class in world2['methods'].values():
        for metrics in per_class.values():
            for key in ('HOTA', 'DetA', 'AssA', 'MOTA', 'IDF1', 'TrackAP'):
                assert isinstance(metrics[key], (int, float)), key
    assert world2['methods']['ram']['car']['HOTA'] > 0
    assert set(world2['occluded_localization_px']) == WORLD2_METHODS - {'ram_ros_node'}
    if HAVE_ROS:
        assert world2['ros_offline_identical'] is True
        assert world2['methods']['ram_ros_node'] == world2['methods']['ram']
        assert world2['ros_node']['answered'] == world2['ros_node']['frames'] == 60
    records2 = [r for r in results['occlusion_errors'] if r['dataset'] == 'world2']
    assert {r['method'] for r in records2} == (WORLD2_METHODS - {'ram_ros_node'}) | {'table3_local_3x3'}
    assert any(r['error_px'] is not None for r in records2)
    # Table 3: the present row evaluated, the absent ones named with how to train them
    ablations = results['ablations']
    assert [row for row, _, _ in run_all.TABLE3] == list(ablations)
    assert ablations['local_3x3']['status'] == 'evaluated'
    assert all(ablations[r]['status'] == 'absent' and 'ram-train --config' in ablations[r]['train']
               for r in ablations if r != 'local_3x3')

    # provenance and timings
    assert len(results['commit']) == 40
    assert set(results['models']) == {'world1_ram', 'world1_nowalk', 'world2_ram'}
    assert all(len(m['sha256']) == 64 for m in results['models'].values())
    assert set(results['timings_s']) == {'data', 'world1', 'world2', 'ablations', 'filmstrip', 'report'}
    assert results['budget_s']['limit'] == 1800 and results['budget_s']['measured'] > 0
    assert results['budget_s']['resumed'] is False

    # the report: tables, plots, filmstrip and GIF that decode
    report = (out / 'REPORT.md').read_text()
    for name in ('world1_miou.png', 'world2_tracking.png', 'occlusion_error.png',
                 'belief_filmstrip.png', 'belief.gif'):
        assert f']({name})' in report
    for name in ('world1_miou.png', 'world2_tracking.png', 'occlusion_error.png', 'belief_filmstrip.png'):
        assert _decode_png(out / name).shape[2] == 3
    with Image.open(out / 'belief.gif') as gif:
        assert gif.n_frames > 5
    assert (out / 'belief.gif').stat().st_size <= run_all.GIF_LIMIT_BYTES
    assert '| global_5x5 |' in report and 'absent' in report and '## This run' in report
    assert 'nearest_occluder' in report and 'bytetrack' in report and 'table3_local_3x3' in report

    # a re-run resumes: no World 2 sequence recomputed (node and offline records untouched),
    # World 1 reused, the same scores
    stamps = {p: p.stat().st_mtime_ns for p in (out / 'world2').rglob('done.json')}
    assert len(stamps) == (4 if HAVE_ROS else 2)
    bag_files = {p: p.stat().st_mtime_ns for p in (out / 'world2' / 'bags').rglob('*') if p.is_file()}
    assert run_all.main(_argv(tmp_path, tiny_models, out)) == 0
    printed = capsys.readouterr().out
    assert 'World 1: same models, videos and protocol' in printed
    assert printed.count('done before, skipped') == len(stamps) + 2       # + the Table 3 row
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert {p: p.stat().st_mtime_ns for p in bag_files} == bag_files
    again = json.loads((out / 'results.json').read_text())
    assert again['datasets'] == results['datasets']
    assert again['occlusion_errors'] == results['occlusion_errors']
    assert again['budget_s']['resumed'] is True
    assert again['world2_throughput']['resumed_sequence_paths'] == len(stamps)
    assert again['data']['world1']['generated_now'] is False

    # a new scoring protocol re-scores World 1 instead of reusing the old protocol's numbers
    from ram_training.evaluation import world1
    monkeypatch.setattr(world1, 'PROTOCOL_VERSION', world1.PROTOCOL_VERSION + 1)
    assert run_all.main(_argv(tmp_path, tiny_models, out)) == 0
    assert 'World 1: same models, videos and protocol' not in capsys.readouterr().out
    rescored = json.loads((out / 'world1' / 'results.json').read_text())
    assert rescored['fingerprint']['protocol'] == world1.PROTOCOL_VERSION


# ---------------------------------------------------------------------------------------
# errors


def test_missing_model_is_named_with_the_commands_that_make_it(tmp_path):
    # through python -m, as make eval runs it; nothing computed, nothing written
    missing = tmp_path / 'world2_ram.safetensors'
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, '-m', 'ram_training.evaluation.run_all', '--out',
                           str(tmp_path / 'eval'), '--world2-model', str(missing),
                           '--datasets', 'world2'],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert f'World 2 RAM model not found: {missing}' in proc.stderr
    assert 'ram-train --config world2_cpu_long' in proc.stderr
    assert not (tmp_path / 'eval').exists()
    # a model with a card: the card's commands
    card, commands = run_all.producing_commands(run_all.ROOT / 'models' / 'world1_nowalk.safetensors')
    assert card is not None and card.name == 'world1_ram.md'
    assert any(c.startswith('ram-train ') for c in commands)
    assert any(c.startswith('ram-data world1 ') for c in commands)


def test_mismatched_test_data_is_not_clobbered(tmp_path, tiny_models):
    spec = w1.World1DatasetSpec(config=w1.World1Config(width=64, height=48, num_frames=12),
                                counts={'train': 1, 'val': 0, 'test': 1}, base_seed=5)
    w1.generate_dataset(tmp_path / 'w1', spec, workers=1)
    before = (tmp_path / 'w1' / 'world1.json').read_bytes()
    with pytest.raises(run_all.RunAllError, match='cannot be used'):
        run_all.world1_test_data(tmp_path / 'w1', 1, (64, 48), 12, seed=3, log=lambda m: None)
    assert (tmp_path / 'w1' / 'world1.json').read_bytes() == before
    # same config and seed, enough videos: reused as is
    root, record = run_all.world1_test_data(tmp_path / 'w1', 1, (64, 48), 12, seed=5,
                                            log=lambda m: None)
    assert root == tmp_path / 'w1' and record['names'] == ['00000'] and not record['generated_now']


def test_shrink_gif_keeps_every_kth_frame_under_the_limit(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)) for _ in range(12)]
    path = tmp_path / 'a.gif'
    frames[0].save(path, format='GIF', save_all=True, append_images=frames[1:], duration=100, loop=0)
    size = path.stat().st_size
    info = run_all.shrink_gif(path, limit=size // 2)
    assert info['frame_step'] >= 2 and info['bytes'] == path.stat().st_size <= size // 2
    with Image.open(path) as gif:
        assert gif.n_frames == len(range(0, 12, info['frame_step']))
        assert gif.info['duration'] == 100 * info['frame_step']
    assert run_all.shrink_gif(path, limit=10 ** 9)['frame_step'] == 1      # small enough: untouched


# ---------------------------------------------------------------------------------------
# processes: the live node never outlives the evaluation that started it


@pytest.fixture(scope='module')
def long_world2(tmp_path_factory) -> Path:
    """One World 2 sequence of 400 frames at 256x80: the replay is still running when killed."""
    from ram_training.data import world_street as w2
    root = tmp_path_factory.mktemp('w2_long')
    cfg = w2.World2Config(width=256, height=80, min_frames=400, max_frames=400)
    w2.generate_dataset(root, w2.World2DatasetSpec(config=cfg, num_sequences=1, base_seed=1),
                        workers=1)
    return root


@pytest.mark.skipif(not HAVE_ROS or not sys.platform.startswith('linux'),
                    reason='the live node (ROS) and /proc (Linux)')
@pytest.mark.parametrize('signal_name', ['SIGTERM', 'SIGINT', 'SIGKILL'])
def test_killed_ram_eval_takes_its_tracker_node_with_it(long_world2, tiny_models, tmp_path,
                                                         signal_name):
    """ram-eval killed while it replays into the node: the node ends within seconds (an orphan
    would keep its domain, CPU and shared memory until someone finds it)."""
    import signal
    import time

    from ram_training.ros_env import isolated_ros_env
    out = tmp_path / 'eval'
    node_log = out / 'ros' / '0000' / 'tracker_node.log'
    with open(tmp_path / 'ram-eval.log', 'w') as cli_log:
        cli = subprocess.Popen([sys.executable, '-m', 'ram_training.evaluation.kitti_eval',
                                '--data', str(long_world2), '--model', str(tiny_models['world2_ram']),
                                '--out', str(out), '--path', 'ros',
                                '-p', 'backend=torch', '-p', 'num_threads=1'],
                               env=isolated_ros_env(), stdout=cli_log, stderr=subprocess.STDOUT,
                               # as from a terminal: a background job (`make test &`) would
                               # hand SIGINT down ignored
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    nodes: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and cli.poll() is None and not (
                node_log.is_file() and 'active: tracking' in node_log.read_text(errors='replace')):
            time.sleep(0.2)
        nodes = children_running(cli.pid, 'tracker_node')
        assert cli.poll() is None and len(nodes) == 1, (tmp_path / 'ram-eval.log').read_text()
        cli.send_signal(getattr(signal, signal_name))
        cli.wait(timeout=60)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process_state(nodes[0]) not in (None, 'Z'):
            time.sleep(0.1)
        assert process_state(nodes[0]) in (None, 'Z'), \
            f'tracker_node {nodes[0]} still running after ram-eval got {signal_name}'
        assert cli.returncode != 0              # a killed run never looks like a finished one
        assert not (out / 'ros' / '0000' / 'done.json').exists()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        for pid in nodes:                       # an orphan of a failed run: ours, by its pid
            if process_state(pid) not in (None, 'Z'):
                os.kill(pid, signal.SIGKILL)
