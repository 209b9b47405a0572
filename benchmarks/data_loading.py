"""Is one in-memory gather per batch enough, or would DataLoader worker processes help?

Prints the time of one pass over the training split with the project's loader (BatchSampler over
in-memory tensors, no workers) against per-sample loading with 0 and 2 worker processes, as
ratios measured side by side in one run, plus the source's generate/load times.

Usage: python benchmarks/data_loading.py [hydra overrides, e.g. data=lis]
"""

from __future__ import annotations

import sys
import time

from hydra.utils import instantiate
from torch.utils.data import DataLoader, TensorDataset

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
    print(f"project loader (one gather per batch, no workers): {ours * 1e3:.1f} ms per epoch")
    for workers in (0, 2):
        loader = DataLoader(
            TensorDataset(x, y),
            batch_size=batch,
            shuffle=True,
            num_workers=workers,
            persistent_workers=workers > 0,
        )
        per_sample = median_time(lambda loader=loader: consume(loader), 5)
        print(
            f"per-sample DataLoader, {workers} workers: {per_sample * 1e3:.1f} ms per epoch "
            f"({per_sample / ours:.1f}x the project loader)"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
