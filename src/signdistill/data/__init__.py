"""Data: the sources (simulator, LIS, folder, .ts), their shared container, the cache, splits
and the DataModule."""

from signdistill.data.recordings import DataError, Recordings

__all__ = ["DataError", "Recordings"]
