"""ram-eval: a tiny generated World 2 sequence through the installed tracker node (real process,
real DDS, real bags) and through the offline pipeline gives the same tracks; results are written
in the KITTI format and scored; runs resume per sequence; bad input fails clearly."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

rclpy = pytest.importorskip('rclpy')

from ram_tracker import parameters  # noqa: E402
from ram_tracker.checkpoint import save_weights  # noqa: E402
from ram_tracker.model import ModelConfig, build_model  # noqa: E402
from ram_tracker.pipeline import TrackingPipeline, TrackOutput  # noqa: E402
from ram_training import provenance  # noqa: E402
from ram_training.data import rosbag_io  # noqa: E402
from ram_training.data import world_street as w2  # noqa: E402
from ram_training.evaluation import kitti_eval  # noqa: E402
from ram_training.evaluation.kitti_results import read_results  # noqa: E402
from ram_training.ros_env import isolated_ros_env  # noqa: E402

INPUT = (128, 64)
# Both paths on the CPU with the same backend and thread count; the paper's thresholds.
PARAMS = {'backend': 'torch', 'device': 'cpu', 'num_threads': 1}


@pytest.fixture(scope='module')
def world2(tmp_path_factory) -> Path:
    """Two World 2 sequences of 30 frames at 256x80 (about 3 s)."""
    root = tmp_path_factory.mktemp('world2')
    cfg = w2.World2Config(width=256, height=80, min_frames=30, max_frames=30)
    w2.generate_dataset(root, w2.World2DatasetSpec(config=cfg, num_sequences=2, base_seed=1),
                        workers=1)
    return root


@pytest.fixture(scope='module')
def model_path(tmp_path_factory) -> Path:
    """A tiny untrained car/pedestrian model whose heatmap logits are spread out (weights x300,
    bias -4) so that the paper's thresholds (0.4 / 0.5) give a few dozen detections a frame:
    tracks that persist, get occluded and walk. Untrained scores all sit at ~0.0102."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone_width=8, neck_channels=16, memory_channels=16,
                                    head_channels=16, embed_channels=16))
    with torch.no_grad():
        model.heads.heads.hm[2].weight.mul_(300.0)
        model.heads.heads.hm[2].bias.fill_(-4.0)
        model.heads.heads.wh[2].bias.fill_(12.0)
    return save_weights(tmp_path_factory.mktemp('model') / 'tiny.safetensors', model,
                        {'input_size': list(INPUT)})


def _bag_tracks(bag: Path) -> list:
    """The node's /tracks of a recorded bag, per frame in stamp order, as plain tuples."""
    frames = []
    for frame in rosbag_io.read_bag(bag):
        msg = frame.messages.get('/tracks')
        if msg is not None:
            frames.append([(o.id, o.class_id, o.state, o.frames_since_seen, o.bbox.center.position.x,
                            o.bbox.center.position.y, o.bbox.size_x, o.bbox.size_y, o.score)
                           for o in msg.tracks])
    return frames


def _pipeline_tracks(params: dict, bag: Path) -> list:
    """TrackingPipeline.process (the node's own code path, not the evaluation's one-pass
    trackers) on the images decoded from the input bag."""
    pipeline = TrackingPipeline.from_params(params)
    state = {'visible': 0, 'occluded': 1, 'lost': 2}
    frames = []
    for frame in rosbag_io.read_bag(bag):
        result = pipeline.process(frame.image)
        frames.append([(t.track_id, t.class_name, state[t.state], t.frames_since_seen,
                        *(float(v) for v in t.box_cxcywh), t.score) for t in result.tracks])
    return frames


def detections_as_tracks(per_frame_detections, frame_rate):
    """A real (if naive) extra tracker for the hook: every detection is a new one-frame track."""
    assert frame_rate == 10.0
    out = []
    for t, dets in enumerate(per_frame_detections):
        out.append([TrackOutput(track_id=t * 1000 + i, class_id=int(dets.classes[i]),
                                class_name='?', score=float(dets.scores[i]),
                                box_cxcywh=np.concatenate([dets.centers[i], dets.sizes[i]]),
                                velocity=np.zeros(2), state='visible', box_source='detection',
                                frames_since_seen=0, walker_confidence=1.0,
                                visibility=float(dets.visibility[i]), age=1)
                    for i in range(len(dets))])
    return out


def test_ros_and_offline_paths_give_identical_tracks(world2, model_path, tmp_path, monkeypatch):
    env = isolated_ros_env()
    for key in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID', 'FASTDDS_DEFAULT_PROFILES_FILE'):
        monkeypatch.setenv(key, env[key])
    out = tmp_path / 'eval'
    logs = []
    summary = kitti_eval.evaluate_dataset(
        world2, model_path, out, sequences=['0000'], path='both', params_overrides=PARAMS,
        extra_trackers={'detections': detections_as_tracks}, ros_env=env, log=logs.append)

    # The node really tracked: every frame answered, tracks that persist, occlusions walked.
    ros_timing = summary['per_sequence']['0000']['ros']
    assert (ros_timing['frames'], ros_timing['answered'], ros_timing['missed_frames']) == (30, 30, 0)
    node = _bag_tracks(out / 'ros' / '0000' / 'output_bag')
    assert len(node) == 30
    rows = [r for frame in node for r in frame]
    assert len(rows) > 100
    ids = [r[0] for r in rows]
    assert max(ids.count(i) for i in set(ids)) >= 10              # an id kept over 10+ frames
    assert sum(r[2] == 1 for r in rows) > 10                      # occluded tracks ...
    assert any(r[2] == 1 and r[3] >= 2 for r in rows)            # ... followed 2+ frames hidden
    assert {r[1] for r in rows} <= {'car', 'pedestrian'}

    # Identical to the tracking core without ROS on the same decoded frames: same frames, ids,
    # classes, states, ages; boxes and scores equal up to float32 rounding. Checked here with
    # TrackingPipeline itself, independently of ram-eval's own comparison.
    params = parameters.validate({**PARAMS, 'model_path': str(model_path),
                                  'input_width': INPUT[0], 'input_height': INPUT[1]})
    assert summary['params'] == params
    offline = _pipeline_tracks(params, out / 'bags' / '0000')
    assert len(offline) == len(node)
    for t, (a, b) in enumerate(zip(node, offline)):
        assert [r[:4] for r in a] == [r[:4] for r in b], f'frame {t}'
        np.testing.assert_allclose([r[4:] for r in a], [r[4:] for r in b], rtol=1e-6, atol=1e-4,
                                   err_msg=f'frame {t}')
    assert summary['ros_offline_identical'] is True
    assert summary['per_sequence']['0000']['ros_offline_difference'] is None

    # KITTI result files: the node's and the offline walker's are the same file.
    results = out / 'results'
    assert (results / 'ros' / '0000.txt').read_text() == (results / 'walker' / '0000.txt').read_text()
    walker = read_results(results / 'walker' / '0000.txt')
    assert sum(len(v) for v in walker.values()) > 100
    # The extra tracker got the detections in source pixels: the visible boxes of the 'none'
    # tracker (CenterTrack: a visible track's box is its detection's) are among them.
    detected = read_results(results / 'detections' / '0000.txt')
    none = read_results(results / 'none' / '0000.txt')
    assert detected and none
    for frame, preds in none.items():
        boxes = {tuple(np.round(p[2:6], 2)) for p in detected.get(frame, [])}
        assert all(tuple(np.round(p[2:6], 2)) in boxes for p in preds), frame
    assert max(p[4] for preds in detected.values() for p in preds) > INPUT[0]   # beyond 128 px

    # Scores for every method and class; the node's equal the offline walker's.
    assert set(summary['methods']) == {'walker', 'static', 'constant_velocity', 'none', 'detections'}
    for method, per_class in summary['methods'].items():
        for c in ('car', 'pedestrian'):
            assert set(per_class[c]) == {'HOTA', 'DetA', 'AssA', 'MOTA', 'IDF1', 'TrackAP'}, method
    assert summary['ros']['scores'] == summary['methods']['walker']
    assert summary['methods']['walker']['car']['DetA'] > 0        # the tiny model hits some cars
    # World 2's hidden objects were scored (hidden_02).
    oracle = summary['occluded_localization']['oracle_walk']
    assert oracle['frames'] > 0 and np.isfinite(oracle['walker_px'])
    assert set(summary['occluded_localization_px']) == set(summary['methods'])
    assert summary['model']['sha256'] == kitti_eval.file_sha256(model_path)
    assert summary['git']['commit']
    assert (out / 'summary.json').is_file() and (out / 'params.yaml').is_file()

    # Re-run: both paths are skipped (same model sha256 and parameters); nothing is rewritten.
    done = [out / 'ros' / '0000' / 'done.json', out / 'offline' / '0000' / 'done.json']
    stamps = [p.stat().st_mtime_ns for p in done]
    logs.clear()
    again = kitti_eval.evaluate_dataset(
        world2, model_path, out, sequences=['0000'], path='both', params_overrides=PARAMS,
        extra_trackers={'detections': detections_as_tracks}, ros_env=env, log=logs.append)
    assert [p.stat().st_mtime_ns for p in done] == stamps
    assert sum('skipped' in line for line in logs) == 2, logs
    assert again['methods'] == summary['methods'] and again['ros_offline_identical'] is True


def test_offline_resumes_per_sequence_and_reruns_on_new_parameters(world2, model_path, tmp_path):
    out = tmp_path / 'eval'
    common = dict(path='offline', params_overrides=PARAMS, max_frames=12, log=lambda *_: None)
    first = kitti_eval.evaluate_dataset(world2, model_path, out, **common)
    assert first['sequences'] == ['0000', '0001'] and first['ros_offline_identical'] is None
    assert first['per_sequence']['0001']['frames'] == 12
    walker = (out / 'results' / 'walker' / '0001.txt').read_text()
    # A run killed during sequence 0001: its record is missing, 0000's is kept.
    (out / 'offline' / '0001' / 'done.json').unlink()
    kept = (out / 'offline' / '0000' / 'done.json').stat().st_mtime_ns
    logs = []
    second = kitti_eval.evaluate_dataset(world2, model_path, out, **{**common, 'log': logs.append})
    assert (out / 'offline' / '0000' / 'done.json').stat().st_mtime_ns == kept
    assert any('0000: offline path done before, skipped' in line for line in logs)
    assert any(line.startswith('[ram-eval] 0001: offline path (') for line in logs)
    assert (out / 'results' / 'walker' / '0001.txt').read_text() == walker
    assert second['methods'] == first['methods']
    # Other parameters: not the same run, everything is tracked again.
    logs.clear()
    third = kitti_eval.evaluate_dataset(world2, model_path, out, **{
        **common, 'params_overrides': {**PARAMS, 'detection_threshold': 0.45}, 'log': logs.append})
    assert not any('skipped' in line for line in logs)
    assert third['params']['detection_threshold'] == 0.45
    assert not list(out.rglob('*.tmp*')) and not list(out.rglob('.*partial*'))


def test_offline_runs_again_when_the_code_changed(world2, model_path, tmp_path, monkeypatch):
    """The same model, parameters and frames but other code (provenance.code_digest, e.g. a fix
    in the walk): the old numbers are not reused."""
    out = tmp_path / 'eval'
    common = dict(path='offline', params_overrides=PARAMS, max_frames=6, sequences=['0000'],
                  methods=('walker',))
    kitti_eval.evaluate_dataset(world2, model_path, out, log=lambda *_: None, **common)
    logs = []
    kitti_eval.evaluate_dataset(world2, model_path, out, log=logs.append, **common)
    assert any('done before, skipped' in line for line in logs)
    monkeypatch.setattr(provenance, 'code_digest', lambda: '0' * 64)
    logs.clear()
    kitti_eval.evaluate_dataset(world2, model_path, out, log=logs.append, **common)
    assert not any('skipped' in line for line in logs)


def test_walker_paper_walks_as_published_whatever_the_nodes_walk_settings(world2, model_path, tmp_path):
    """'walker_paper' (results row ram_paper_walk) is Algorithm 1's walk beside the node's own
    walk: its tracks are those of 'walker' run with the paper's settings (no step prior, the
    peak node's box), while the node's default walk tracks differently on the same frames."""
    common = dict(path='offline', sequences=['0001'], methods=('walker', 'walker_paper'),
                  max_frames=20, log=lambda *_: None)
    paper_settings = {'walker_step_sigma': 0.0, 'walker_keeps_offset': False,
                      'walker_step_velocity': 0.0}
    kitti_eval.evaluate_dataset(world2, model_path, tmp_path / 'node', params_overrides=PARAMS,
                                **common)
    kitti_eval.evaluate_dataset(world2, model_path, tmp_path / 'paper',
                                params_overrides={**PARAMS, **paper_settings}, **common)

    def tracks(run, method):
        return (tmp_path / run / 'results' / method / '0001.txt').read_text()

    assert tracks('node', 'walker_paper') == tracks('paper', 'walker') == tracks('paper', 'walker_paper')
    assert tracks('node', 'walker') != tracks('paper', 'walker')      # the settings matter here


def test_peer_trackers_are_scored_on_the_same_detections(world2, model_path, tmp_path, capsys):
    """`ram-eval --peers`: SORT, ByteTrack and OC-SORT run on the model's detections beside the
    occlusion models, each with its results, scores and row in the printed table."""
    pytest.importorskip('trackers')
    from ram_training.evaluation.peers import PEER_TRACKERS
    out = tmp_path / 'eval'
    overrides = [arg for key, value in PARAMS.items() for arg in ('-p', f'{key}={value}')]
    assert kitti_eval.main(['--data', str(world2), '--model', str(model_path), '--out', str(out),
                            '--sequences', '0001', '--path', 'offline', '--methods', 'walker',
                            'none', '--max-frames', '15', '--peers', *overrides]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / 'summary.json').read_text())
    assert set(summary['methods']) == {'walker', 'none', *PEER_TRACKERS}
    assert set(summary['occluded_localization']['tracks']) == {'walker', 'none', *PEER_TRACKERS}
    for name in PEER_TRACKERS:
        assert read_results(out / 'results' / name / '0001.txt'), name    # they tracked
        assert summary['per_sequence']['0001']['offline']['extra_trackers'][name]['seconds'] >= 0
        assert (out / 'scores' / f'{name}.json').is_file()
        assert name in printed


def test_comparison_notices_a_difference():
    row = [3, 'car', 'occluded', 10.0, 20.0, 5.0, 6.0, 0.9, 2]
    same = [[list(row)]]
    assert kitti_eval.first_difference(same, [[list(row)]]) is None
    assert kitti_eval.first_difference(same, [[row[:3] + [10.0 + 1e-5] + row[4:]]]) is None
    assert 'frame 0' in kitti_eval.first_difference(same, [[row[:3] + [10.01] + row[4:]]])
    assert 'frame 0' in kitti_eval.first_difference(same, [[[4] + row[1:]]])
    assert 'frame 0' in kitti_eval.first_difference(same, [[row[:2] + ['visible'] + row[3:]]])
    assert kitti_eval.first_difference(same, [None]) == 'frame 0: no output on one side'
    assert kitti_eval.first_difference(same, []) == '1 vs 0 frames'
    # KITTI output policy: occluded boxes up to 3 frames old, never lost tracks.
    frames = [[row, row[:2] + ['occluded'] + row[3:8] + [4], row[:2] + ['lost'] + row[3:8] + [0]]]
    assert kitti_eval.predictions(frames) == [[(3, 'car', 7.5, 17.0, 12.5, 23.0, 0.9)]]


def test_bad_input_is_named(world2, model_path, tmp_path):
    with pytest.raises(kitti_eval.EvalError, match='dataset folder not found'):
        kitti_eval.evaluate_dataset(tmp_path / 'nowhere', model_path, tmp_path / 'o')
    with pytest.raises(kitti_eval.EvalError, match=r'sequence\(s\) 0042 not found .*available: 0000, 0001'):
        kitti_eval.evaluate_dataset(world2, model_path, tmp_path / 'o', sequences=['0042'])
    with pytest.raises(kitti_eval.EvalError, match='model not found'):
        kitti_eval.evaluate_dataset(world2, tmp_path / 'missing.safetensors', tmp_path / 'o')
    with pytest.raises(kitti_eval.EvalError, match='detection_threshold'):
        kitti_eval.evaluate_dataset(world2, model_path, tmp_path / 'o',
                                    params_overrides={'detection_threshold': 2})
    with pytest.raises(kitti_eval.EvalError, match='not key=value'):
        kitti_eval.parse_overrides(['detection_threshold'])
    assert kitti_eval.parse_overrides(['max_age=30', 'device=cpu']) == {'max_age': 30, 'device': 'cpu'}
    assert not (tmp_path / 'o').exists()
    # The module runs as a program; errors go to stderr with exit code 2.
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(sys.path)}
    run = subprocess.run([sys.executable, '-m', 'ram_training.evaluation.kitti_eval',
                          '--data', str(world2), '--model', str(model_path),
                          '--out', str(tmp_path / 'o'), '--sequences', '0007'],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2, run.stderr
    assert 'ram-eval: error: sequence(s) 0007 not found' in run.stderr
