"""Play a rosbag2 bag into a live ROS 2 graph with rclpy (for machines without rosbag2).

The stored CDR bytes are published unchanged (`publisher.publish(raw_bytes)`), so messages,
header stamps included, arrive exactly as recorded. Two pacing modes:
- "realtime": message i is sent at start + (log_time_i - log_time_0) / rate (original timing);
- "fast": as fast as the subscribers keep up: reliable QoS with a history of one, and after
  each message the player waits until every matched reliable subscriber has acknowledged it
  (DDS-level ack: received, not necessarily processed by the callback) before sending the next.
Message classes are imported from their Python packages (sensor_msgs, ram_msgs, ...); topics
whose package is not importable (e.g. ram_msgs before `colcon build`) are skipped with a
warning.
"""
from __future__ import annotations

import importlib
import os
import sys
import time
from dataclasses import dataclass

from . import rosbag_io


@dataclass
class PlayerConfig:
    mode: str = "realtime"              # "realtime" or "fast"
    rate: float = 1.0                   # realtime speed factor
    topics: list | None = None          # None: every topic in the bag
    wait_for_subscribers_s: float = 10.0  # wait (polling) until each topic has a subscriber
    extra_wait_s: float = 3.0           # ... but no longer than this after the first match
                                        # (discovery takes ~3 s in a third of runs here)
    reliable: bool = True               # False: best effort (then "fast" cannot wait for acks)
    depth: int = 10                     # publisher history in "realtime" mode ("fast" uses 1)
    ack_timeout_s: float = 5.0
    node_name: str = "ram_bag_player"


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class, or None when not importable."""
    package, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError):
        return None


def play_bag(bag_path, config: PlayerConfig = PlayerConfig(), log=print) -> dict:
    """Publish a bag's messages; returns counts per topic and the wall time taken.
    Initialises rclpy if needed (and shuts it down again if it did)."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # never leave loopback
    import rclpy
    from rclpy.duration import Duration
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    if config.mode not in ("realtime", "fast"):
        raise ValueError(f"mode must be 'realtime' or 'fast', got {config.mode!r}")
    topics = rosbag_io.topics_of(bag_path)
    selected = {t: v for t, v in topics.items() if config.topics is None or t in config.topics}
    own_init = not rclpy.ok()
    if own_init:
        rclpy.init()
    node = rclpy.create_node(config.node_name)
    # "fast" keeps a history of one message: then Fast DDS piggybacks a heartbeat on every
    # sample and the reader acknowledges within milliseconds (measured 7 ms), whereas with a
    # deeper history acknowledgements wait for the periodic heartbeat (3 s).
    depth = 1 if config.mode == "fast" else config.depth
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                     reliability=ReliabilityPolicy.RELIABLE if config.reliable else ReliabilityPolicy.BEST_EFFORT)
    publishers = {}
    skipped = []
    for topic, (msgtype, _) in selected.items():
        cls = message_class(msgtype)
        if cls is None:
            skipped.append(topic)
            log(f"[player] skipping {topic}: message type {msgtype} is not importable (build/source its package)")
            continue
        publishers[topic] = node.create_publisher(cls, topic, qos)
    counts = {t: 0 for t in publishers}
    try:
        # wait until every topic is matched, but once one is, give the others at most
        # `extra_wait_s` more (topics nobody listens to must not stall the start)
        deadline = time.monotonic() + config.wait_for_subscribers_s
        while time.monotonic() < deadline and not all(p.get_subscription_count() > 0 for p in publishers.values()):
            if any(p.get_subscription_count() > 0 for p in publishers.values()):
                deadline = min(deadline, time.monotonic() + config.extra_wait_s)
            time.sleep(0.02)
        unmatched = [t for t, p in publishers.items() if p.get_subscription_count() == 0]
        if unmatched and config.wait_for_subscribers_s > 0:
            log(f"[player] no subscriber after {config.wait_for_subscribers_s:.1f} s on: {', '.join(unmatched)}")
        start_wall = time.monotonic()
        first_log = None
        for topic, _, log_time, raw in rosbag_io.iterate_raw(bag_path, list(publishers)):
            if config.mode == "realtime":
                first_log = log_time if first_log is None else first_log
                due = start_wall + (log_time - first_log) / 1e9 / max(config.rate, 1e-9)
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            publisher = publishers[topic]
            publisher.publish(raw)
            counts[topic] += 1
            if config.mode == "fast" and config.reliable and publisher.get_subscription_count() > 0:
                if not publisher.wait_for_all_acked(Duration(seconds=config.ack_timeout_s)):
                    log(f"[player] {topic}: subscriber did not acknowledge within {config.ack_timeout_s} s")
        if config.reliable:
            for publisher in publishers.values():
                publisher.wait_for_all_acked(Duration(seconds=config.ack_timeout_s))
        elapsed = time.monotonic() - start_wall
    finally:
        node.destroy_node()
        if own_init:
            rclpy.shutdown()
    return {"published": counts, "skipped": skipped, "seconds": elapsed}


if __name__ == "__main__":  # pragma: no cover - convenience: python -m ram_training.data.player BAG
    print(play_bag(sys.argv[1]))
