"""ram-track, the installed command, on World 2 frames with the shipped model, and without ROS.

The frames are rendered by ram_training's World 2 generator (the street the shipped model was
trained on, at its 640x192), so the model really detects and tracks cars: ids must persist.
"""
import json
import os
import signal
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from ament_index_python.packages import get_package_prefix

from ram_tracker import parameters, track_cli
from ram_tracker.checkpoint import save_weights
from ram_tracker.kitti_format import read_labels
from ram_tracker.model import ModelConfig, build_model
from ram_tracker.pipeline import PIPELINE_PARAMETERS, TrackingPipeline

VIDEO_FRAMES = 16
FOLDER_COPIES = 4           # the interrupted run: a folder long enough to stop in the middle
CORRUPT_FRAME = 3


@pytest.fixture(scope='module')
def street_frames():
    """VIDEO_FRAMES World 2 frames (RGB, 640x192) from a seed no shipped model trained on."""
    from ram_training.data import world_street
    config = world_street.World2Config(width=640, height=192, min_frames=VIDEO_FRAMES,
                                       max_frames=VIDEO_FRAMES)
    sequence = world_street.simulate(config, world_street.sequence_seed(4242, 0))
    return [world_street.render_frame(sequence, t).image for t in range(VIDEO_FRAMES)]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _ram_track(*args, env=None, **popen):
    """The installed console script (setup.py's entry point), one torch thread, eager torch (no
    ONNX export on a fresh machine)."""
    command = [str(Path(get_package_prefix('ram_tracker')) / 'lib' / 'ram_tracker' / 'ram-track'),
               *map(str, args), '--backend', 'torch', '--num-threads', '1']
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


def _video_frames(path: Path) -> list:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def _rows_by_id(rows) -> dict:
    frames_of = {}
    for row in rows:
        frames_of.setdefault(row.track_id, []).append(row.frame)
    return frames_of


def _no_temporary_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if '.tmp' in p.name]


def test_a_video_gives_kitti_tracks_a_summary_and_an_annotated_video_without_ros(
        street_frames, tmp_path):
    video = tmp_path / 'street.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 10, (640, 192))
    for rgb in street_frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    # rclpy present but failing to import: the command must never need it.
    no_ros = tmp_path / 'no_ros'
    (no_ros / 'rclpy').mkdir(parents=True)
    (no_ros / 'rclpy' / '__init__.py').write_text(
        "raise ImportError('ram-track imported rclpy')\n")
    env = {**os.environ, 'PYTHONPATH': f"{no_ros}:{os.environ.get('PYTHONPATH', '')}"}
    out = tmp_path / 'out'
    proc = _ram_track(video, '--out', out, '--max-age', 20, env=env)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr

    rows = read_labels(out / track_cli.TRACKS_FILE)     # parses as KITTI tracking result rows
    assert rows and all(r.score is not None and r.type in ('Car', 'Pedestrian') for r in rows)
    assert {r.frame for r in rows} <= set(range(VIDEO_FRAMES))
    frames_of = _rows_by_id(rows)
    assert all(len(f) == len(set(f)) for f in frames_of.values())   # one row per id and frame
    longest = max(len(f) for f in frames_of.values())
    assert longest >= VIDEO_FRAMES - 2, frames_of          # the same car keeps its id

    summary = json.loads((out / track_cli.SUMMARY_FILE).read_text())
    assert summary['interrupted'] is False and summary['error'] is None
    assert summary['frames_tracked'] == VIDEO_FRAMES and summary['input_kind'] == 'video'
    assert summary['parameters']['max_age'] == 20                   # the option reached it
    assert 'world2_ram.safetensors' in summary['model']             # the default model
    assert {t['id'] for t in summary['tracks']} == set(frames_of)
    for track in summary['tracks']:                                  # agrees with the rows
        assert track['frames_visible'] + track['frames_hidden'] == len(frames_of[track['id']])
        assert track['first_frame'] == min(frames_of[track['id']])

    annotated = _video_frames(out / track_cli.VIDEO_FILE)
    assert len(annotated) == VIDEO_FRAMES and annotated[0].shape == (192, 640, 3)
    # frame 0's biggest track has its label drawn above its box (filled, in its id's colour,
    # over the scene): far more changed there than the video codec changes
    biggest = max((r for r in rows if r.frame == 0),
                  key=lambda r: (r.box[2] - r.box[0]) * (r.box[3] - r.box[1]))
    x1, top = max(int(round(biggest.box[0])), 0), max(int(round(biggest.box[1])), 12)
    label = np.s_[top - 8:top - 2, x1 + 1:x1 + 12]
    drawn = np.abs(annotated[0][label].astype(int) - street_frames[0][:, :, ::-1][label]).mean()
    elsewhere = np.abs(annotated[0].astype(int) - street_frames[0][:, :, ::-1]).mean()
    assert drawn > 40 and elsewhere < 15, (drawn, elsewhere)
    assert _no_temporary_files(out)
    assert f'{VIDEO_FRAMES} frames' in stdout and str(out) in stdout


def test_ctrl_c_keeps_the_frames_done_and_a_bad_image_is_skipped(street_frames, tmp_path):
    folder = tmp_path / 'frames'
    folder.mkdir()
    total = VIDEO_FRAMES * FOLDER_COPIES
    for index in range(total):      # frame_2 before frame_10: numbers sort as numbers
        path = folder / f'frame_{index}.png'
        if index == CORRUPT_FRAME:
            path.write_bytes(b'not a png')
        else:
            cv2.imwrite(str(path), cv2.cvtColor(street_frames[index % VIDEO_FRAMES],
                                                cv2.COLOR_RGB2BGR))
    out = tmp_path / 'out'
    # Ctrl-C reaches a foreground process; one started from a background job (`make test &`)
    # inherits SIGINT ignored, so give the child the default disposition a terminal gives it.
    proc = _ram_track(folder, '--out', out, preexec_fn=_default_sigint)
    try:
        # The outputs appear only at the end; the line about the bad image says frames
        # 0..CORRUPT_FRAME are done and the run is in the middle of the folder.
        for line in proc.stderr:
            if 'skipped frame' in line:
                break
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == track_cli.EXIT_INTERRUPTED, stderr
    summary = json.loads((out / track_cli.SUMMARY_FILE).read_text())
    assert summary['interrupted'] is True
    tracked = summary['frames_tracked']
    assert CORRUPT_FRAME <= tracked < total - 1
    assert summary['frames_skipped'] == [
        {'frame': CORRUPT_FRAME, 'problem': f'frame_{CORRUPT_FRAME}.png: not a readable image'}]
    rows = read_labels(out / track_cli.TRACKS_FILE)
    frames_with_rows = {r.frame for r in rows}
    assert CORRUPT_FRAME not in frames_with_rows and max(frames_with_rows) <= tracked
    assert len(_video_frames(out / track_cli.VIDEO_FILE)) == tracked
    assert _no_temporary_files(out)


# -- bad input: one clear line naming the problem, a non-zero status, before any tracking -------

def _main(capsys, *args):
    status = track_cli.main([*map(str, args), '--backend', 'torch', '--num-threads', '1',
                             '--no-progress'])
    return status, capsys.readouterr().err


def test_bad_input_is_named_and_exits_non_zero(tmp_path, capsys):
    out = tmp_path / 'out'
    status, err = _main(capsys, tmp_path / 'nope.mp4', '--out', out)
    assert status == 2 and f'{tmp_path / "nope.mp4"}: no such file or folder' in err
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'notes.txt').write_text('no images here')
    status, err = _main(capsys, tmp_path / 'empty', '--out', out)
    assert status == 2 and 'empty: no images in this folder' in err
    (tmp_path / 'clip.mp4').write_text('not a video')
    status, err = _main(capsys, tmp_path / 'clip.mp4', '--out', out)
    assert status == 2 and 'clip.mp4: OpenCV cannot open it as a video' in err
    frames = tmp_path / 'frames'
    frames.mkdir()
    cv2.imwrite(str(frames / '0.png'), np.zeros((64, 96, 3), np.uint8))
    status, err = _main(capsys, frames, '--out', out, '--detection-threshold', 2)
    assert status == 2 and 'detection_threshold' in err
    (tmp_path / 'a_file').write_text('')
    status, err = _main(capsys, frames, '--out', tmp_path / 'a_file')
    assert status == 2 and 'a_file: exists and is not a folder' in err
    garbage = tmp_path / 'garbage.safetensors'
    garbage.write_bytes(b'\x13\x37 not a safetensors file ' * 200)
    status, err = _main(capsys, frames, '--out', out, '--model', garbage)
    assert status == 1 and 'cannot start the tracker' in err and str(garbage) in err
    status, err = _main(capsys, frames, '--out', out, '--model', tmp_path / 'missing.safetensors')
    assert status == 1 and 'missing.safetensors' in err
    assert not out.exists() or not list(out.iterdir())        # nothing written for a failure


def test_every_pipeline_parameter_is_an_option_and_enough_for_the_pipeline(tmp_path):
    """ram-track offers PIPELINE_PARAMETERS; from_params must need no other parameter."""
    options = {action.dest for action in track_cli.build_parser()._actions}
    assert set(PIPELINE_PARAMETERS) <= options
    torch.manual_seed(0)
    tiny = ModelConfig(class_names=('car', 'pedestrian'), backbone_width=8, neck_channels=16,
                       memory_channels=16, head_channels=16, embed_channels=16)
    weights = save_weights(tmp_path / 'tiny.safetensors', build_model(tiny))
    params = parameters.validate({'model_path': str(weights), 'device': 'cpu', 'backend': 'torch',
                                  'input_width': 64, 'input_height': 32, 'num_threads': 1})
    TrackingPipeline.from_params({name: params[name] for name in PIPELINE_PARAMETERS})
