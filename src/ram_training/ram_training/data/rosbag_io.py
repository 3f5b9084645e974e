"""rosbag2 bags from KITTI-format sequences, and reading them back, with PyPI `rosbags`
(pure Python; no ROS installation needed).

A converted bag holds, per frame t (stamp = start + t / rate, 10 Hz for KITTI):
  /camera/image_raw      sensor_msgs/msg/Image (rgb8)
  /camera/camera_info    sensor_msgs/msg/CameraInfo (K, P from calib P2; no distortion: KITTI
                         images are rectified)
  /ground_truth/tracks   ram_msgs/msg/TrackedObjectArray (label_02 rows; with include_hidden,
                         also hidden_02 rows as STATE_OCCLUDED)
all with the same header stamp and frame_id. The ram_msgs types are registered in rosbags from
the .msg files (src/ram_msgs/msg in the repository, or share/ram_msgs/msg of an installed
workspace), so the bag's type hashes match a colcon build of ram_msgs.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from . import kitti
from .atomic import remove_leftovers_of_dead_runs

RAM_MSGS_PACKAGE = "ram_msgs"
# KITTI type -> ram_msgs class_id (the tracker's class names)
DEFAULT_CLASS_IDS = {"Car": "car", "Pedestrian": "pedestrian", "Van": "van", "Truck": "truck",
                     "Cyclist": "cyclist", "Person": "person_sitting", "Person_sitting": "person_sitting",
                     "Tram": "tram", "Misc": "misc"}
STATE_VISIBLE, STATE_OCCLUDED = 0, 1
SOURCE_DETECTION = 0


def find_ram_msgs_dir() -> Path:
    """The directory with ram_msgs' .msg files: $RAM_MSGS_DIR, the repository's src/ram_msgs/msg,
    or share/ram_msgs/msg under a prefix on AMENT_PREFIX_PATH."""
    candidates = []
    if os.environ.get("RAM_MSGS_DIR"):
        candidates.append(Path(os.environ["RAM_MSGS_DIR"]))
    candidates.append(Path(__file__).resolve().parents[3] / "ram_msgs" / "msg")
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / RAM_MSGS_PACKAGE / "msg")
    for c in candidates:
        if c.is_dir() and any(c.glob("*.msg")):
            return c
    raise FileNotFoundError("ram_msgs .msg files not found; set RAM_MSGS_DIR (looked in: "
                            + ", ".join(str(c) for c in candidates) + ")")


def make_typestore(msg_dir: Path | None = None):
    """A rosbags typestore for ROS 2 Kilted plus the ram_msgs types (ram_msgs/msg/<Name>)."""
    from rosbags.typesys import Stores, get_typestore, get_types_from_msg
    typestore = get_typestore(Stores.ROS2_KILTED)
    msg_dir = Path(msg_dir) if msg_dir else find_ram_msgs_dir()
    types = {}
    for path in sorted(msg_dir.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{RAM_MSGS_PACKAGE}/msg/{path.stem}"))
    typestore.register(types)
    return typestore


@dataclass
class BagConfig:
    image_topic: str = "/camera/image_raw"
    camera_info_topic: str = "/camera/camera_info"
    tracks_topic: str = "/ground_truth/tracks"
    frame_id: str = "camera"
    rate_hz: float = 10.0                       # KITTI is recorded at 10 FPS
    start_time_ns: int = 1_700_000_000_000_000_000  # fixed, so conversions are reproducible
    storage: str = "mcap"                       # "mcap" or "sqlite3"
    include_hidden: bool = False                # add hidden_02 rows as STATE_OCCLUDED tracks
    class_ids: dict = field(default_factory=lambda: dict(DEFAULT_CLASS_IDS))


def frame_stamp_ns(config: BagConfig, t: int) -> int:
    return int(config.start_time_ns + round(t * 1e9 / config.rate_hz))


def _header(typestore, stamp_ns: int, frame_id: str):
    Header = typestore.types["std_msgs/msg/Header"]
    Time = typestore.types["builtin_interfaces/msg/Time"]
    return Header(stamp=Time(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000)),
                  frame_id=frame_id)


def image_message(typestore, image_rgb: np.ndarray, header):
    Image = typestore.types["sensor_msgs/msg/Image"]
    h, w = image_rgb.shape[:2]
    return Image(header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w,
                 data=np.ascontiguousarray(image_rgb, dtype=np.uint8).reshape(-1))


def camera_info_message(typestore, calib: kitti.KittiCalib | None, width: int, height: int, header):
    CameraInfo = typestore.types["sensor_msgs/msg/CameraInfo"]
    RegionOfInterest = typestore.types["sensor_msgs/msg/RegionOfInterest"]
    P = calib.P2 if calib is not None else np.array([[1.0, 0, width / 2, 0], [0, 1.0, height / 2, 0], [0, 0, 1, 0]])
    return CameraInfo(header=header, height=height, width=width, distortion_model="plumb_bob",
                      d=np.zeros(5), k=np.asarray(P[:, :3], dtype=np.float64).reshape(-1),
                      r=np.eye(3).reshape(-1), p=np.asarray(P, dtype=np.float64).reshape(-1),
                      binning_x=0, binning_y=0,
                      roi=RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def tracks_message(typestore, rows: list, header, history: dict, config: BagConfig, frame: int):
    """TrackedObjectArray from (KittiObject, hidden) pairs of one frame. `history` (track id -> (first frame,
    last labelled frame, last centre)) is updated; it yields age, frames_since_seen, velocity."""
    T = typestore.types
    objects = []
    for r, hidden in rows:
        if r.type == "DontCare" or r.track_id < 0:
            continue
        x1, y1, x2, y2 = r.box
        cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        first, last_seen, last_center = history.get(r.track_id, (frame, frame, (cx, cy)))
        gap = max(frame - last_seen, 1)
        vx, vy = (cx - last_center[0]) / gap, (cy - last_center[1]) / gap
        bbox = T["ram_msgs/msg/BoundingBox2D"](
            center=T["ram_msgs/msg/Pose2D"](position=T["ram_msgs/msg/Point2D"](x=float(cx), y=float(cy)), theta=0.0),
            size_x=float(x2 - x1), size_y=float(y2 - y1))
        objects.append(T["ram_msgs/msg/TrackedObject"](
            id=int(r.track_id), class_id=config.class_ids.get(r.type, r.type.lower()), score=1.0, bbox=bbox,
            state=STATE_OCCLUDED if hidden else STATE_VISIBLE,
            frames_since_seen=int(frame - last_seen) if hidden else 0,
            walker_confidence=1.0, velocity_x=float(vx), velocity_y=float(vy), box_source=SOURCE_DETECTION,
            visibility=0.0 if hidden else float(kitti.OCCLUSION_TO_VISIBILITY.get(r.occluded, 0.5)),
            age=int(frame - first)))
        history[r.track_id] = (first, last_seen if hidden else frame, (cx, cy))
    return T["ram_msgs/msg/TrackedObjectArray"](header=header, tracks=objects)


def kitti_to_bag(kitti_root, sequence: str, bag_path, split: str = "training",
                 config: BagConfig = BagConfig(), typestore=None, max_frames: int | None = None) -> dict:
    """Convert one KITTI-format sequence into a rosbag2 bag directory at `bag_path` (written
    next to it under a temporary name and renamed when complete)."""
    typestore = typestore or make_typestore()
    seq = kitti.load_sequence(kitti_root, sequence, split)
    if not seq.image_paths:
        raise kitti.KittiFormatError(kitti_root, None, f"sequence {sequence} has no images")
    by_frame: dict[int, list] = {}
    for r in seq.labels:
        by_frame.setdefault(r.frame, []).append((r, False))
    if config.include_hidden:
        for r in seq.hidden:
            by_frame.setdefault(r.frame, []).append((r, True))
    num_frames = seq.num_frames if max_frames is None else min(seq.num_frames, max_frames)
    history: dict = {}

    def frames():
        for t in range(num_frames):
            header = _header(typestore, frame_stamp_ns(config, t), config.frame_id)
            image = seq.image(t)
            rows = sorted(by_frame.get(t, []), key=lambda pair: pair[0].track_id)
            yield header, image, seq.calib, tracks_message(typestore, rows, header, history, config, t)

    return write_frames_bag(bag_path, frames(), config, typestore)


def world1_to_bag(video_path, bag_path, config: BagConfig = BagConfig(rate_hz=30.0), typestore=None,
                  max_frames: int | None = None) -> dict:
    """Convert one World 1 video (its .npz scene script, frames re-rendered) into a bag with the
    same topics as a KITTI conversion; ground truth holds every object, the hidden ones (visible
    fraction <= 0.05) as STATE_OCCLUDED with their true boxes (World 1 knows them)."""
    from .clips import World1VideoSource
    typestore = typestore or make_typestore()
    video = World1VideoSource(Path(video_path))
    ann = video.annotations
    names = video.class_names
    num_frames = video.num_frames if max_frames is None else min(video.num_frames, max_frames)
    T = typestore.types

    def tracks(t, header):
        objects = []
        for k in np.flatnonzero(ann.present[t]):
            x1, y1, x2, y2 = (float(v) for v in ann.boxes[t, k])
            hidden = float(ann.visibility[t, k]) <= 0.05
            bbox = T["ram_msgs/msg/BoundingBox2D"](
                center=T["ram_msgs/msg/Pose2D"](position=T["ram_msgs/msg/Point2D"](
                    x=(x1 + x2) / 2.0, y=(y1 + y2) / 2.0), theta=0.0),
                size_x=x2 - x1, size_y=y2 - y1)
            objects.append(T["ram_msgs/msg/TrackedObject"](
                id=int(ann.track_ids[k]), class_id=names[int(ann.classes[k])], score=1.0, bbox=bbox,
                state=STATE_OCCLUDED if hidden else STATE_VISIBLE, frames_since_seen=0,
                walker_confidence=1.0, velocity_x=0.0, velocity_y=0.0, box_source=SOURCE_DETECTION,
                visibility=float(ann.visibility[t, k]), age=int(t)))
        return T["ram_msgs/msg/TrackedObjectArray"](header=header, tracks=objects)

    def frames():
        for t in range(num_frames):
            header = _header(typestore, frame_stamp_ns(config, t), config.frame_id)
            yield header, video.image(t), None, tracks(t, header)

    return write_frames_bag(bag_path, frames(), config, typestore)


@contextmanager
def staged_bag_dir(bag_path):
    """Where to write a bag so that `bag_path` only ever holds a complete one: a temporary
    parent holds it under its final name (rosbags names the storage file after the bag
    directory) and it is moved into place when the block completes. After an exception nothing
    is moved (the partial bag stays in the hidden staging folder). The staging folders that
    killed runs left for this bag are removed first; a live run's is left alone."""
    bag_path = Path(bag_path)
    prefix = f".{bag_path.name}.partial"
    remove_leftovers_of_dead_runs(bag_path.parent, prefix)
    staging = bag_path.parent / f"{prefix}{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    yield staging / bag_path.name
    if bag_path.exists():
        shutil.rmtree(bag_path)
    os.replace(staging / bag_path.name, bag_path)
    staging.rmdir()


def write_frames_bag(bag_path, frames, config: BagConfig, typestore) -> dict:
    """Write (header, rgb image, calib or None, TrackedObjectArray) per frame into a bag with
    the image, camera_info and ground-truth topics of `config`, atomically (staged_bag_dir)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if config.storage not in plugins:
        raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {config.storage!r}")
    bag_path = Path(bag_path)
    count = 0
    with staged_bag_dir(bag_path) as tmp, Writer(tmp, version=9, storage_plugin=plugins[config.storage]) as writer:
        image_conn = writer.add_connection(config.image_topic, "sensor_msgs/msg/Image", typestore=typestore)
        info_conn = writer.add_connection(config.camera_info_topic, "sensor_msgs/msg/CameraInfo", typestore=typestore)
        tracks_conn = writer.add_connection(config.tracks_topic, "ram_msgs/msg/TrackedObjectArray", typestore=typestore)
        for header, image, calib, tracks in frames:
            stamp = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
            h, w = image.shape[:2]
            writer.write(image_conn, stamp, typestore.serialize_cdr(image_message(typestore, image, header),
                                                                    "sensor_msgs/msg/Image"))
            writer.write(info_conn, stamp, typestore.serialize_cdr(camera_info_message(typestore, calib, w, h, header),
                                                                   "sensor_msgs/msg/CameraInfo"))
            writer.write(tracks_conn, stamp, typestore.serialize_cdr(tracks, "ram_msgs/msg/TrackedObjectArray"))
            count += 1
    return {"bag": str(bag_path), "frames": count, "storage": config.storage,
            "bytes": sum(p.stat().st_size for p in bag_path.rglob("*") if p.is_file())}


# ---------------------------------------------------------------------------------------
# Reading


@dataclass
class BagFrame:
    """Everything a bag holds for one stamp. image: RGB uint8 (H,W,3) (rgb8/bgr8/mono8 decoded);
    tracks: list of dicts (id, class_id, box x1,y1,x2,y2, state, visibility, ...)."""

    stamp_ns: int
    image: np.ndarray | None = None
    camera_info: object | None = None
    tracks: list | None = None
    messages: dict = field(default_factory=dict)  # topic -> deserialised message


class BagError(ValueError):
    """A bag that cannot be read, or does not hold what is asked of it; the message names the
    file (and the topic) and what is wrong."""


def _storage_files(bag: Path) -> str:
    """The bag's storage files, for messages (rosbags' own errors do not name them)."""
    files = sorted(str(p) for p in bag.iterdir() if p.suffix in (".mcap", ".db3")) \
        if bag.is_dir() else []
    return ", ".join(files) or str(bag)


@contextmanager
def open_bag(bag_path):
    """An open rosbags Reader of the bag folder `bag_path`. BagError, naming the file, for a bag
    that is missing, incomplete or truncated (what a recorder that was killed leaves)."""
    from rosbags.rosbag2 import Reader
    bag = Path(bag_path)
    if not bag.exists():
        raise BagError(f"{bag}: no such bag")
    if bag.is_dir() and not (bag / "metadata.yaml").is_file():
        raise BagError(f"{bag}: no metadata.yaml, so not a complete rosbag2 bag (storage files: "
                       f"{_storage_files(bag)}); a recorder that was killed never writes it, and "
                       "`ros2 bag reindex` rebuilds it from an intact storage file")
    try:
        reader = Reader(bag)
        reader.open()
    except Exception as error:          # rosbags raises ReaderError, OSError, KeyError, ...
        raise BagError(f"{_storage_files(bag)}: cannot be read: {str(error).rstrip('.')} "
                       "(truncated or corrupt: a recording that did not finish?)") from error
    try:
        yield reader
    finally:
        reader.close()


def iterate_raw(bag_path, topics=None):
    """Yield (topic, msgtype, log time ns, raw CDR bytes) in time order. BagError, naming the
    file and how far it could be read, for a bag that breaks off."""
    with open_bag(bag_path) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        messages = reader.messages(connections=conns)
        count = 0
        while True:
            try:
                conn, timestamp, raw = next(messages)
            except StopIteration:
                return
            except Exception as error:  # a chunk cut off or corrupt (decompression, CDR, sqlite)
                raise BagError(f"{_storage_files(Path(bag_path))}: unreadable after {count} "
                               f"messages: {str(error).rstrip('.')} (truncated or corrupt?)"
                               ) from error
            count += 1
            yield conn.topic, conn.msgtype, timestamp, bytes(raw)


def topics_of(bag_path) -> dict:
    """topic -> (msgtype, message count)."""
    with open_bag(bag_path) as reader:
        return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}


def decode_image(msg) -> np.ndarray:
    """RGB uint8 (H, W, 3) of a deserialised sensor_msgs/Image (the node's own conversion)."""
    from ram_tracker.image_conversion import image_to_rgb
    return image_to_rgb(msg.encoding, msg.height, msg.width, msg.step,
                        np.asarray(msg.data, dtype=np.uint8))


def _track_dict(obj) -> dict:
    c, sx, sy = obj.bbox.center.position, obj.bbox.size_x, obj.bbox.size_y
    return {"id": int(obj.id), "class_id": obj.class_id, "score": float(obj.score),
            "box": (c.x - sx / 2, c.y - sy / 2, c.x + sx / 2, c.y + sy / 2), "state": int(obj.state),
            "visibility": float(obj.visibility), "age": int(obj.age),
            "frames_since_seen": int(obj.frames_since_seen)}


def read_bag(bag_path, typestore=None, config: BagConfig = BagConfig()) -> Iterator[BagFrame]:
    """Iterate a bag as frames: messages grouped by header stamp, in stamp order."""
    typestore = typestore or make_typestore()
    current: BagFrame | None = None
    for topic, msgtype, _, raw in iterate_raw(bag_path):
        msg = typestore.deserialize_cdr(raw, msgtype)
        header = getattr(msg, "header", None)
        stamp = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec if header is not None else None
        if current is not None and stamp is not None and stamp != current.stamp_ns:
            yield current
            current = None
        if current is None:
            current = BagFrame(stamp_ns=stamp if stamp is not None else 0)
        current.messages[topic] = msg
        if msgtype == "sensor_msgs/msg/Image":
            current.image = decode_image(msg)
        elif msgtype == "sensor_msgs/msg/CameraInfo":
            current.camera_info = msg
        elif msgtype == "ram_msgs/msg/TrackedObjectArray":
            current.tracks = [_track_dict(o) for o in msg.tracks]
    if current is not None:
        yield current
