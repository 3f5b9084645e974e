"""The product's promise, live: the installed node with the shipped World 1 model, fed a World 1
video over DDS by another process's bag replay, keeps the target's id through occlusions where
the no-permanence tracker (occlusion_model none, CenterTrack) loses it, and its belief puts the
hidden target's mass near the true hidden position."""

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from ram_tracker.checkpoint import load_weights, trained_input_size  # noqa: E402
from ram_training import demo  # noqa: E402
from ram_training.data import rosbag_io  # noqa: E402
from ram_training.replay import ReplayConfig, replay_into_node  # noqa: E402
from ram_training.ros_env import in_process, isolated_ros_env  # noqa: E402

MODEL = demo.WORLD1_MODEL


def _run(in_bag, out_bag, model, size, env, log, **params):
    node = demo.start_node(model, size, env, log, params)
    try:
        result = replay_into_node(in_bag, out_bag, ReplayConfig(record=('tracks', 'belief')),
                                  log=lambda *_: None)
    finally:
        node.terminate()
        node.wait(timeout=30)
    assert result.answered == result.frames, result.missed_stamps
    return demo.summarize(out_bag, result.node_fps)[0]


def _belief_errors(out_bag):
    """Distance (px) between each hidden-target belief's most probable cell and the true centre,
    and the same for the target's last visible centre (the 'last seen' guess)."""
    belief_err, last_seen_err = [], []
    last_seen = None
    for frame in rosbag_io.read_bag(out_bag):
        truth = frame.messages.get('/ground_truth/tracks')
        target = next((o for o in truth.tracks if o.class_id == 'target'), None) if truth else None
        if target is None:
            continue
        centre = np.array([target.bbox.center.position.x, target.bbox.center.position.y])
        if target.state == 0:
            last_seen = centre
            continue
        beliefs = frame.messages.get('/belief')
        grids = [b for b in (beliefs.beliefs if beliefs else []) if b.class_id == 'target']
        if not grids or last_seen is None:
            continue
        best = max(grids, key=lambda b: b.confidence)
        cell = int(np.argmax(np.asarray(best.probability)))
        row, col = divmod(cell, best.width)
        guess = np.array([best.origin_x + (col + 0.5) * best.cell_width,
                          best.origin_y + (row + 0.5) * best.cell_height])
        belief_err.append(np.linalg.norm(guess - centre))
        last_seen_err.append(np.linalg.norm(last_seen - centre))
    return np.array(belief_err), np.array(last_seen_err)


@pytest.fixture(scope='module')
def replays(tmp_path_factory):
    """The demo's World 1 video through the live node twice: RAM's walker and CenterTrack's
    'none' occlusion handling, on the same model and detections."""
    if not MODEL.exists():
        pytest.skip(f'{MODEL} not shipped')
    tmp = tmp_path_factory.mktemp('permanence')
    with in_process(isolated_ros_env()) as env:
        _, info = load_weights(MODEL)
        size = trained_input_size(info)
        video = demo.demo_video(tmp)
        rosbag_io.world1_to_bag(video, tmp / 'in')
        ram = _run(tmp / 'in', tmp / 'ram', MODEL, size, env, tmp / 'ram.log')
        none = _run(tmp / 'in', tmp / 'none', MODEL, size, env, tmp / 'none.log',
                    occlusion_model='none')
    print('\nRAM:', ram, '\nno permanence:', none)
    return ram, none, tmp / 'ram'


def test_shipped_model_keeps_the_target_id_through_occlusion(replays):
    ram, none, _ = replays
    # Same detections, different occlusion handling: RAM's track survives the hidden frames
    # with a box on the walker; CenterTrack's track dies at the first miss and the target comes
    # back under a new id.
    assert none['target_id_switches'] >= 1
    assert ram['target_id_switches'] < none['target_id_switches']
    assert ram['target_iou_hidden'] > none['target_iou_hidden']


def test_shipped_model_belief_is_nearer_the_hidden_target_than_last_seen(replays):
    # 8.3 px against 9.0 for last seen with the model of models/world1_ram.md section 16 and
    # World 1's hold of section 22 (60 frames, ended by a coverer that stood still 10 frames and
    # moves off; a bare 30-frame hold: 10.1 px, the belief lags a target carried off soon after it
    # is covered; the 20-frame hold of section 17: 8.7 px; without a hold 8.6, no prior 37 px)
    belief_err, last_seen_err = _belief_errors(replays[2])
    print(f'belief peak error {np.mean(belief_err):.1f} px (median {np.median(belief_err):.1f}), '
          f'last seen {np.mean(last_seen_err):.1f} px over {len(belief_err)} hidden frames')
    assert len(belief_err) >= 10
    assert np.mean(belief_err) < np.mean(last_seen_err)
