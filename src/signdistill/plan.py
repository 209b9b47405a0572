"""What one command will train, planned before anything trains, so that the progress bar's time
left covers the whole command (a teacher not yet stored, then the student), not only the model
training now.

Each model is a :class:`~signdistill.console.Stage`: its run's kind, its epochs on this data (the
recipe's bounds, as :meth:`SignClassifier.schedule` applies them) and its work per epoch in
multiply-accumulates: a forward and a backward pass (about three forwards) of the model per
training recording, a forward of the teacher too when it runs online on the student's batch, and
a forward per validation recording. On the simulator this predicts a distilled student's epoch
at half the teacher's, which is what was timed (README, "Performance": 858-1,313 against 407-677
samples/s). Per-step overheads are not counted: for tiny models the estimate of a later model is
low until that model starts and is timed itself.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from signdistill import recover, teachers
from signdistill.console import Plan, Stage
from signdistill.data.datamodule import SignDataModule
from signdistill.families import Spec, build_network
from signdistill.jobs import Job
from signdistill.module import bounded_epochs
from signdistill.settings import Recipe, Settings


def plan(settings: Settings, dm: SignDataModule) -> Plan:
    """The models ``settings`` will train on ``dm``, in order, each with its work."""
    s = settings
    if s.task == "teacher":
        return Plan([stage(dm, s.model.name, macs(s.model, dm), s.train)])
    if s.task == "prune":
        return Plan(_prune_stages(s, dm))
    members = [teachers.side_job(s.teacher, seed) for seed in s.teacher.seeds or [s.seed]]
    distilled = s.loss is not None
    first = [] if not distilled or s.teacher.checkpoint else _missing(s, dm, members)
    teacher = sum(macs(m.network, dm) for m in members) if distilled else 0.0
    kind = f"{s.model.name}-{'kd' if distilled else 'scratch'}"
    online = teacher if _online(s.train, s.teacher.cache_logits) else 0.0
    return Plan([*first, stage(dm, kind, macs(s.model, dm), s.train, online)])


def _missing(s: Settings, dm: SignDataModule, jobs: list[Job]) -> list[Stage]:
    """A stage for each teacher among ``jobs`` that is not stored yet (it trains first)."""
    return [
        stage(dm, job.kind, macs(job.network, dm), job.recipe)
        for job in jobs
        if not stored(s, dm, job)
    ]


def _prune_stages(s: Settings, dm: SignDataModule) -> list[Stage]:
    """The sparse base model (if not stored), then the recovery of the pruned model, whose sizes
    are known only once pruned: its work is the base model's times (1 - amount)^2 (each layer
    loses that fraction of its inputs and of its outputs)."""
    base = recover.sparse_base_job(s, s.prune)
    base_macs = macs(base.network, dm)
    first = _missing(s, dm, [base])
    distilled = s.prune.recover == "kd" and s.loss is not None
    recipe = s.train.shortened(s.prune.recover_epochs)
    online = base_macs if distilled and _online(recipe, s.teacher.cache_logits) else 0.0
    smaller = base_macs * (1 - s.prune.amount) ** 2
    return [*first, stage(dm, f"pruned-{s.prune.recover}", smaller, recipe, online)]


def stage(
    dm: SignDataModule, kind: str, model_macs: float, recipe: Recipe, teacher_macs: float = 0.0
) -> Stage:
    """A model of ``model_macs`` per recording trained on ``dm`` by ``recipe``, with an online
    teacher of ``teacher_macs`` (0: none, or its logits cached)."""
    r = recipe.values()
    steps = len(dm.train_dataloader())
    epochs = bounded_epochs(r["max_epochs"], r.get("min_steps", 0), r.get("max_steps"), steps)
    n_train, n_val = len(dm.tensors("train")[1]), len(dm.tensors("val")[1])
    work = n_train * (3 * model_macs + teacher_macs) + n_val * model_macs
    return Stage(kind, epochs, work)


def stored(s: Settings, dm: SignDataModule, job: Job) -> bool:
    """Whether the teacher store already holds the teacher ``job`` trains."""
    key = teachers.teacher_key(job.network, job.recipe, dm.describe(), job.seed)
    return (Path(s.paths.teachers) / key / teachers.TEACHER_FILE).exists()


def _online(recipe: Recipe, cache_logits: bool) -> bool:
    """Whether a distilled model's teacher runs on every batch (as :func:`build.module` decides)."""
    augment = recipe.augment()
    return (augment is not None and augment.enabled) or not cache_logits


def macs(spec: Spec, dm: SignDataModule) -> float:
    """Multiply-accumulates of one forward pass of a network of ``spec`` over one recording."""
    with torch.random.fork_rng(devices=[]):  # building it draws weights: leave the seed alone
        network = build_network(spec.architecture(len(dm.channels), len(dm.classes)))
    return forward_macs(network, (1, len(dm.channels), int(dm.recordings.x.shape[2])))


def forward_macs(network: nn.Module, shape: tuple[int, ...]) -> float:
    """Multiply-accumulates of ``network``'s convolutions, linear layers and LSTMs on an input of
    ``shape`` (everything else, pooling and normalization, is cheap beside them). Counted by hand:
    ``torch.utils.flop_counter`` counts 0 for ``nn.LSTM`` on CPU (its fused op has no formula)."""
    total = 0.0

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor | tuple) -> None:
        nonlocal total
        total += layer_macs(module, inputs[0], output)

    layers = (nn.Conv1d, nn.Linear, nn.LSTM)
    hooks = [m.register_forward_hook(count) for m in network.modules() if isinstance(m, layers)]
    try:
        with torch.no_grad():
            network.eval()(torch.zeros(shape))
    finally:
        for hook in hooks:
            hook.remove()
    return total


def layer_macs(module: nn.Module, x: torch.Tensor, output: torch.Tensor | tuple) -> float:
    """Multiply-accumulates of one call of a Conv1d, Linear or LSTM layer on input ``x``."""
    if isinstance(module, nn.Conv1d):
        return output.numel() * module.in_channels // module.groups * module.kernel_size[0]
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    batch, steps = (x.shape[0], x.shape[1]) if module.batch_first else (x.shape[1], x.shape[0])
    directions = 2 if module.bidirectional else 1
    h = module.hidden_size
    inputs = [module.input_size] + [h * directions] * (module.num_layers - 1)
    return batch * steps * directions * sum(4 * h * (i + h) for i in inputs)
