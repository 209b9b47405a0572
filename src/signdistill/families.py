"""The model families, so checkpoints and export need not know which network they hold.

An architecture's stored dict (``arch.as_dict()``) names its family under ``family``; a dict
without the key is the Conv-LSTM family, whose dicts never had one, so every model file written
before InceptionTime still loads. :func:`build_network` and :func:`architecture_from_dict` are
the only places that map a family to its classes.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from signdistill.inception import InceptionArchitecture, InceptionSpec, InceptionTime
from signdistill.models import Architecture, ConvPoolLSTM, ModelSpec

CONV_LSTM = "conv_lstm"  # the family of a stored dict without a ``family`` key

AnyArchitecture = Architecture | InceptionArchitecture
Network = ConvPoolLSTM | InceptionTime
Spec = ModelSpec | InceptionSpec  # what a model is (conf/model), of either family

# family name -> (architecture class, network class)
FAMILIES: dict[str, tuple[type[AnyArchitecture], type[nn.Module]]] = {
    CONV_LSTM: (Architecture, ConvPoolLSTM),
    InceptionArchitecture.family: (InceptionArchitecture, InceptionTime),
}


class UnknownFamilyError(ValueError):
    """A stored architecture of a family this signdistill does not have."""


def family_of(arch: AnyArchitecture) -> str:
    """The family name of an architecture (the Conv-LSTM one has no ``family`` marker)."""
    return getattr(arch, "family", CONV_LSTM)


def architecture_from_dict(d: dict[str, Any]) -> AnyArchitecture:
    """The architecture stored as ``d`` (an ``as_dict()``), of the family its ``family`` key names.

    Raises UnknownFamilyError for a family not in :data:`FAMILIES`, TypeError for a dict whose
    keys do not fit the family's architecture (or for something that is not a dict).
    """
    if not isinstance(d, dict):
        raise TypeError(f"a stored architecture is a dict, not {type(d).__name__}")
    family = d.get("family", CONV_LSTM)
    if family not in FAMILIES:
        raise UnknownFamilyError(
            f"model family {family!r} is not known here (known: {', '.join(FAMILIES)})"
        )
    arch_class, _ = FAMILIES[family]
    return arch_class.from_dict({k: v for k, v in d.items() if k != "family"})


def build_network(arch: AnyArchitecture) -> Network:
    """A fresh network (random weights, identity standardization) of ``arch``'s family."""
    _, network_class = FAMILIES[family_of(arch)]
    return network_class(arch)
