"""The Conv1D-pool-LSTM family: sizes, shapes and the stored normalization."""

import pytest
import torch

from signdistill.models import (
    Architecture,
    ConvPoolLSTM,
    ModelSpec,
    count_parameters,
    scaled_sizes,
)
from signdistill.teachers import TeacherEnsemble


def test_parameter_counts_match_the_reference_reimplementation():
    # 18 LIS channels, 26 letters: the counts a plain Keras-like reimplementation reported
    teacher = ConvPoolLSTM(Architecture(18, 26))
    student = ConvPoolLSTM(Architecture(18, 26, (2, 4), (50, 50)))
    assert count_parameters(teacher) == 157_994
    assert count_parameters(student) == 33_164


def test_output_shape_and_shortest_input():
    arch = Architecture(6, 5, (4, 8), (10, 10))
    model = ConvPoolLSTM(arch).eval()
    assert model(torch.randn(3, 6, 120)).shape == (3, 5)
    assert model(torch.randn(2, 6, arch.min_length())).shape == (2, 5)
    with pytest.raises(RuntimeError):
        model(torch.randn(2, 6, arch.min_length() - 3))


def test_width_scales_every_size_but_never_below_one():
    assert scaled_sizes((2, 4, 50), 2.0) == (4, 8, 100)
    assert scaled_sizes((2, 4, 50), 0.1) == (1, 1, 5)


def test_a_width_that_would_round_a_layer_to_no_units_is_refused():
    sizes = {"role": "student", "name": "student", "conv1": 2, "conv2": 4, "hidden": 50}
    with pytest.raises(ValueError, match=r"^width=0\.001: scales conv1=2 to 0\.002") as err:
        ModelSpec(**sizes, width=0.001)
    assert "width > 0.25" in str(err.value)
    # a layer of one unit asked for (0.3 x 2 rounds to 1) is a model, as a sweep's smallest
    assert ModelSpec(**sizes, width=0.3).architecture(3, 2).conv_channels == (1, 1)


def test_standardization_is_part_of_the_model_state():
    model = ConvPoolLSTM(Architecture(3, 2, (2, 2), (4, 4)))
    model.normalize.fit(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 0.0]))
    state = model.state_dict()
    assert state["normalize.mean"].flatten().tolist() == [1.0, 2.0, 3.0]
    assert state["normalize.std"].min() > 0  # a constant channel cannot divide by zero
    x = torch.ones(1, 3, 5) * torch.tensor([3.0, 2.0, 3.0]).view(1, 3, 1)
    assert model.normalize(x)[0, :, 0].tolist() == [1.0, 0.0, 0.0]


def test_architecture_round_trips_through_plain_data():
    arch = Architecture(7, 3, (5, 6), (11, 9), conv_batchnorm=True)
    assert Architecture.from_dict(arch.as_dict()) == arch


def test_teacher_ensemble_logits_are_the_mean_of_its_members_logits():
    torch.manual_seed(0)
    members = [ConvPoolLSTM(Architecture(5, 4, (4, 4), (8, 8))).eval() for _ in range(3)]
    x = torch.randn(6, 5, 40)
    with torch.no_grad():
        expected = (members[0](x) + members[1](x) + members[2](x)) / 3
        assert torch.allclose(TeacherEnsemble(members)(x), expected, atol=1e-6)
