#!/usr/bin/env python3
"""Diagnostic for issue 13: the walker of one World 1 model on the detections of another.

Is the shipped RAM walker held back by its own detector? The stage-3 RAM model's detector is
weaker than its no-walk twin's (their memories compete: models/world1_ram.md). This runs both
models side by side on every frame, two separate memories, and hands the tracker the twin's
detections with the RAM model's node embeddings, so every occlusion model of the World 1
evaluation (ram, ram_refined, last_seen, ...) sees the twin's detections and `ram` walks on
the RAM model's memory. Twice the compute of one model: a diagnostic, not a product.

    python scripts/world1_two_memories.py --detector models/world1_nowalk.safetensors \
        --walker models/world1_ram.safetensors --data data/world1 --split val --max-videos 10 \
        --out runs/two_memories_val10.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn as nn

from ram_tracker.atomic_write import atomic_write_text
from ram_tracker.checkpoint import load_weights, trained_input_size
from ram_training.evaluation.world1 import (OCCLUSION_MODELS, STATES, evaluate_models,
                                            method_table)


class TwoMemories(nn.Module):
    """RAMModel's streaming interface over two models: the detector's heads, the walker's
    node embeddings and transition. The state's memory is both GRU states, concatenated."""

    def __init__(self, detector: nn.Module, walker: nn.Module):
        super().__init__()
        self.detector, self.walker, self.cfg = detector, walker, detector.cfg

    def node_grid(self, image_h: int, image_w: int):
        return self.walker.node_grid(image_h, image_w)

    def transition(self, q_prev, q_next):
        return self.walker.transition(q_prev, q_next)

    def initial_state(self, batch, image_h, image_w, device=None, dtype=torch.float32):
        detector_memory, _ = self.detector.initial_state(batch, image_h, image_w, device, dtype)
        walker_memory, embed = self.walker.initial_state(batch, image_h, image_w, device, dtype)
        return torch.cat([detector_memory, walker_memory], 1), embed

    def step(self, image, state, with_transition=True):
        memory, prev_embed = state
        split = self.detector.cfg.memory_channels
        out, (detector_memory, _) = self.detector.step(image, (memory[:, :split], prev_embed),
                                                       with_transition=False)
        walked, (walker_memory, embed) = self.walker.step(image, (memory[:, split:], prev_embed),
                                                          with_transition=False)
        out['embed'] = walked['embed']
        return out, (torch.cat([detector_memory, walker_memory], 1), embed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--detector', required=True, help='weights whose heads detect')
    parser.add_argument('--walker', required=True, help='weights whose embeddings walk')
    parser.add_argument('--data', required=True)
    parser.add_argument('--split', default='val')
    parser.add_argument('--max-videos', type=int, default=10)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    detector, info = load_weights(args.detector)
    walker, _ = load_weights(args.walker)
    model = TwoMemories(detector, walker)
    results = evaluate_models({'ram_model': (model, dict(OCCLUSION_MODELS))}, args.data,
                              args.split, trained_input_size(info), args.max_videos,
                              selection=('score', 'fresh_first'))
    report = method_table(results)
    report['fresh_first'] = method_table(results, '@fresh_first')
    report['_protocol'] = vars(args)
    atomic_write_text(Path(args.out), json.dumps(report, indent=2) + '\n')
    for rule, table in (('score', report), ('fresh_first', report['fresh_first'])):
        for method, metrics in table.items():
            if not method.startswith('_') and method != 'fresh_first':
                print(f'{rule:11s} {method:18s} ' + '  '.join(
                    f'{s} {metrics[f"miou_{s}"]:.3f}' for s in STATES))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
