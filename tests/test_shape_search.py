"""The shape search (sweeps/student_shape_pareto.yaml): its space, and sizes that are the files'."""

from __future__ import annotations

from pathlib import Path

import optuna
import torch
from hydra import compose, initialize_config_dir
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.signdistill_sweeper._space import SearchSpace
from signdistill import export
from signdistill.build import network
from signdistill.models import ModelSpec

from fakes import BlobSource
from pipeline_helpers import CONF

LAYERS = ("model.conv1", "model.conv2", "model.hidden", "model.lstm_layers", "model.kernel_size")


def composed():
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(
            "config",
            overrides=["paths.root=/tmp", "+sweeps=student_shape_pareto"],
            return_hydra_config=True,
        )


def test_the_space_searches_each_layer_on_its_own_and_the_kd_settings():
    cfg = composed()
    space = SearchSpace.parse(cfg.hydra.sweeper.params, []).distributions()
    assert set(space) == {*LAYERS, "distill.temperature", "distill.alpha"}
    for size in ("model.conv1", "model.conv2", "model.hidden"):  # integer sizes on a log scale
        assert isinstance(space[size], IntDistribution) and space[size].log
    assert space["model.lstm_layers"] == CategoricalDistribution([1, 2])
    assert isinstance(space["distill.temperature"], FloatDistribution)
    assert list(cfg.hydra.sweeper.objectives) == ["val_acc_deployed", "size_deployed_bytes"]
    assert cfg.train.augment is None and cfg.train.max_epochs < 300  # the screening schedule


def test_every_sampled_shape_builds_a_model_whose_deployed_size_is_its_file(tmp_path):
    cfg = composed()
    space = SearchSpace.parse(cfg.hydra.sweeper.params, []).distributions()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    x = torch.from_numpy(BlobSource(length=120).load(tmp_path).x)
    y = torch.zeros(len(x), dtype=torch.long)
    settings = export.ExportSettings(latency_runs=0)
    for i in range(4):
        params = study.ask(space).params
        sizes = {k.removeprefix("model."): v for k, v in params.items() if k in LAYERS}
        model = network_for(ModelSpec(role="student", name="student", **sizes), x)
        folder = tmp_path / str(i)
        folder.mkdir()
        meta = {"classes": ["a"] * 4, "channels": ["c"] * 5, "length": 120, "min_length": 1}
        split = export.Split(x[:8], y[:8])
        splits = export.Splits(split, split, split)
        measured, files = export.measure(model, splits, folder, meta, settings)
        deployed = export.deployed({"val_acc": 0.0, "test_acc": 0.0} | measured, settings)
        assert deployed["size_deployed_bytes"] == Path(files[-1]).stat().st_size


def network_for(spec: ModelSpec, x: torch.Tensor):
    """A network of ``spec`` for 5-channel, 4-class recordings."""

    class Data:  # what build.network reads of a DataModule
        channels, classes = ["c"] * 5, ["a"] * 4

        @staticmethod
        def channel_stats():
            return x.mean(dim=(0, 2)), x.std(dim=(0, 2))

    return network(spec, Data()).eval()
