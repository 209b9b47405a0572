"""Data: the three sources, their shared container, the cache, splits and the DataModule."""

from signdistill.data.recordings import DataError, Recordings

__all__ = ["DataError", "Recordings"]
