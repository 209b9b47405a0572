"""Would DataLoader worker processes help, or a one-gather-per-batch sampler?

Prints the time of one pass over the training split with the project's loader (a plain
DataLoader over in-memory tensors, no workers) against the same with 2 worker processes and
against one fancy-index gather per batch (a BatchSampler), as ratios measured side by side in
one run, next to the time of one student training epoch for scale; plus the source's load time.

Usage: python benchmarks/data_loading.py [hydra overrides, e.g. data=lis]
"""

from __future__ import annotations

import sys
import time

from hydra.utils import instantiate
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from common import config, median_time


def main(overrides: list[str]) -> None:
    cfg = config(*overrides)
    dm = instantiate(cfg.data)
    start = time.perf_counter()
    rec = dm.source.load(dm.cache_dir)
    print(f"data={cfg.data.name}: load {time.perf_counter() - start:.2f} s, shape {rec.x.shape}")
    dm.prepare()
    x, y = dm.tensors("train")
    batch = cfg.data.batch_size

    def consume(loader: DataLoader) -> None:
        for _ in loader:
            pass

    ours = median_time(lambda: consume(dm.train_dataloader()), 5)
    print(f"project loader (no workers): {ours * 1e3:.1f} ms per pass over the training split")
    ds = TensorDataset(x, y)
    alternatives = {
        "2 worker processes": DataLoader(
            ds, batch_size=batch, shuffle=True, num_workers=2, persistent_workers=True
        ),
        "one gather per batch": DataLoader(
            ds, sampler=BatchSampler(RandomSampler(ds), batch, drop_last=False), batch_size=None
        ),
    }
    for name, loader in alternatives.items():
        other = median_time(lambda loader=loader: consume(loader), 5)
        print(f"{name}: {other * 1e3:.1f} ms ({other / ours:.2f}x the project loader)")


if __name__ == "__main__":
    main(sys.argv[1:])
