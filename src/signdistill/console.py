"""What a run prints: a progress bar with the epoch out of the total and the time left, the
known-harmless warnings and log lines of the libraries silenced where they are raised, and one
summary line per run.

Every filter here names one message (or one library's INFO chatter) and is active only around
the call that emits it (:func:`quiet`), so a new or unexpected warning still shows.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import lightning as L
from lightning.fabric.utilities.rank_zero import rank_zero_module
from lightning.pytorch.callbacks import TQDMProgressBar
from tqdm import tqdm

from signdistill.urls import redact_url


@dataclass(frozen=True)
class Harmless:
    """A warning known to be harmless here: its category and a regex its message starts with."""

    category: type[Warning]
    message: str


LIGHTNING = (
    # a distilled student's frozen teacher is in eval mode on purpose (SignClassifier.train)
    Harmless(UserWarning, r"Found \d+ module\(s\) in eval mode"),
    # SignClassifier augments in this hook on purpose; the DataModule does not implement it
    Harmless(
        UserWarning,
        r"You have overridden `on_before_batch_transfer` in `LightningModule` but have passed in",
    ),
    # Lightning 2.6 uses a torch pytree class that torch 2.13 deprecates
    Harmless(FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
)
# The TorchScript ONNX exporter, chosen on purpose (signdistill.export): its deprecation, its
# logging set-up's, and its LSTM caveat (no packed sequences here; ONNX parity is measured).
ONNX_EXPORT = (
    Harmless(DeprecationWarning, r"You are using the legacy TorchScript-based ONNX export"),
    Harmless(DeprecationWarning, r"The feature will be removed\. Please remove usage of this"),
    Harmless(
        UserWarning,
        r"Exporting a model to ONNX with a batch_size other than 1, with a variable length",
    ),
)
# torch.export, run by mlflow.pytorch.log_model (pt2): nn.LSTM re-points its _flat_weights at
# the traced parameters, which torch.export reports; the exported model is unaffected.
TORCH_EXPORT = (
    Harmless(
        UserWarning,
        r"The tensor attributes? (self\.\S+\._flat_weights\[\d\](, )?)+ (was|were) assigned during",
    ),
)
HARMLESS = LIGHTNING + ONNX_EXPORT + TORCH_EXPORT


class _DropRecords(logging.Filter):
    """Drops log records whose message matches ``pattern`` and whose level is at most ``level``,
    optionally only those logged from a file under ``path``."""

    def __init__(self, pattern: str, level: int, path: str = "") -> None:
        super().__init__()
        self.pattern = re.compile(pattern)
        self.level = level
        self.path = path

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno <= self.level
            and self.path in record.pathname.replace("\\", "/")
            and self.pattern.match(record.getMessage())
        )


class _All(logging.Filter):
    """Keeps a record only if every one of ``filters`` keeps it."""

    def __init__(self, *filters: logging.Filter) -> None:
        super().__init__()
        self.filters = filters

    def filter(self, record: logging.LogRecord) -> bool:
        return all(f.filter(record) for f in self.filters)


# Lightning's advertisements for its cloud products (INFO, once per Trainer).
LIGHTNING_TIPS = _DropRecords(r"💡 Tip: ", logging.INFO)
# The device lines a second Trainer of the same run would print again (evaluation).
LIGHTNING_DEVICES = _DropRecords(r"(GPU|TPU|HPU) available: ", logging.INFO)
# ONNX Runtime's quantizer logs on the root logger: the advice to run quant_pre_process (measured
# to change nothing here, see signdistill.export) and one INFO line per tensor.
ORT_QUANTIZER_ADVICE = _DropRecords(
    r"Please consider (to run )?pre-processing before quantization",
    logging.WARNING,
    "onnxruntime/quantization/",
)
ORT_QUANTIZER_INFO = _DropRecords(r"", logging.INFO, "onnxruntime/quantization/")


@contextlib.contextmanager
def quiet(
    harmless: tuple[Harmless, ...] = HARMLESS,
    records: Mapping[logging.Logger, logging.Filter] | None = None,
) -> Iterator[None]:
    """Within the block, ignore the ``harmless`` warnings and drop the log records the
    ``records`` filters reject on their loggers; everything else shows as usual."""
    records = records or {}
    with warnings.catch_warnings():
        for known in harmless:
            warnings.filterwarnings("ignore", message=known.message, category=known.category)
        for logger, drop in records.items():
            logger.addFilter(drop)
        try:
            yield
        finally:
            for logger, drop in records.items():
                logger.removeFilter(drop)


def quiet_lightning(*drop: logging.Filter) -> contextlib.AbstractContextManager[None]:
    """:func:`quiet` for Lightning: its harmless warnings, its tips, and the ``drop`` filters on
    the logger its ``rank_zero_info`` lines go to (looked up now: importing ``pytorch_lightning``,
    as MLflow does, re-points it)."""
    return quiet(LIGHTNING, {rank_zero_module.log: _All(LIGHTNING_TIPS, *drop)})


def quiet_quantizer() -> contextlib.AbstractContextManager[None]:
    """:func:`quiet` for ONNX Runtime's quantizer, which logs on the root logger."""
    return quiet((), {logging.getLogger(): _All(ORT_QUANTIZER_ADVICE, ORT_QUANTIZER_INFO)})


class RunProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, described as ``Epoch 17/300`` and ending with the estimated time
    left for the whole fit (``left=3:12``), extrapolated from the time taken so far: validation
    included, so it is an upper bound when early stopping ends the run sooner."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._started = time.monotonic()  # reset when training starts, after the sanity check

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._started = time.monotonic()

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(
            f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        )

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)  # the MLflow run id: in the summary line instead
        bar = self.train_progress_bar
        done = trainer.current_epoch + (bar.n / bar.total if bar.total else 0.0)
        left = time_left(time.monotonic() - self._started, done, trainer.max_epochs)
        if left is not None:
            items["left"] = tqdm.format_interval(left)
        return items


def time_left(elapsed: float, epochs_done: float, epochs: int) -> float | None:
    """Seconds left if the remaining epochs take as long as the ones done; None before any."""
    if epochs_done <= 0:
        return None
    return elapsed * max(epochs - epochs_done, 0.0) / epochs_done


def summary(
    kind: str, run_id: str, metrics: Mapping[str, float], tracking_uri: str, exp: str
) -> str:
    """The one line a user reads first: test accuracy (fp32 and the deployed file), the deployed
    size and the compression ratio (the teacher's parameters over this model's), the MLflow run
    id and how to open it in the UI."""
    parts = [f"{kind} done: test acc {100 * metrics['test_acc']:.1f} % (fp32)"]
    if "test_acc_deployed" in metrics:
        parts[0] += f", {100 * metrics['test_acc_deployed']:.1f} % (deployed)"
        size = f"deployed file {metrics['size_deployed_bytes']:,.0f} bytes"
    else:
        size = f"weights file {metrics['size_file_bytes']:,.0f} bytes"
    parts.append(f"{size}, compression {metrics['compression_ratio']:.1f}x")
    parts.append(f"MLflow run {run_id}")
    parts.append(ui_hint(tracking_uri, exp, run_id))
    return " | ".join(parts)


def ui_hint(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """How to see the run in the MLflow UI (a password in the URI is shown as ``***``)."""
    page = f"#/experiments/{experiment_id}/runs/{run_id}"
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri.rstrip('/')}/{page}"
    uri = redact_url(tracking_uri)
    return f"view: mlflow ui --backend-store-uri {uri}, then http://127.0.0.1:5000/{page}"
