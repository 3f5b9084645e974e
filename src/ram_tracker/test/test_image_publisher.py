"""The installed image_publisher in its own process, received by this test over real DDS.

Default QoS is reliable (REP-2003: drivers publish reliable), so reliable and best-effort
subscribers both receive it; each image comes with a CameraInfo of the same header and size.
"""
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from ament_index_python.packages import get_package_prefix  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from ram_training.ros_env import in_process, isolated_ros_env  # noqa: E402

CALIBRATION = """\
image_width: 64
image_height: 48
camera_name: test_camera
camera_matrix:
  rows: 3
  cols: 3
  data: [50.0, 0.0, 32.0, 0.0, 51.0, 24.0, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.1, -0.2, 0.001, 0.002, 0.0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
projection_matrix:
  rows: 3
  cols: 4
  data: [50.0, 0.0, 32.0, 0.0, 0.0, 51.0, 24.0, 0.0, 0.0, 0.0, 1.0, 0.0]
"""


def _executable() -> Path:
    path = Path(get_package_prefix('ram_tracker')) / 'lib' / 'ram_tracker' / 'image_publisher'
    assert path.exists(), f'{path} missing: run colcon build'
    return path


class _Camera:
    """image_publisher as a child process (`params`: -p overrides) and this test's
    subscribers to its image and camera_info, with `image_qos`."""

    def __init__(self, tmp_path, image_qos, **params):
        self.env = isolated_ros_env()
        args = [a for k, v in params.items() for a in ('-p', f'{k}:={v}')]
        self.log_path = tmp_path / 'image_publisher.log'
        with open(self.log_path, 'w') as log:
            self.proc = subprocess.Popen([str(_executable()), '--ros-args', *args],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)
        with in_process(self.env):
            self.context = rclpy.Context()
            rclpy.init(context=self.context)
        self.node = rclpy.create_node('test_camera_listener', context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.images: list[Image] = []
        self.infos: list[CameraInfo] = []
        self.node.create_subscription(Image, 'image', self.images.append, image_qos)
        self.node.create_subscription(CameraInfo, 'camera_info', self.infos.append, image_qos)

    def spin_until(self, done, timeout=20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return True
            assert self.proc.poll() is None, f'image_publisher exited:\n{self.log()}'
            self.executor.spin_once(timeout_sec=0.05)
        return done()

    def publisher_reliability(self, topic: str):
        self.spin_until(lambda: self.node.get_publishers_info_by_topic(f'/{topic}'))
        [info] = self.node.get_publishers_info_by_topic(f'/{topic}')
        return info.qos_profile.reliability

    def log(self) -> str:
        return self.log_path.read_text()

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def camera(tmp_path):
    cameras = []

    def start(image_qos, **params):
        cameras.append(_Camera(tmp_path, image_qos, **params))
        return cameras[-1]

    yield start
    for cam in cameras:
        cam.close()


RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def _pairs(cam) -> list[tuple[Image, CameraInfo]]:
    """Images with the CameraInfo of the same stamp."""
    infos = {(i.header.stamp.sec, i.header.stamp.nanosec): i for i in cam.infos}
    return [(image, infos[key]) for image in cam.images
            if (key := (image.header.stamp.sec, image.header.stamp.nanosec)) in infos]


def test_reliable_subscriber_receives_frames_and_camera_info_by_default(camera):
    cam = camera(RELIABLE, source='pattern:64x48', rate_hz=30.0, frame_id='front_camera')
    assert cam.publisher_reliability('image') == ReliabilityPolicy.RELIABLE
    assert cam.publisher_reliability('camera_info') == ReliabilityPolicy.RELIABLE
    assert cam.spin_until(lambda: len(_pairs(cam)) >= 5), \
        f'{len(cam.images)} images, {len(cam.infos)} camera_info:\n{cam.log()}'
    for image, info in _pairs(cam):
        assert (info.width, info.height) == (image.width, image.height) == (64, 48)
        assert info.header.frame_id == image.header.frame_id == 'front_camera'
        assert not any(info.k)                       # no calibration given: uncalibrated
    stamps = [(i.header.stamp.sec, i.header.stamp.nanosec) for i in cam.images]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_best_effort_on_request(camera):
    cam = camera(qos_profile_sensor_data, source='pattern:64x48', rate_hz=30.0,
                 reliability='best_effort')
    assert cam.publisher_reliability('image') == ReliabilityPolicy.BEST_EFFORT
    assert cam.spin_until(lambda: len(_pairs(cam)) >= 3), cam.log()


def test_image_folder_camera_info_follows_each_image_and_a_bad_file_is_skipped(camera, tmp_path):
    folder = tmp_path / 'frames'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, (width, height) in {'000.png': (64, 48), '001.png': (80, 40)}.items():
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (height, width, 3), np.uint8))
    (folder / '002.png').write_bytes(b'not a png')
    cam = camera(RELIABLE, source=str(folder), rate_hz=30.0)
    sizes = lambda: {(info.width, info.height) for _, info in _pairs(cam)}  # noqa: E731
    # Looping over the folder: both sizes again after the bad file, the node still running.
    assert cam.spin_until(lambda: len(_pairs(cam)) >= 6 and sizes() == {(64, 48), (80, 40)}), \
        cam.log()
    for image, info in _pairs(cam):
        assert (info.width, info.height) == (image.width, image.height)
    assert 'cannot decode image' in cam.log() and '002.png' in cam.log()


def test_looping_folder_is_decoded_once(tmp_path):
    """A stand-in camera costs what a driver costs: the second pass over a looping folder comes
    from memory (the files are gone by then), identical frames in the same order."""
    from ram_tracker.ros.image_publisher_node import FrameSource
    folder = tmp_path / 'frames'
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        cv2.imwrite(str(folder / f'{i:03d}.png'), rng.integers(0, 256, (24, 32, 3), np.uint8))
    source = FrameSource(str(folder), loop=True)
    first = [source.next().copy() for _ in range(3)]
    for path in folder.iterdir():
        path.unlink()
    second = [source.next() for _ in range(3)]
    assert first[0].shape == (24, 32, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_video_file_plays_with_camera_info(camera, tmp_path):
    video = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 10.0, (64, 48))
    assert writer.isOpened()
    for index in range(5):
        writer.write(np.full((48, 64, 3), index * 40, np.uint8))
    writer.release()
    cam = camera(RELIABLE, source=str(video), rate_hz=30.0)
    # 5 frames, looped: more pairs than the file has frames means it started again.
    assert cam.spin_until(lambda: len(_pairs(cam)) >= 7), cam.log()
    for image, info in _pairs(cam):
        assert (info.width, info.height) == (image.width, image.height) == (64, 48)


def test_calibration_file_is_published(camera, tmp_path):
    calibration = tmp_path / 'camera.yaml'
    calibration.write_text(CALIBRATION)
    cam = camera(RELIABLE, source='pattern:64x48', rate_hz=30.0,
                 camera_info_url=f'file://{calibration}')
    assert cam.spin_until(lambda: len(_pairs(cam)) >= 3), cam.log()
    _, info = _pairs(cam)[0]
    assert list(info.k) == [50.0, 0.0, 32.0, 0.0, 51.0, 24.0, 0.0, 0.0, 1.0]
    assert list(info.d) == [0.1, -0.2, 0.001, 0.002, 0.0]
    assert info.distortion_model == 'plumb_bob'
    assert list(info.p)[:3] == [50.0, 0.0, 32.0]


@pytest.mark.parametrize('params, message', [
    ({'camera_info_url': 'NO_SUCH_FILE'}, 'NO_SUCH_FILE'),
    ({'camera_info_url': 'BROKEN_FILE'}, 'projection_matrix'),
    ({'reliability': 'sometimes'}, 'reliability'),
    ({'source': '/no/such/video.mp4'}, '/no/such/video.mp4'),
])
def test_bad_parameters_exit_non_zero_naming_the_problem(tmp_path, params, message):
    broken = tmp_path / 'broken.yaml'
    broken.write_text(CALIBRATION.split('projection_matrix')[0])
    files = {'NO_SUCH_FILE': str(tmp_path / 'missing.yaml'), 'BROKEN_FILE': str(broken)}
    args = [a for k, v in params.items() for a in ('-p', f'{k}:={files.get(v, v)}')]
    result = subprocess.run([str(_executable()), '--ros-args', *args], env=isolated_ros_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    expected = files.get(message, message)
    assert expected in result.stdout + result.stderr
