"""ram-track: what RAM does on your video, without ROS.

  ram-track VIDEO_OR_FOLDER --out DIR [--model world2_ram] [--device cpu] [--max-age 30] ...

Reads a video file (anything this OpenCV decodes) or a folder of images (sorted by name, numbers
in names compared as numbers), runs the tracker pipeline the node runs (same parameters, same
defaults, same model resolution: ram_tracker.pipeline) and writes into DIR:

  tracks.txt    every live track (visible and hidden) per frame, KITTI tracking result format
                (ram_tracker.kitti_format; `frame` is the index in the input)
  summary.json  input, model, parameters, frames/s, and per track its class, first and last
                frame, frames visible / hidden and the hidden spans
  tracks.mp4    the input with boxes and ids; hidden tracks dashed with their id and '?', and
                their walker's belief as a heatmap (ram_tracker.visualize, the node's debug_image)

Files are written atomically. Ctrl-C (or SIGTERM) stops after the current frame and still writes
everything done so far; summary.json then says "interrupted": true (exit status 130).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np

from ram_tracker import parameters
from ram_tracker.atomic_write import atomic_path, atomic_write_text
from ram_tracker.checkpoint import WeightsError
from ram_tracker.kitti_format import kitti_type, write_results
from ram_tracker.pipeline import PIPELINE_PARAMETERS, FrameResult, TrackingPipeline
from ram_tracker.visualize import draw_tracks

PROG = 'ram-track'
TRACKS_FILE = 'tracks.txt'
SUMMARY_FILE = 'summary.json'
VIDEO_FILE = 'tracks.mp4'
VIDEO_FOURCC = 'mp4v'     # the MPEG-4 encoder every OpenCV wheel with FFmpeg has
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm',
                  '.pnm')
DEFAULT_FPS = 10.0        # KITTI's frame rate: an image folder says nothing about its own
# A model class that is not a KITTI type (World 1's target, cone, ...) is written as Misc; the
# summary maps each class to the type it was written as.
FALLBACK_KITTI_TYPE = 'Misc'
# Parameter name -> option; the others are --<name with dashes>.
OPTION_NAMES = {'model_path': '--model'}
EXIT_INPUT_ERROR = 2      # argparse's status for a bad command line
EXIT_START_ERROR = 1
EXIT_INTERRUPTED = 130    # 128 + SIGINT, what a shell reports for a Ctrl-C


class InputError(ValueError):
    """The input cannot be tracked; the message names the path and what is wrong."""


# -- input ------------------------------------------------------------------------------------

@dataclass
class Frame:
    index: int                        # position in the input: the KITTI `frame`
    bgr: Optional[np.ndarray]         # None: this frame could not be read
    problem: str = ''


class VideoFrames:
    """The frames of a video file, decoded by OpenCV."""
    kind = 'video'

    def __init__(self, path: Path):
        self.path = path
        self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise InputError(f'{path}: OpenCV cannot open it as a video (not a video file, or '
                             f'a codec this OpenCV build lacks; a folder of images works too)')
        ok, self._first = self._capture.read()
        if not ok:
            self._capture.release()
            raise InputError(f'{path}: OpenCV opened it but decoded no frame')
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if np.isfinite(fps) and 0 < fps < 1000 else DEFAULT_FPS
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.num_frames = count if count > 0 else None    # containers may not say

    def __iter__(self) -> Iterator[Frame]:
        # A frame that does not decode ends the stream: OpenCV reports it like the end.
        try:
            bgr, index = self._first, 0
            while bgr is not None:
                yield Frame(index, bgr)
                ok, bgr = self._capture.read()
                bgr, index = (bgr if ok else None), index + 1
        finally:
            self._capture.release()


class ImageFrames:
    """Image files in name order; one that does not decode is reported and skipped."""
    kind = 'images'

    def __init__(self, path: Path, fps: float):
        self.path = path
        self.fps = fps
        if path.is_dir():
            self.files = sorted((p for p in path.iterdir()
                                 if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                                key=_natural_key)
            if not self.files:
                raise InputError(f'{path}: no images in this folder (looked for '
                                 f"{', '.join('*' + s for s in IMAGE_SUFFIXES)})")
        else:
            self.files = [path]
        self.num_frames = len(self.files)

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.files):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            yield Frame(index, bgr, '' if bgr is not None else f'{path.name}: not a readable image')


def _natural_key(path: Path):
    """frame2.png before frame10.png."""
    return [int(part) if part.isdigit() else part.lower()
            for part in re.split(r'(\d+)', path.name)]


def open_input(path: Path, fps: Optional[float]):
    """The frames of a video file, an image file or a folder of images; InputError if none."""
    if not path.exists():
        raise InputError(f'{path}: no such file or folder')
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFrames(path, fps or DEFAULT_FPS)
    frames = VideoFrames(path)
    if fps:
        frames.fps = fps
    return frames


# -- tracking ---------------------------------------------------------------------------------

@dataclass
class TrackRecord:
    """What one track did over the input (summary.json)."""
    track_id: int
    class_name: str
    first_frame: int
    last_frame: int
    frames_visible: int = 0
    frames_hidden: int = 0
    hidden_spans: list = field(default_factory=list)    # [first, last] input frames, inclusive

    def add(self, frame: int, state: str) -> None:
        previous, self.last_frame = self.last_frame, frame
        if state == 'visible':
            self.frames_visible += 1
            return
        self.frames_hidden += 1
        if self.hidden_spans and self.hidden_spans[-1][1] == previous:
            self.hidden_spans[-1][1] = frame
        else:
            self.hidden_spans.append([frame, frame])

    def as_dict(self) -> dict:
        return {'id': self.track_id, 'class': self.class_name, 'first_frame': self.first_frame,
                'last_frame': self.last_frame, 'frames_visible': self.frames_visible,
                'frames_hidden': self.frames_hidden, 'hidden_spans': self.hidden_spans}


class TrackRun:
    """Collects the pipeline's results frame by frame: KITTI rows, per-track records, skips."""

    def __init__(self):
        self.predictions: dict[int, list] = {}
        self.records: dict[int, TrackRecord] = {}
        self.kitti_types: dict[str, str] = {}
        self.skipped: list[dict] = []
        self.frames_tracked = 0
        self.streams = 0
        self._id_offset = 0
        self._size = None

    def start_frame(self, frame: Frame) -> None:
        size = frame.bgr.shape[:2]
        if size != self._size:
            # The pipeline restarts its memory and its ids at 1 on a new resolution: keep the
            # ids of the file unique across such restarts.
            self._id_offset = max(self.records, default=0)
            self._size = size
            self.streams += 1

    def add(self, frame: int, result: FrameResult) -> None:
        rows = []
        for track in result.tracks:
            if track.state == 'lost':
                continue
            track_id = track.track_id + self._id_offset
            cx, cy, w, h = (float(v) for v in track.box_cxcywh)
            rows.append((track_id, self._kitti_type(track.class_name),
                         cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, float(track.score)))
            record = self.records.get(track_id)
            if record is None:
                record = self.records[track_id] = TrackRecord(track_id, track.class_name,
                                                              frame, frame)
            record.add(frame, track.state)
        self.predictions[frame] = rows
        self.frames_tracked += 1

    def _kitti_type(self, class_name: str) -> str:
        if class_name not in self.kitti_types:
            try:
                self.kitti_types[class_name] = kitti_type(class_name)
            except ValueError:
                self.kitti_types[class_name] = FALLBACK_KITTI_TYPE
        return self.kitti_types[class_name]


class AnnotatedVideo:
    """tracks.mp4: opened at the first frame (its size, the input's rate), written to a
    temporary file beside it and moved into place by close(), so a stopped run leaves a
    playable video of the frames done, never half a file."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = path, fps
        self.frames = 0
        self._writer = None
        self._size = None
        self._stack = contextlib.ExitStack()

    def write(self, rgb: np.ndarray) -> None:
        if self._writer is None:
            tmp = self._stack.enter_context(atomic_path(self.path, keep_suffix=True))
            self._size = (rgb.shape[1], rgb.shape[0])
            self._writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*VIDEO_FOURCC),
                                           self.fps, self._size)
            if not self._writer.isOpened():
                raise RuntimeError(f'{self.path}: OpenCV cannot write {VIDEO_FOURCC} video '
                                   f'(use --no-video)')
        if (rgb.shape[1], rgb.shape[0]) != self._size:    # an image of another size mid-folder
            rgb = cv2.resize(rgb, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._stack.close()


def track_frames(frames, pipeline: TrackingPipeline, video: Optional[AnnotatedVideo],
                 run: TrackRun, progress: bool = True) -> None:
    """Every frame through the pipeline into `run` (and the video). KeyboardInterrupt
    propagates after the last finished frame was recorded."""
    from tqdm import tqdm
    bar = tqdm(total=frames.num_frames, unit='frame', desc=PROG, dynamic_ncols=True,
               disable=None if progress else True)     # None: off when stderr is no terminal
    try:
        for frame in frames:
            bar.update()
            if frame.bgr is None:
                run.skipped.append({'frame': frame.index, 'problem': frame.problem})
                bar.write(f'{PROG}: skipped frame {frame.index}: {frame.problem}', file=sys.stderr)
                continue
            run.start_frame(frame)
            rgb = cv2.cvtColor(frame.bgr, cv2.COLOR_BGR2RGB)
            result = pipeline.process(rgb)
            run.add(frame.index, result)
            if video is not None:
                video.write(draw_tracks(rgb, result.tracks, result.beliefs))
            bar.set_postfix(tracks=len(run.records), refresh=False)
    finally:
        bar.close()


def build_summary(args, frames, pipeline: TrackingPipeline, params: dict, run: TrackRun,
                  video: Optional[AnnotatedVideo], seconds: float, interrupted: bool,
                  error: str) -> dict:
    records = sorted(run.records.values(), key=lambda r: r.track_id)
    return {
        'input': str(args.input.resolve()),
        'input_kind': frames.kind,
        'frames_in_input': frames.num_frames,
        'frames_tracked': run.frames_tracked,
        'frames_skipped': run.skipped,
        'interrupted': interrupted,
        'error': error or None,
        'seconds': round(seconds, 2),
        'frames_per_s': round(run.frames_tracked / seconds, 2) if seconds > 0 else None,
        'model': pipeline.describe(),
        'weights': {key: pipeline.stream.model_info.get(key)
                    for key in ('name', 'weights_path', 'weights_sha256')},
        'parameters': {name: params[name] for name in PIPELINE_PARAMETERS},
        'streams': run.streams,     # > 1: the image size changed and the memory restarted
        'outputs': {'tracks': TRACKS_FILE, 'summary': SUMMARY_FILE,
                    'video': VIDEO_FILE if video is not None and video.frames else None},
        'video': {'frames': video.frames, 'fps': video.fps} if video is not None else None,
        'kitti_types': run.kitti_types,
        'num_tracks': len(records),
        'tracks_hidden_at_some_point': sum(1 for r in records if r.frames_hidden),
        'tracks': [r.as_dict() for r in records],
    }


# -- command line -----------------------------------------------------------------------------

SCHEMA_TYPES = {'string': str, 'number': float, 'integer': int}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description='Track the objects of a video file or a folder of images with '
        'RAM, without ROS: KITTI-format tracks, a JSON summary and an annotated video.',
        epilog=f'Writes DIR/{TRACKS_FILE}, DIR/{SUMMARY_FILE} and DIR/{VIDEO_FILE} (atomically; '
        'Ctrl-C keeps what is done). Exit status: 0 done, 1 the tracker could not start or '
        f'failed, 2 bad input or options, {EXIT_INTERRUPTED} interrupted.')
    parser.add_argument('input', type=Path, metavar='VIDEO_OR_FOLDER',
                        help='a video file OpenCV reads, an image, or a folder of images '
                        '(name order; frame2 before frame10)')
    parser.add_argument('--out', type=Path, required=True, metavar='DIR',
                        help='output folder (created; earlier outputs in it are replaced)')
    parser.add_argument('--params-file', type=Path, metavar='YAML',
                        help="a parameters file of the node (e.g. config/tracker.yaml); the "
                        'options below override it')
    parser.add_argument('--fps', type=float,
                        help=f"frame rate of the annotated video (default: the video's own, "
                        f'{DEFAULT_FPS:g} for images)')
    parser.add_argument('--no-video', action='store_true', help=f'do not write {VIDEO_FILE}')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    group = parser.add_argument_group(
        'tracker parameters', 'the tracker node\'s parameters, with its defaults '
        '(src/ram_tracker/ram_tracker/schema/tracker_node.schema.json)')
    schema = parameters.load_schema()['properties']
    for name in PIPELINE_PARAMETERS:
        spec = schema[name]
        option = OPTION_NAMES.get(name, '--' + name.replace('_', '-'))
        text = spec.get('description', '').replace('%', '%%')
        kwargs = {'dest': name, 'default': None,
                  'help': f"{text} (default: {spec['default']})"}
        if spec['type'] == 'boolean':
            kwargs['action'] = argparse.BooleanOptionalAction
        else:
            kwargs['type'] = SCHEMA_TYPES[spec['type']]
            kwargs['metavar'] = spec['type'].upper()
            if 'enum' in spec:
                kwargs['choices'] = spec['enum']
                kwargs.pop('metavar')
        group.add_argument(option, **kwargs)
    return parser


def pipeline_parameters(args) -> dict:
    """Schema defaults < --params-file < options; validated like the node's (ParameterError)."""
    values = parameters.load_params_file(args.params_file) if args.params_file else {}
    values.update({name: getattr(args, name) for name in PIPELINE_PARAMETERS
                   if getattr(args, name) is not None})
    return parameters.validate(values)


def _error(message: str, status: int) -> int:
    print(f'{PROG}: error: {message}', file=sys.stderr)
    return status


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        frames = open_input(args.input, args.fps)
        params = pipeline_parameters(args)
        if args.out.exists() and not args.out.is_dir():
            raise InputError(f'--out {args.out}: exists and is not a folder')
        args.out.mkdir(parents=True, exist_ok=True)
    except (InputError, parameters.ParameterError) as error:
        return _error(str(error), EXIT_INPUT_ERROR)
    except OSError as error:
        return _error(f'--out {args.out}: {error.strerror or error}', EXIT_INPUT_ERROR)

    # SIGTERM (a supervisor, `timeout`) stops like Ctrl-C: what is done is written.
    previous_sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return _track(args, frames, params)
    except KeyboardInterrupt:
        return _error('interrupted before tracking started; nothing written', EXIT_INTERRUPTED)
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)


def _track(args, frames, params: dict) -> int:
    try:
        pipeline = TrackingPipeline.from_params(params)
    except (FileNotFoundError, WeightsError, ValueError) as error:
        return _error(f'cannot start the tracker: {error}', EXIT_START_ERROR)
    print(f'{PROG}: {pipeline.describe()}', file=sys.stderr)
    count = f'{frames.num_frames} frames' if frames.num_frames else 'frames'
    print(f'{PROG}: tracking {args.input} ({frames.kind}, {count}) into {args.out}',
          file=sys.stderr, flush=True)
    run = TrackRun()
    video = None if args.no_video else AnnotatedVideo(args.out / VIDEO_FILE, frames.fps)
    interrupted, error = False, ''
    started = time.perf_counter()
    try:
        track_frames(frames, pipeline, video, run, progress=not args.no_progress)
    except KeyboardInterrupt:
        interrupted = True
    except Exception as failure:      # noqa: BLE001 - written into the summary, then re-raised
        error = f'{type(failure).__name__}: {failure}'
        raise
    finally:
        seconds = time.perf_counter() - started
        if video is not None:
            video.close()
        write_results(args.out / TRACKS_FILE, run.predictions)
        summary = build_summary(args, frames, pipeline, params, run, video, seconds,
                                interrupted, error)
        atomic_write_text(args.out / SUMMARY_FILE, json.dumps(summary, indent=2) + '\n')
    if not run.frames_tracked and not interrupted:
        return _error(f'{args.input}: no frame could be read', EXIT_INPUT_ERROR)
    stopped = ' (interrupted: the frames done are written)' if interrupted else ''
    print(f"{PROG}: {run.frames_tracked} frames in {seconds:.1f} s "
          f"({summary['frames_per_s']} frames/s), {summary['num_tracks']} tracks, "
          f"{summary['tracks_hidden_at_some_point']} hidden at some point{stopped} -> "
          f'{args.out}')
    return EXIT_INTERRUPTED if interrupted else 0


if __name__ == '__main__':
    sys.exit(main())
