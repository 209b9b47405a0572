"""Puts the project's ``sweeps/`` folder on Hydra's search path (``+sweeps=<name>``)."""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


def project_root() -> Path:
    """The checkout holding ``sweeps/`` (this file lives in ``src/hydra_plugins/...``), else cwd."""
    checkout = Path(__file__).resolve().parents[3]
    return checkout if (checkout / "sweeps").is_dir() else Path.cwd()


class SweepsSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="signdistill-sweeps", path=f"file://{project_root()}")
