"""Publish images as sensor_msgs/Image with their sensor_msgs/CameraInfo: a stand-in camera.

Sources (parameter `source`): a video file (anything OpenCV reads), a folder of images (sorted
by name, e.g. a KITTI image_02/0000 folder), or `pattern:WxH`, a built-in scene of shapes that
move and pass behind an occluder. Published at `rate_hz` with the chosen `encoding`
(rgb8/bgr8/mono8/rgba8/bgra8), stamped with the node clock, `frame_id` from a parameter.
Each image's CameraInfo on `camera_info` has the same header and the image's size; the
calibration comes from `camera_info_url` (camera_calibration's YAML), else it is all zeros
(uncalibrated, as sensor_msgs/CameraInfo defines). QoS: reliable by default, as REP-2003 asks
of drivers (best-effort subscribers still receive it); `reliability:=best_effort` otherwise.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np
import rclpy
import yaml
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from ram_tracker.image_conversion import ImageConversionError
from ram_tracker.ros.ros_conversions import rgb_to_image_msg

_IMAGE_SUFFIXES = {'.png', '.jpg', '.jpeg', '.bmp', '.ppm'}
# A looping image folder is decoded once, then served from memory while its frames fit in this
# many bytes: a camera driver hands over raw frames, it does not decode a PNG per frame (a full
# KITTI frame takes ~8 ms, a quarter of a core at 30 Hz taken from the node under test).
FOLDER_CACHE_BYTES = 512 * 2 ** 20
RELIABILITY = {'reliable': ReliabilityPolicy.RELIABLE,
               'best_effort': ReliabilityPolicy.BEST_EFFORT}
# camera_calibration_parsers' YAML: field -> (key, rows, cols).
_CALIBRATION_MATRICES = {'k': ('camera_matrix', 3, 3), 'r': ('rectification_matrix', 3, 3),
                         'p': ('projection_matrix', 3, 4)}


def load_camera_info(url: str) -> CameraInfo:
    """The calibration in `url` (file:///path/cam.yaml or a path; the YAML that
    camera_calibration writes and camera_info_manager reads) as a CameraInfo without header."""
    path = Path(urlparse(url).path if url.startswith('file://') else url).expanduser()
    try:
        calibration = yaml.safe_load(path.read_text())
        info = CameraInfo(width=int(calibration['image_width']),
                          height=int(calibration['image_height']),
                          distortion_model=str(calibration.get('distortion_model', '')))
        for field, (key, rows, cols) in _CALIBRATION_MATRICES.items():
            data = [float(v) for v in calibration[key]['data']]
            if len(data) != rows * cols:
                raise ValueError(f'{key} has {len(data)} values, not {rows}x{cols}')
            setattr(info, field, data)
        info.d = [float(v) for v in calibration.get('distortion_coefficients',
                                                    {}).get('data', [])]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        detail = f'missing {error}' if isinstance(error, KeyError) else str(error)
        raise ValueError(f'camera_info_url {url}: {detail}') from None
    return info


def pattern_frame(index: int, width: int, height: int) -> np.ndarray:
    """RGB frame `index` of the built-in scene: a red box and a blue disc cross the view and
    pass behind a grey pillar in the middle."""
    frame = np.full((height, width, 3), 60, np.uint8)
    frame[height // 2:] = 90                                   # ground
    period = 80
    t = (index % period) / period
    box_x = int(t * (width + 80)) - 40
    cv2.rectangle(frame, (box_x - 20, height // 2 - 30), (box_x + 20, height // 2 + 10),
                  (200, 40, 40), -1)
    disc_x = width - int(t * (width + 80)) + 40
    cv2.circle(frame, (disc_x, height // 2 + 20), 14, (40, 60, 210), -1)
    pillar = width // 2
    cv2.rectangle(frame, (pillar - width // 16, 0), (pillar + width // 16, height),
                  (150, 150, 150), -1)
    return frame


class FrameSource:
    """Iterates RGB frames from a video, an image folder or the built-in pattern."""

    def __init__(self, source: str, loop: bool):
        self.loop = loop
        self._index = 0
        match = re.fullmatch(r'pattern:(\d+)x(\d+)', source)
        self._pattern = (int(match[1]), int(match[2])) if match else None
        self._files: list[Path] = []
        self._decoded: dict[int, np.ndarray] = {}      # folder frames kept for the next loop
        self._decoded_bytes = 0
        self._video = None
        if self._pattern:
            return
        path = Path(source).expanduser()
        if path.is_dir():
            self._files = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
            if not self._files:
                raise ValueError(f'no images ({", ".join(sorted(_IMAGE_SUFFIXES))}) in {path}')
        elif path.is_file():
            self._video = cv2.VideoCapture(str(path))
            if not self._video.isOpened():
                raise ValueError(f'cannot open video {path}')
        else:
            raise ValueError(f"source '{source}' is not a video, an image folder or "
                             "pattern:WxH")

    def next(self) -> np.ndarray | None:
        """The next RGB frame, or None at the end (without loop). ValueError for an image
        file that does not decode (the next call goes on with the file after it)."""
        if self._pattern:
            frame = pattern_frame(self._index, *self._pattern)
        elif self._files:
            if self._index >= len(self._files):
                if not self.loop:
                    return None
                self._index = 0
            index = self._index
            self._index += 1               # past it even if it does not decode
            if index in self._decoded:
                return self._decoded[index]
            bgr = cv2.imread(str(self._files[index]), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f'cannot decode image {self._files[index]}')
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if self.loop and self._decoded_bytes + rgb.nbytes <= FOLDER_CACHE_BYTES:
                self._decoded[index] = rgb
                self._decoded_bytes += rgb.nbytes
            return rgb
        else:
            ok, bgr = self._video.read()
            if not ok:
                if not self.loop or self._index == 0:
                    return None
                self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, bgr = self._video.read()
                if not ok:
                    return None
            frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        self._index += 1
        return frame


class ImagePublisher(Node):

    def __init__(self):
        super().__init__('image_publisher')
        self.declare_parameter('source', 'pattern:640x192')
        self.declare_parameter('rate_hz', 10.0)
        self.declare_parameter('encoding', 'rgb8')
        self.declare_parameter('frame_id', 'camera')
        self.declare_parameter('loop', True)
        self.declare_parameter('max_frames', 0)   # 0: no limit
        self.declare_parameter('reliability', 'reliable')   # or best_effort
        self.declare_parameter('depth', 10)
        self.declare_parameter('camera_info_url', '')       # empty: uncalibrated CameraInfo
        self._source = FrameSource(self.get_parameter('source').value,
                                   self.get_parameter('loop').value)
        self._encoding = self.get_parameter('encoding').value
        rgb_to_image_msg(Header(), np.zeros((1, 1, 3), np.uint8), self._encoding)  # fail early
        self._frame_id = self.get_parameter('frame_id').value
        self._max_frames = self.get_parameter('max_frames').value
        url = self.get_parameter('camera_info_url').value
        self._calibration = load_camera_info(url) if url else None
        reliability = self.get_parameter('reliability').value
        if reliability not in RELIABILITY:
            raise ValueError(f"reliability '{reliability}': use one of {', '.join(RELIABILITY)}")
        depth = self.get_parameter('depth').value
        if depth < 1:
            raise ValueError(f'depth {depth}: must be at least 1')
        # image_transport's CameraPublisher convention: the image and its info share one QoS.
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                         reliability=RELIABILITY[reliability])
        self._published = 0
        self._pub = self.create_publisher(Image, 'image', qos)
        self._info_pub = self.create_publisher(CameraInfo, 'camera_info', qos)
        self.create_timer(1.0 / self.get_parameter('rate_hz').value, self._tick)

    def _camera_info(self, image: Image) -> CameraInfo:
        calibration = self._calibration
        if calibration and (calibration.width, calibration.height) != (image.width, image.height):
            self.get_logger().error(
                f'calibration {self.get_parameter("camera_info_url").value} is for '
                f'{calibration.width}x{calibration.height} images, this one is '
                f'{image.width}x{image.height}: publishing it as uncalibrated',
                throttle_duration_sec=10.0)
            calibration = None
        # The calibration message is reused: only its header changes from frame to frame.
        info = CameraInfo() if calibration is None else calibration
        info.header, info.width, info.height = image.header, image.width, image.height
        return info

    def _tick(self):
        if self._max_frames and self._published >= self._max_frames:
            raise SystemExit(0)
        try:
            rgb = self._source.next()
        except ValueError as error:      # one bad file: say so, go on with the next
            self.get_logger().error(str(error))
            return
        if rgb is None:
            self.get_logger().info(f'end of source after {self._published} frames')
            raise SystemExit(0)
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self._frame_id)
        msg = rgb_to_image_msg(header, rgb, self._encoding)
        self._pub.publish(msg)
        self._info_pub.publish(self._camera_info(msg))
        self._published += 1
        if self._published % 50 == 0:
            self.get_logger().info(f'published {self._published} frames')


def main(args=None):
    rclpy.init(args=args)
    try:
        node = ImagePublisher()
    except (ValueError, ImageConversionError) as error:
        print(f'image_publisher: {error}')
        rclpy.try_shutdown()
        raise SystemExit(2)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, SystemExit, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
