"""ram-diagnose on a tiny generated World 1: it prints every loss term's gradient at the three
places and the walk/detection balance, and the occlusion statistics of the sampler."""
import yaml

from ram_training import diagnose
from ram_training.data import world_lacater


def test_diagnose_prints_gradient_balance_and_occlusion_lengths(tmp_path, capsys):
    spec = world_lacater.World1DatasetSpec(
        config=world_lacater.World1Config(width=64, height=64, num_frames=150),
        counts={'train': 2, 'val': 0, 'test': 0}, base_seed=3)
    world_lacater.generate_dataset(tmp_path / "w1", spec, workers=1)
    config = {"data": {"kind": "world1", "root": str(tmp_path / "w1"), "image_size": [64, 64], "clip_length": 12,
                       "batch_size": 1, "sampler": "occlusion", "max_stride": 4, "val_clips": 0,
                       "train_split": "train", "val_split": "val"},
              "model": {"class_names": list(world_lacater.CLASS_NAMES), "backbone_width": 8, "neck_channels": 16,
                        "memory_channels": 16, "head_channels": 16, "embed_channels": 16, "embed_pool": "none",
                        "walk_radius": 0.2},
              "loss": {"overlap": False}, "train": {"threads": 1}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert diagnose.main(["--config", str(path), "--batches", "1", "--clips", "20"]) == 0
    out = capsys.readouterr().out
    for term in ("hm", "wh", "reg", "tracking", "visibility", "ram"):
        assert f" {term} " in out
    assert "walk/detection at   memory" in out and "median walk/detection" in out
    assert "occlusions that end inside the clip: 20 of 20 clips" in out      # the occlusion sampler
    assert "target:" in out and "other:" in out
