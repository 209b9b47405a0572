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
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.utilities.rank_zero import rank_zero_module
from lightning.pytorch.callbacks import TQDMProgressBar
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from signdistill.urls import LOCAL_UI, redact_url, run_page


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
    """Lightning's tqdm bar, described as ``Epoch 17/300`` (``teacher (1/2) Epoch 17/300`` when the
    command trains several models) and ending with the time left for the whole command
    (``left=1:03:12``): this model's remaining epochs at the rate measured since its first batch,
    and the models still to come at the same rate per unit of work (:class:`Plan`).

    While it trains, log records go through ``tqdm.write``, so a line logged mid-bar (Lightning's
    "`Trainer.fit` stopped") clears the bar and gets a line of its own instead of running into it.
    """

    def __init__(self, plan: Plan | None = None, kind: str = "model", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan or Plan()
        self.kind = kind
        self.stage: Stage | None = None
        self.speed = EpochSpeed()
        self._redirect = contextlib.ExitStack()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.stage = self.plan.start(self.kind, trainer.max_epochs)
        self.speed = EpochSpeed()
        self._redirect.enter_context(logging_redirect_tqdm(console_loggers()))

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(
            f"{self.plan.label(self.stage)}Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        )

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.speed.update(time.monotonic(), self._epochs_done(trainer))
        super().on_train_batch_end(trainer, *args)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._redirect.close()  # before the bar's last line: it ends with its own newline
        super().on_train_end(trainer, pl_module)
        self.plan.finish(self.stage)

    def teardown(self, *args: Any, **kwargs: Any) -> None:
        self._redirect.close()  # also when training raised
        super().teardown(*args, **kwargs)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)  # the MLflow run id: in the summary line instead
        if self.stage is not None:
            left = self.plan.left(self.stage, self._epochs_done(trainer), self.speed.per_epoch)
            if left is not None:
                items["left"] = tqdm.format_interval(left)
        return items

    def _epochs_done(self, trainer: L.Trainer) -> float:
        bar = self.train_progress_bar
        return trainer.current_epoch + (bar.n / bar.total if bar.total else 0.0)


def console_loggers() -> list[logging.Logger]:
    """The loggers that print to the console: the root logger (Hydra's handler), and Lightning's
    own while they still have their console handler (no handler on the root logger)."""
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in LIGHTNING_LOGGERS)]
    return [log for log in loggers if _console_handlers(log)]


def _console_handlers(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers of ``logger`` that print to a stream (not to a file)."""
    return [
        h
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]


# The loggers Lightning's packages give a console handler of their own when they are imported.
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning")


def single_lightning_lines() -> None:
    """Each Lightning INFO line once: ``import lightning`` gives its logger a console handler of
    its own (``INFO: ...``) and keeps propagating to the root logger, whose handler (Hydra's)
    prints the line again. Once the root logger has a handler, Lightning's are removed, so its
    lines print once, in the run's format, and reach the run's log file."""
    if not logging.getLogger().handlers:
        return
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in _console_handlers(logger):
            logger.removeHandler(handler)
        logger.propagate = True


class EpochSpeed:
    """Seconds per epoch of the model training now, measured from the end of its first batch: the
    first step (allocation, first calls) is often many times slower than the rest, and
    extrapolated over a whole schedule it would put hours on the estimate."""

    def __init__(self) -> None:
        self.mark: tuple[float, float] | None = None  # (time, epochs done) after the first batch
        self.per_epoch: float | None = None

    def update(self, now: float, epochs_done: float) -> None:
        if self.mark is None:
            self.mark = (now, epochs_done)
        elif epochs_done > self.mark[1]:
            self.per_epoch = (now - self.mark[0]) / (epochs_done - self.mark[1])


@dataclass
class Stage:
    """One model a command trains: its run's kind, its epochs, and its work per epoch (in any
    unit common to the plan's stages, e.g. multiply-accumulates; 0 if unknown)."""

    kind: str
    epochs: int
    work: float = 0.0
    started: bool = False
    done: bool = False


class Plan:
    """The models one command trains, in order (a missing teacher, then the student), and how
    fast work went on the last one measured: the time left for the whole command.

    The model training now is timed on its own epochs; a model still to come is estimated from
    its work at the seconds per unit of work measured last. A model the plan did not foresee is
    added when it starts (its own time only).
    """

    def __init__(self, stages: list[Stage] | None = None) -> None:
        self.stages = list(stages or [])
        self.seconds_per_work: float | None = None

    def start(self, kind: str, epochs: int) -> Stage:
        """The next planned stage of ``kind``, now starting with ``epochs`` (as fitted)."""
        stage = next((s for s in self.stages if s.kind == kind and not s.started), None)
        if stage is None:
            stage = Stage(kind, epochs)
            waiting = [i for i, s in enumerate(self.stages) if not s.started]
            self.stages.insert(waiting[0] if waiting else len(self.stages), stage)
        stage.started, stage.epochs = True, epochs
        return stage

    def finish(self, stage: Stage | None) -> None:
        if stage is not None:
            stage.done = True

    def label(self, stage: Stage | None) -> str:
        """``teacher (1/2) `` when the command trains several models, else nothing."""
        if stage is None or len(self.stages) < 2:
            return ""
        return f"{stage.kind} ({self.stages.index(stage) + 1}/{len(self.stages)}) "

    def left(self, stage: Stage, epochs_done: float, per_epoch: float | None) -> float | None:
        """Seconds left for the whole command, or None before anything was measured."""
        if per_epoch is not None and stage.work > 0:
            self.seconds_per_work = per_epoch / stage.work
        if per_epoch is None and self.seconds_per_work is not None:
            per_epoch = self.seconds_per_work * stage.work or None
        if per_epoch is None:
            return None
        later = sum(s.epochs * s.work for s in self.stages if not s.started)
        return per_epoch * max(stage.epochs - epochs_done, 0.0) + later * (
            self.seconds_per_work or 0.0
        )


def summary(
    kind: str, run_id: str, metrics: Mapping[str, float], tracking_uri: str, exp: str
) -> str:
    """The one line a user reads first: test accuracy (fp32 and the deployed file), the deployed
    bytes, the compression ratio (the teacher's parameters over this model's), and the address of
    the run's page in the MLflow UI."""
    acc = f"test acc {100 * metrics['test_acc']:.1f} % (fp32)"
    if "test_acc_deployed" in metrics:
        acc += f", {100 * metrics['test_acc_deployed']:.1f} % deployed"
        size = f"{metrics['size_deployed_bytes']:,.0f} bytes"
    else:
        size = f"weights {metrics['size_file_bytes']:,.0f} bytes"
    ratio = metrics["compression_ratio"]
    compression = f"compression {ratio:.1f}x" if ratio >= 1 else f"compression {ratio:.2g}x"
    return f"{kind} done: {acc}, {size}, {compression} | {ui_hint(tracking_uri, exp, run_id)}"


# The project's own store (the default logger.tracking_uri): what `make ui` serves.
PROJECT_STORE = Path(__file__).resolve().parents[2] / "mlruns" / "mlflow.db"


def ui_hint(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI: on a tracking server its address; for a local store the
    address `make ui` (the project's own store) or the `mlflow ui` command shown serves it at. A
    password in the URI is shown as ``***``."""
    page = run_page(experiment_id, run_id)
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/{page}"
    local = Path(tracking_uri.removeprefix("sqlite:///"))
    if tracking_uri.startswith("sqlite:///") and local.resolve() == PROJECT_STORE:
        return f"{LOCAL_UI}/{page} (make ui)"
    return f"{LOCAL_UI}/{page} (mlflow ui --backend-store-uri {redact_url(tracking_uri)})"
