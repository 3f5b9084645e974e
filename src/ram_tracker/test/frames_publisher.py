"""Test helper process: publishes a scripted mix of good and malformed images, forever.

Frame i has stamp sec = 1000 + (i mod 4 * len(SCRIPT)) and frame_id naming what it is ('good/<encoding>'
or 'bad/<reason>'), so the subscriber can check which frames the node answered. Every
4 * len(SCRIPT) frames the stamps jump back, like a bag that loops. 'dup/rgb8' repeats the previous frame's
stamp (a resend): the node answers it only if it never processed the original (the depth-1
queue can replace that one).
Run: python frames_publisher.py WIDTH HEIGHT RATE_HZ
"""
import sys

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from ram_tracker.ros.ros_conversions import rgb_to_image_msg

SCRIPT = ['good/rgb8', 'dup/rgb8', 'good/bgr8-padded', 'bad/nv12', 'good/mono8', 'bad/step-too-small',
          'good/rgba8', 'bad/empty', 'good/bgra8', 'bad/truncated', 'good/yuyv-padded']
LOOP = 4 * len(SCRIPT)


def make(kind: str, index: int, width: int, height: int) -> Image:
    rng = np.random.default_rng(index)
    rgb = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    header = Header(frame_id=kind)
    header.stamp.sec = 1000 + (index - kind.startswith('dup')) % LOOP
    encoding = kind.split('/')[1].split('-')[0]
    msg = Image(header=header)
    if kind == 'good/yuyv-padded':
        # A USB camera's YUYV (any bytes are valid 4:2:2), rows padded by 16 bytes.
        msg.encoding, msg.height, msg.width, msg.step = 'yuyv', height, width, width * 2 + 16
        msg.data = rng.integers(0, 256, size=msg.step * height, dtype=np.uint8).tobytes()
    elif kind.startswith(('good', 'dup')):
        msg = rgb_to_image_msg(header, rgb, encoding)
        if kind.endswith('padded'):     # rows padded by 16 bytes, as some drivers send them
            rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(height, msg.step)
            msg.data = np.concatenate([rows, np.zeros((height, 16), np.uint8)], 1).tobytes()
            msg.step += 16
    elif kind == 'bad/nv12':        # 4:2:0, not supported: 'unsupported encoding'
        msg.encoding, msg.height, msg.width, msg.step = 'nv12', height, width, width
        msg.data = bytes(width * height * 3 // 2)
    elif kind == 'bad/step-too-small':
        msg.encoding, msg.height, msg.width, msg.step = 'rgb8', height, width, width
        msg.data = bytes(width * height)
    elif kind == 'bad/empty':
        msg.encoding, msg.height, msg.width, msg.step = 'rgb8', 0, 0, 0
    elif kind == 'bad/truncated':
        msg.encoding, msg.height, msg.width, msg.step = 'rgb8', height, width, width * 3
        msg.data = bytes(width * 3 * height // 2)
    return msg


def main():
    width, height, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    rclpy.init()
    node = rclpy.create_node('frames_publisher')
    pub = node.create_publisher(Image, 'image', qos_profile_sensor_data)
    index = 0

    def tick():
        nonlocal index
        if pub.get_subscription_count() == 0:
            return  # nobody listens yet: don't burn frames
        pub.publish(make(SCRIPT[index % len(SCRIPT)], index, width, height))
        index += 1

    node.create_timer(1.0 / rate, tick)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
