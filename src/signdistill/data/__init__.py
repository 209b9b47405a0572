"""Data: the sources (simulator, LIS, folder, .ts), their shared container, the cache, splits
and the DataModule."""
