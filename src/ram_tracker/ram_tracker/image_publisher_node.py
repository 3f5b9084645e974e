"""Publish images as sensor_msgs/Image: a stand-in camera for demos and tests.

Sources (parameter `source`): a video file (anything OpenCV reads), a folder of images (sorted
by name, e.g. a KITTI image_02/0000 folder), or `pattern:WxH`, a built-in scene of shapes that
move and pass behind an occluder. Published at `rate_hz` with the chosen `encoding`
(rgb8/bgr8/mono8/rgba8/bgra8), stamped with the node clock, `frame_id` from a parameter.
"""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from ram_tracker.image_conversion import ImageConversionError, rgb_to_image_fields

_IMAGE_SUFFIXES = {'.png', '.jpg', '.jpeg', '.bmp', '.ppm'}


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
        """The next RGB frame, or None at the end (without loop)."""
        if self._pattern:
            frame = pattern_frame(self._index, *self._pattern)
        elif self._files:
            if self._index >= len(self._files):
                if not self.loop:
                    return None
                self._index = 0
            bgr = cv2.imread(str(self._files[self._index]), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f'cannot decode image {self._files[self._index]}')
            frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
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
        self._source = FrameSource(self.get_parameter('source').value,
                                   self.get_parameter('loop').value)
        self._encoding = self.get_parameter('encoding').value
        rgb_to_image_fields(np.zeros((1, 1, 3), np.uint8), self._encoding)  # fail early
        self._frame_id = self.get_parameter('frame_id').value
        self._max_frames = self.get_parameter('max_frames').value
        self._published = 0
        self._pub = self.create_publisher(Image, 'image', qos_profile_sensor_data)
        self.create_timer(1.0 / self.get_parameter('rate_hz').value, self._tick)

    def _tick(self):
        if self._max_frames and self._published >= self._max_frames:
            raise SystemExit(0)
        rgb = self._source.next()
        if rgb is None:
            self.get_logger().info(f'end of source after {self._published} frames')
            raise SystemExit(0)
        msg = Image()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self._frame_id
        fields = rgb_to_image_fields(rgb, self._encoding)
        msg.height, msg.width, msg.step = fields['height'], fields['width'], fields['step']
        msg.encoding, msg.data = fields['encoding'], fields['data']
        self._pub.publish(msg)
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
