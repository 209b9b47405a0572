"""Would DataLoader worker processes help, or a one-gather-per-batch sampler?

Times one pass over the training split with the project's loader (its own BatchSampler over
in-memory tensors, one gather per batch, no workers), with a plain per-recording DataLoader and
2 worker processes, and with a plain per-recording DataLoader in the main process; the loaders
are interleaved pass by pass (see ``common.interleave``) and each ratio is the median of the
per-pass ratios with their range. Also prints the source's load time.

Usage: python benchmarks/data_loading.py [repeats=9] [hydra overrides, e.g. data=lis]
"""

from __future__ import annotations

import sys
import time

from hydra.utils import instantiate
from torch.utils.data import DataLoader, TensorDataset

from common import config, interleave, median_ms, ratio, timed


def consume(loader: DataLoader) -> None:
    for _ in loader:
        pass


def main(repeats: int, overrides: list[str]) -> None:
    cfg = config(*overrides)
    dm = instantiate(cfg.data)
    start = time.perf_counter()
    rec = dm.source.load(dm.cache_dir)
    print(f"data={cfg.data.name}: load {time.perf_counter() - start:.2f} s, shape {rec.x.shape}")
    dm.prepare()
    ds = TensorDataset(*dm.tensors("train"))
    batch = cfg.data.batch_size
    workers = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=2, persistent_workers=True)
    sides = {
        "project loader": timed(lambda: consume(dm.train_dataloader())),
        "2 worker processes": timed(lambda: consume(workers)),
        "per-recording indexing": timed(lambda: consume(DataLoader(ds, batch, shuffle=True))),
    }
    times = interleave(sides, repeats)
    ours = median_ms(times, "project loader")
    print(f"project loader: {ours:.1f} ms per pass over the training split (median)")
    for name in list(sides)[1:]:
        print(f"{name}: {median_ms(times, name):.1f} ms; {ratio(times, name, 'project loader')}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args.pop(0)) if args and args[0].isdigit() else 9, args)
