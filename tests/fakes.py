"""Small in-memory datasets for tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signdistill.data.recordings import Recordings


@dataclass(frozen=True)
class BlobSource:
    """Class prototypes plus noise: learnable in a few epochs. ``test_offset`` is unused by it."""

    n_classes: int = 4
    per_class: int = 20
    channels: int = 5
    length: int = 40
    n_groups: int = 5
    seed: int = 0

    def load(self, cache_dir: str | Path) -> Recordings:
        rng = np.random.default_rng(self.seed)
        y = np.repeat(np.arange(self.n_classes), self.per_class)
        protos = rng.normal(size=(self.n_classes, self.channels, self.length))
        x = protos[y] + 0.8 * rng.normal(size=(len(y), self.channels, self.length))
        groups = np.array([f"g{i % self.n_groups}" for i in range(len(y))])
        return Recordings(
            x=x.astype(np.float32),
            y=y.astype(np.int64),
            classes=[f"class_{i}" for i in range(self.n_classes)],
            channels=[f"ch_{i}" for i in range(self.channels)],
            groups=groups,
        )
