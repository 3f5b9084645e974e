"""What the World 1 diagnostic scripts share (walker_first_step.py, walker_readouts.py,
world1_target_detection.py): their command line, the model they load, and one model pass over
a whole video. Not a command itself; scripts/ is on the path when one of them runs."""
from __future__ import annotations

import argparse

import numpy as np
import torch

from ram_tracker.checkpoint import load_weights, trained_input_size
from ram_training.data.clips import make_clip, world1_videos

SEEN, HIDDEN = 0.15, 0.05          # the trainer's validation thresholds (occlusion_metric)


def parser(doc: str, videos: int) -> argparse.ArgumentParser:
    """--model, --data, --split, --videos (default `videos`), --threads; add your own."""
    p = argparse.ArgumentParser(description=doc.split('\n\n')[0])
    p.add_argument('--model', required=True)
    p.add_argument('--data', default='data/world1')
    p.add_argument('--split', default='val')
    p.add_argument('--videos', type=int, default=videos)
    p.add_argument('--threads', type=int, default=1)
    return p


def load(args):
    """(model in eval mode, its trained input size, the videos asked for), on args.threads."""
    torch.set_num_threads(args.threads)
    model, info = load_weights(args.model)
    model.eval()
    return model, trained_input_size(info), world1_videos(args.data, args.split)[:args.videos]


def whole_video(model, video, input_size):
    """One model pass over a whole video as one clip: node embeddings (1, T, D, h, w), the node
    grid, and the clip (a batch of one: images, boxes, present, visibility, classes)."""
    clip = make_clip(video, np.arange(video.num_frames), image_size=input_size)
    clip = {k: v[None] if torch.is_tensor(v) else v for k, v in clip.items()}
    with torch.inference_mode():
        embed = model(clip['images'])['embed'].float()
    return embed, model.node_grid(*clip['images'].shape[-2:]), clip


def object_states(clip):
    """Each object's visibility (1, T, K), whether it exists, is visible (> SEEN), and its true
    centre (1, T, K, 2) in input pixels."""
    boxes, vis = clip['boxes'].float(), clip['visibility']
    exists = clip['present'] & (clip['classes'] >= 0).unsqueeze(1)
    visible = exists & (vis > SEEN)
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    return vis, exists, visible, centre
