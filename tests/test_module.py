"""The Lightning module: a distillation teacher stays frozen, in eval mode, and sees exactly the
student's augmented batch."""

import copy

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from signdistill.augment import Augment
from signdistill.data.datamodule import SignDataModule
from signdistill.distill import Distiller, KDLoss
from signdistill.models import Architecture, ConvPoolLSTM
from signdistill.module import SignClassifier

from fakes import BlobSource


class TeacherWatch(Callback):
    def __init__(self):
        self.modes = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.modes.append(module.teacher.training)

    def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
        self.modes.append(module.teacher.training)


def test_teacher_is_frozen_and_in_eval_mode_for_the_whole_student_run(tmp_path):
    dm = SignDataModule(BlobSource(), batch_size=16, cache_dir=str(tmp_path))
    dm.prepare()
    arch = Architecture(5, 4, (4, 4), (8, 8))
    teacher = ConvPoolLSTM(arch)
    before = copy.deepcopy(teacher.state_dict())  # includes BatchNorm running statistics
    module = SignClassifier(
        ConvPoolLSTM(arch),
        lambda params: torch.optim.Adam(params, lr=1e-2),
        max_epochs=2,
        augment=Augment(time_shift=0.05, gain=0.1),  # augmentation -> online teacher passes
        distiller=Distiller(teacher, KDLoss(temperature=4.0, alpha=0.9), online=True),
    )
    watch = TeacherWatch()
    trainer = L.Trainer(
        max_epochs=2,
        callbacks=[watch],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.fit(module, datamodule=dm)
    assert watch.modes and not any(watch.modes)
    assert all(not p.requires_grad for p in teacher.parameters())
    for name, value in teacher.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_online_teacher_sees_exactly_the_students_augmented_batch(tmp_path):
    dm = SignDataModule(BlobSource(), batch_size=16, cache_dir=str(tmp_path))
    dm.prepare()
    arch = Architecture(5, 4, (4, 4), (8, 8))
    student, teacher = ConvPoolLSTM(arch), ConvPoolLSTM(arch)
    seen: dict[str, list[torch.Tensor]] = {"student": [], "teacher": []}

    def record(name):
        def hook(module, args):
            if name == "teacher" or module.training:  # the student also runs for validation
                seen[name].append(args[0].clone())

        return hook

    student.register_forward_pre_hook(record("student"))
    teacher.register_forward_pre_hook(record("teacher"))
    module = SignClassifier(
        student,
        lambda params: torch.optim.Adam(params, lr=1e-2),
        max_epochs=1,
        augment=Augment(time_shift=0.1, time_scale=0.1, gain=0.2, mixup=0.4),
        distiller=Distiller(teacher, KDLoss(temperature=4.0, alpha=0.5), online=True),
    )
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.fit(module, datamodule=dm)
    raw = dm.tensors("train")[0]
    assert len(seen["teacher"]) == len(seen["student"]) > 1
    for t, s in zip(seen["teacher"], seen["student"], strict=True):
        assert torch.equal(t, s)
    batch = seen["student"][0]
    assert not any(torch.equal(batch, raw[i : i + len(batch)]) for i in range(len(raw)))
