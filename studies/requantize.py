"""Re-export stored fp32 models with dynamic and static int8 quantization, and measure each file
as a device runs it: bytes, and accuracy one recording at a time (batch of 1). The dynamic file's
accuracy in batches of 256 (what was logged before issue #22) shows its batch effect.

Models come from MLflow runs (their ``model.pt`` and ``config.yaml`` artifacts) matching a filter;
each run's recordings are its own config's data node (``dm.prepare()``, then the run's split), so
the static file is calibrated on that run's training recordings only. One markdown table per
group of runs (``--group-by``, a tag), means over its runs, printed and written to ``--out``.
Per-run results (and the runs skipped, having no stored model) are cached in ``<out>.json``, so an
interrupted study resumes where it stopped.

Usage: python studies/requantize.py "tags.study = 'front_lis'" [--group-by method]
       [--tracking-uri sqlite:///mlruns/mlflow.db] [--out mlruns/studies/requantize.md]
       [--split test] [--calibration-recordings 256] [--calibration-method minmax]
       [--lstm-options] [--data source.root=/path/to/lis]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import numpy as np
import torch
from hydra.utils import instantiate
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf

from signdistill import export
from signdistill.checkpoints import load_model

ROOT = Path(__file__).resolve().parents[1]
VERSION = 4  # bump when what is measured changes: cached results of other versions are redone


@dataclass(frozen=True)
class Measured:
    """One file of one run: its bytes; its accuracy one recording at a time; the fraction of
    recordings whose answer then differs from the fp32 file's; its accuracy in batches of 256;
    the fraction of recordings whose answer differs between the two; whether every recording's
    logits were bit-identical both ways."""

    bytes: int
    acc: float
    changed: float
    acc_batched: float
    batch_changed: float
    invariant: bool


def main(argv: list[str] | None = None) -> str:
    args = arguments(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = export.ExportSettings(
        calibration_recordings=args.calibration_recordings,
        calibration_method=args.calibration_method,
    )
    variants = files(settings, args.lstm_options)
    key = json.dumps([VERSION, args.split, asdict(settings), sorted(variants), args.data])
    cache = Cache(args.out.with_suffix(".json"), key)
    data = Datasets(args.data)
    runs = find_runs(args.tracking_uri, args.filter)
    for i, run in enumerate(runs, 1):
        if cache.get(run.info.run_id) is None:
            start = time.perf_counter()
            try:
                result = measure_run(run, variants, data, args.split)
            except MlflowException as e:  # e.g. no model.pt: a run that stored no model
                result = {"skipped": str(e).splitlines()[0]}
            cache.put(run.info.run_id, result)
            done = result.get("skipped") or f"{time.perf_counter() - start:.1f} s"
            print(f"[{i}/{len(runs)}] {run.info.run_id} {done}")
    groups: dict[str, list[dict]] = {}
    for run in runs:
        result = cache.get(run.info.run_id)
        if result is not None and "skipped" not in result:
            groups.setdefault(run.data.tags.get(args.group_by, "-"), []).append(result)
    report = "\n".join(table(f"{args.group_by} = {g}", rs, variants) for g, rs in groups.items())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    return report


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("filter", help="MLflow filter string, e.g. \"tags.study = 'front_lis'\"")
    parser.add_argument("--group-by", default="method", help="tag whose value groups runs")
    parser.add_argument("--tracking-uri", default=f"sqlite:///{ROOT}/mlruns/mlflow.db")
    parser.add_argument("--out", type=Path, default=ROOT / "mlruns/studies/requantize.md")
    parser.add_argument("--split", choices=["val", "test"], default="test")
    parser.add_argument("--calibration-recordings", type=int, default=256)
    parser.add_argument(
        "--calibration-method", choices=sorted(export.CALIBRATION_METHODS), default="minmax"
    )
    parser.add_argument(
        "--lstm-options",
        action="store_true",
        help="also static int8 with the LSTM dynamically quantized, and with it left fp32",
    )
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of every run's data node, e.g. source.root=/data/lis",
    )
    args = parser.parse_args(argv)
    args.group_by = args.group_by.removeprefix("tags.")
    return args


Quantizer = Callable[[Path, Path, np.ndarray], object]


def files(settings: export.ExportSettings, lstm_options: bool) -> dict[str, Quantizer | None]:
    """The files measured for every model, by row name: how each int8 file is made from the fp32
    one and the run's training recordings (None: the fp32 file itself)."""
    method = settings.calibration_method

    def static(lstm: str) -> Quantizer:
        def make(fp32: Path, out: Path, train: np.ndarray) -> object:
            calibration = export.calibration_set(train, settings.calibration_recordings)
            return export.quantize_static_int8(fp32, out, calibration, method, lstm=lstm)

        return make

    variants: dict[str, Quantizer | None] = {
        "fp32 ONNX": None,
        "dynamic int8": lambda fp32, out, _: export.quantize_int8(fp32, out),
        "static int8": static("int8-weights"),
    }
    if lstm_options:
        variants["static int8, LSTM dynamic"] = static("dynamic")
        variants["static int8, LSTM fp32"] = static("fp32")
    return variants


class Cache:
    """Per-run results in a JSON file, valid for one ``key`` (what is measured, and how)."""

    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = path, key
        stored = json.loads(path.read_text()) if path.is_file() else {}
        self.results: dict = stored.get("results", {}) if stored.get("key") == key else {}

    def get(self, run_id: str) -> dict | None:
        return self.results.get(run_id)

    def put(self, run_id: str, result: dict) -> None:
        self.results[run_id] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staged = self.path.with_suffix(".json.tmp")
        staged.write_text(json.dumps({"key": self.key, "results": self.results}, indent=1))
        staged.replace(self.path)


class Datasets:
    """The recordings of the last data node prepared: consecutive runs on the same data and
    split (runs come oldest first) prepare them once."""

    def __init__(self, overrides: list[str]) -> None:
        self.overrides = overrides
        self.prepared: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}

    def parts(self, data: DictConfig) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        for item in self.overrides:
            key, _, value = item.partition("=")
            OmegaConf.update(data, key, OmegaConf.create({"v": value}).v, merge=False)
        name = OmegaConf.to_yaml(data)
        if name not in self.prepared:
            dm = instantiate(data)
            dm.prepare()
            self.prepared = {name: {part: dm.tensors(part) for part in ("train", "val", "test")}}
        return self.prepared[name]


def find_runs(tracking_uri: str, where: str) -> list[Run]:
    """The finished runs matching ``where``, oldest first."""
    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"{where} and attributes.status = 'FINISHED'",
        output_format="list",
        order_by=["attributes.start_time ASC"],
    )
    return list(runs)


def measure_run(
    run: Run, variants: dict[str, Quantizer | None], data: Datasets, split: str
) -> dict[str, dict]:
    """Every file of ``variants`` made from the run's stored model, measured on its ``split``."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in ("model.pt", "config.yaml"):
            mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id, artifact_path=name, dst_path=str(folder)
            )
        model, meta = load_model(folder / "model.pt")
        parts = data.parts(OmegaConf.load(folder / "config.yaml").data)
        x, y = (t.numpy() for t in parts[split])
        fp32 = folder / "model.onnx"
        onnx_meta = {k: meta[k] for k in ("classes", "channels", "length") if k in meta}
        onnx_meta["min_length"] = model.arch.min_length()
        export.export_onnx(model, fp32, torch.from_numpy(x[:2]), onnx_meta)
        reference = export.recording_logits(export.session(fp32), x).argmax(1)
        out = {}
        for i, (name, make) in enumerate(variants.items()):
            path = fp32 if make is None else folder / f"{i}.onnx"
            if make is not None:
                make(fp32, path, parts["train"][0].numpy())
            out[name] = asdict(measure_file(path, x, y, reference))
    return out


def measure_file(path: Path, x: np.ndarray, y: np.ndarray, reference: np.ndarray) -> Measured:
    """``path`` on recordings ``x`` with labels ``y``; ``reference``: the fp32 file's answers."""
    sess = export.session(path)
    one, batched = export.recording_logits(sess, x), export.onnx_logits(sess, x, 256)
    return Measured(
        bytes=path.stat().st_size,
        acc=float((one.argmax(1) == y).mean()),
        acc_batched=float((batched.argmax(1) == y).mean()),
        changed=float((one.argmax(1) != reference).mean()),
        batch_changed=float((one.argmax(1) != batched.argmax(1)).mean()),
        invariant=bool(np.array_equal(one, batched)),
    )


def table(title: str, results: list[dict], variants: dict) -> str:
    """A markdown table: a row per file, means over ``results`` (one per run)."""
    lines = [
        f"### {title} ({len(results)} run{'s' if len(results) > 1 else ''})",
        "",
        "| file | bytes | acc, batch of 1 | vs fp32 (points) | answers unlike fp32 "
        "| acc, batches of 256 | answers changed by batching "
        "| runs with the same logits at any batch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    fp32 = statistics.fmean(r["fp32 ONNX"]["acc"] for r in results)
    for name in variants:
        rows = [r[name] for r in results]
        acc, size = (statistics.fmean(r[k] for r in rows) for k in ("acc", "bytes"))
        changed, batched, moved = (
            100 * statistics.fmean(r[k] for r in rows)
            for k in ("changed", "acc_batched", "batch_changed")
        )
        lines.append(
            f"| {name} | {size:,.0f} | {100 * acc:.1f} % | {100 * (acc - fp32):+.1f} "
            f"| {changed:.1f} % | {batched:.1f} % | {moved:.1f} % "
            f"| {sum(r['invariant'] for r in rows)}/{len(rows)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
