"""KITTI -> rosbag2 -> frames round trip (MCAP and sqlite3), ram_msgs type hashes, and replay
into a real subscriber in another process (sensor_msgs/Image always; ram_msgs tracks when the
workspace's install/ has ram_msgs)."""
import hashlib
import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ram_training.data import kitti, rosbag_io
from ram_training.data import world_street as w2

REPO = Path(__file__).resolve().parents[3]
NUM_FRAMES = 12


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("w2")
    cfg = w2.World2Config(width=124, height=38, min_frames=NUM_FRAMES, max_frames=NUM_FRAMES)
    w2.generate_dataset(root, w2.World2DatasetSpec(config=cfg, num_sequences=1, base_seed=2), workers=1)
    return root


@pytest.fixture(scope="module")
def bag(kitti_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "seq0000"
    rosbag_io.kitti_to_bag(kitti_root, "0000", path)
    return path


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_round_trip(kitti_root, tmp_path, storage):
    path = tmp_path / f"bag_{storage}"
    stats = rosbag_io.kitti_to_bag(kitti_root, "0000", path, config=rosbag_io.BagConfig(storage=storage))
    assert stats["frames"] == NUM_FRAMES and path.is_dir()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "no staging leftovers"
    topics = rosbag_io.topics_of(path)
    assert topics == {"/camera/image_raw": ("sensor_msgs/msg/Image", NUM_FRAMES),
                      "/camera/camera_info": ("sensor_msgs/msg/CameraInfo", NUM_FRAMES),
                      "/ground_truth/tracks": ("ram_msgs/msg/TrackedObjectArray", NUM_FRAMES)}
    seq = kitti.load_sequence(kitti_root, "0000")
    frames = list(rosbag_io.read_bag(path))
    assert len(frames) == NUM_FRAMES
    stamps = [f.stamp_ns for f in frames]
    assert stamps == [rosbag_io.BagConfig().start_time_ns + t * 100_000_000 for t in range(NUM_FRAMES)]  # 10 Hz
    for t, frame in enumerate(frames):
        np.testing.assert_array_equal(frame.image, seq.image(t))
        np.testing.assert_allclose(np.asarray(frame.camera_info.p).reshape(3, 4), seq.calib.P2)
        np.testing.assert_allclose(np.asarray(frame.camera_info.k).reshape(3, 3), seq.calib.P2[:, :3])
        assert frame.messages["/camera/image_raw"].header.frame_id == "camera"
        rows = sorted((r for r in seq.labels if r.frame == t and r.type != "DontCare"), key=lambda r: r.track_id)
        assert [tr["id"] for tr in frame.tracks] == [r.track_id for r in rows]
        for tr, r in zip(frame.tracks, rows):
            np.testing.assert_allclose(tr["box"], r.box, atol=1e-9)
            assert tr["class_id"] == rosbag_io.DEFAULT_CLASS_IDS[r.type]
            assert tr["state"] == rosbag_io.STATE_VISIBLE
            assert tr["visibility"] == kitti.OCCLUSION_TO_VISIBILITY[r.occluded]


def test_hidden_objects_become_occluded_tracks(kitti_root, tmp_path):
    seq = kitti.load_sequence(kitti_root, "0000")
    assert seq.hidden, "the fixture sequence should contain fully hidden objects"
    path = tmp_path / "with_hidden"
    rosbag_io.kitti_to_bag(kitti_root, "0000", path, config=rosbag_io.BagConfig(include_hidden=True))
    occluded = [(f.stamp_ns, tr["id"]) for f in rosbag_io.read_bag(path) for tr in f.tracks
                if tr["state"] == rosbag_io.STATE_OCCLUDED]
    assert len(occluded) == len(seq.hidden)


def test_ram_msgs_hashes_match_the_colcon_build():
    installed = REPO / "install" / "ram_msgs" / "share" / "ram_msgs" / "msg" / "TrackedObjectArray.json"
    if not installed.exists():
        pytest.skip("ram_msgs not built (no install/ram_msgs): nothing to compare the hash with")
    expected = {h["type_name"]: h["hash_string"] for h in json.loads(installed.read_text())["type_hashes"]}
    typestore = rosbag_io.make_typestore()
    for name in ("ram_msgs/msg/TrackedObjectArray", "ram_msgs/msg/TrackedObject", "ram_msgs/msg/BoundingBox2D"):
        assert typestore.hash_rihs01(name) == expected[name]


SUBSCRIBER = textwrap.dedent("""
    import hashlib, json, sys, time
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    expected, with_tracks, out = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
    rclpy.init()
    node = rclpy.create_node("ram_test_subscriber")
    qos = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
    got = {"images": [], "infos": 0, "tracks": []}
    stamp = lambda h: h.stamp.sec * 1000000000 + h.stamp.nanosec
    node.create_subscription(Image, "/camera/image_raw", lambda m: got["images"].append(
        [stamp(m.header), time.monotonic(), hashlib.md5(bytes(m.data)).hexdigest()]), qos)
    def on_info(m):
        got["infos"] += 1
    node.create_subscription(CameraInfo, "/camera/camera_info", on_info, qos)
    if with_tracks:
        from ram_msgs.msg import TrackedObjectArray
        node.create_subscription(TrackedObjectArray, "/ground_truth/tracks", lambda m: got["tracks"].append(
            [stamp(m.header), [int(t.id) for t in m.tracks]]), qos)
    deadline = time.monotonic() + 20
    def done():
        return (len(got["images"]) >= expected and got["infos"] >= expected
                and (not with_tracks or len(got["tracks"]) >= expected))
    while time.monotonic() < deadline and not done():
        rclpy.spin_once(node, timeout_sec=0.05)
    open(out, "w").write(json.dumps(got))
""")


def ros_env(with_install: bool) -> dict:
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_DOMAIN_ID"] = str(100 + random.randrange(100))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src" / "ram_training"), env.get("PYTHONPATH", "")])
    return env


def replay(bag, tmp_path, mode, with_tracks):
    """Start the subscriber process, play the bag from a second process via the CLI, and
    return what the subscriber received plus the player's report."""
    env = ros_env(with_tracks)
    script = tmp_path / "subscriber.py"
    script.write_text(SUBSCRIBER)
    out = tmp_path / f"received_{mode}.json"
    prefix = f". {REPO / 'install' / 'setup.bash'} >/dev/null 2>&1; " if with_tracks else ""
    sub_cmd = f"{prefix}exec {sys.executable} {script} {NUM_FRAMES} {int(with_tracks)} {out}"
    # every topic has a subscriber here: let the player wait for all of them
    play_cmd = f"{prefix}exec {sys.executable} -m ram_training.data.cli play {bag} --mode {mode} --wait 15 --extra-wait 15"
    subscriber = subprocess.Popen(["bash", "-c", sub_cmd], env=env)
    try:
        player = subprocess.run(["bash", "-c", play_cmd], env=env, capture_output=True, text=True, timeout=60)
        assert player.returncode == 0, player.stderr
        subscriber.wait(timeout=40)
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
    report = json.loads(player.stdout[player.stdout.index("{"):])
    return json.loads(out.read_text()), report


def bag_image_hashes(bag):
    return [(f.stamp_ns, hashlib.md5(f.image.tobytes()).hexdigest()) for f in rosbag_io.read_bag(bag)]


@pytest.mark.parametrize("mode", ["fast", "realtime"])
def test_replay_images_into_another_process(bag, tmp_path, mode):
    received, report = replay(bag, tmp_path, mode, with_tracks=False)
    assert report["published"]["/camera/image_raw"] == NUM_FRAMES
    images = received["images"]
    assert [(s, h) for s, h in ((i[0], i[2]) for i in images)] == bag_image_hashes(bag)
    assert received["infos"] == NUM_FRAMES
    if mode == "realtime":
        # original timing: 12 frames at 10 Hz span 1.1 s (loose upper bound: shared, loaded CPUs)
        arrival = [i[1] for i in images]
        assert 0.95 <= arrival[-1] - arrival[0] <= 1.6
        assert report["seconds"] >= 1.05


def test_replay_tracks_into_another_process(bag, tmp_path):
    setup = REPO / "install" / "setup.bash"
    if not setup.exists() or not (REPO / "install" / "ram_msgs").is_dir():
        pytest.skip("ram_msgs Python types need the colcon workspace (install/setup.bash with ram_msgs); "
                    "the image replay test covers the player itself")
    received, report = replay(bag, tmp_path, "fast", with_tracks=True)
    assert report["skipped"] == []
    expected = [(f.stamp_ns, [t["id"] for t in f.tracks]) for f in rosbag_io.read_bag(bag)]
    assert [(s, ids) for s, ids in received["tracks"]] == expected


def test_world1_video_to_bag_round_trip(tmp_path):
    from ram_training.data import world_lacater
    from ram_training.data.clips import World1VideoSource
    spec = world_lacater.World1DatasetSpec(
        config=world_lacater.World1Config(width=64, height=48, num_frames=10),
        counts={"train": 0, "val": 0, "test": 1}, base_seed=5)
    world_lacater.generate_dataset(tmp_path / "w1", spec, workers=1)
    video_path = world_lacater.list_videos(tmp_path / "w1", "test")[0]
    info = rosbag_io.world1_to_bag(video_path, tmp_path / "bag")
    assert info["frames"] == 10
    video = World1VideoSource(video_path)
    frames = list(rosbag_io.read_bag(tmp_path / "bag"))
    assert len(frames) == 10
    for t, frame in enumerate(frames):
        np.testing.assert_array_equal(frame.image, video.image(t))
        target = [tr for tr in frame.tracks if tr["class_id"] == "target"]
        assert len(target) == 1
        hidden = video.annotations.visibility[t, 0] <= 0.05
        assert target[0]["state"] == (rosbag_io.STATE_OCCLUDED if hidden else rosbag_io.STATE_VISIBLE)
    # 30 fps stamps
    assert frames[1].stamp_ns - frames[0].stamp_ns == round(1e9 / 30)


# ---------------------------------------------------------------------------------------
# what killed runs leave, and bags that cannot be read

# A writer of the World 2 bag that stops after 3 frames: "kill" SIGKILLs itself there (what a
# killed conversion or replay leaves: its staging folder), "hang" says so and waits (a live run).
WRITER = textwrap.dedent("""
    import os, signal, sys, time
    from ram_training.data import rosbag_io
    kitti_root, bag, how = sys.argv[1:]
    def stop(frames):
        for t, frame in enumerate(frames):
            if t == 3:
                if how == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                print("writing", flush=True)
                time.sleep(120)
            yield frame
    rosbag_io.write_frames_bag = (lambda write: lambda path, frames, *rest:
                                  write(path, stop(frames), *rest))(rosbag_io.write_frames_bag)
    rosbag_io.kitti_to_bag(kitti_root, "0000", bag)
""")


def _start_writer(kitti_root, bag, how):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(kitti_root), str(bag), how],
                            stdout=subprocess.PIPE, text=True)


def _contents(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_staging_of_a_killed_run_is_removed_and_a_live_runs_is_not(kitti_root, tmp_path):
    bag = tmp_path / "seq"
    killed = _start_writer(kitti_root, bag, "kill")
    assert killed.wait(timeout=120) == -9
    dead_staging = tmp_path / f".seq.partial{killed.pid}"
    assert (dead_staging / "seq").is_dir()                    # the half-written bag it left
    live = _start_writer(kitti_root, bag, "hang")
    try:
        assert live.stdout.readline() == "writing\n"
        live_staging = tmp_path / f".seq.partial{live.pid}"
        before = _contents(live_staging)
        assert before
        rosbag_io.kitti_to_bag(kitti_root, "0000", bag)     # the next run
        assert not dead_staging.exists()
        assert _contents(live_staging) == before              # still being written: untouched
        assert rosbag_io.topics_of(bag)["/camera/image_raw"][1] == NUM_FRAMES
    finally:
        live.kill()
        live.wait()


def _damaged(bag: Path, tmp_path: Path, damage: str) -> tuple[Path, str]:
    """A copy of `bag` with `damage`; (the copy, what the error must name)."""
    import shutil
    copy = tmp_path / damage
    shutil.copytree(bag, copy)
    storage = next(p for p in copy.iterdir() if p.suffix in (".mcap", ".db3"))
    if damage == "truncated":           # a recording that stopped mid-write: half the file
        data = storage.read_bytes()
        storage.write_bytes(data[:len(data) // 2])
        return copy, str(storage)
    (copy / "metadata.yaml").unlink()   # a recorder that was killed never writes it
    return copy, "metadata.yaml"


@pytest.mark.parametrize("damage", ["truncated", "no_metadata"])
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_damaged_bag_is_named_in_one_line(kitti_root, tmp_path, damage, storage):
    bag = tmp_path / f"bag_{storage}"
    rosbag_io.kitti_to_bag(kitti_root, "0000", bag, config=rosbag_io.BagConfig(storage=storage))
    damaged, named = _damaged(bag, tmp_path, damage)
    for read in (rosbag_io.topics_of, lambda path: list(rosbag_io.read_bag(path))):
        with pytest.raises(rosbag_io.BagError) as error:
            read(damaged)
        assert str(damaged) in str(error.value) and named in str(error.value)
    # the CLI: one line on stderr naming the file, no traceback, a non-zero status
    proc = subprocess.run([sys.executable, "-m", "ram_training.data.cli", "read-bag", str(damaged)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("ram-data: error: ") and named in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
