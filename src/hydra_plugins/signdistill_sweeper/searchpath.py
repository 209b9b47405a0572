"""Puts the project's ``sweeps/`` folder on Hydra's search path (``+sweeps=<name>``).

Hydra runs every installed search-path plugin for every app: this one changes nothing unless
the app's primary config folder is the project's ``conf/``.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


def project_root() -> Path:
    """The checkout holding ``sweeps/`` (this file lives in ``src/hydra_plugins/...``), else cwd."""
    checkout = Path(__file__).resolve().parents[3]
    return checkout if (checkout / "sweeps").is_dir() else Path.cwd()


def is_project_app(search_path: ConfigSearchPath) -> bool:
    """Whether the app's primary config folder (Hydra's ``main`` entry) is the project's conf/."""
    conf = project_root() / "conf"
    return any(
        element.provider == "main"
        and element.path is not None
        and Path(element.path.removeprefix("file://")).resolve() == conf
        for element in search_path.get_path()
    )


class SweepsSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if is_project_app(search_path):
            search_path.append(provider="signdistill-sweeps", path=f"file://{project_root()}")
