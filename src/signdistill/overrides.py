"""Values written in Hydra's override grammar, for the command lines that sweeps and studies build
(``key=value`` with strings quoted and dicts and lists nested)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def override_value(value: Any) -> str:
    """A value written back in the override grammar (strings quoted, dicts and lists nested)."""
    if isinstance(value, str):
        # Hydra reads backslashes literally except in a run just before a quote or the end
        escaped = re.sub(r"(\\*)(?='|\Z)", lambda run: run.group(1) * 2, value)
        return "'" + escaped.replace("'", "\\'") + "'"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else repr(value)
