"""The ISL simulator: deterministic, ISL-shaped, learnable, cached."""

import dataclasses

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from signdistill.data.simulator import IslSimulator
from signdistill.errors import DataError

SMALL = IslSimulator(n_signs=6, n_subjects=3, n_repetitions=8, n_families=3)


def test_same_seed_same_data_bit_for_bit():
    a, b = SMALL.generate(), SMALL.generate()
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert np.array_equal(a.groups, b.groups)
    other = dataclasses.replace(SMALL, seed=1).generate()
    assert not np.array_equal(a.x, other.x)


def test_a_sign_does_not_depend_on_which_other_signs_are_generated():
    few = dataclasses.replace(SMALL, n_signs=3).generate()
    assert np.array_equal(few.x, SMALL.generate().x[: len(few.x)])


def test_default_shape_matches_the_isl_study():
    sim = IslSimulator()
    assert sim.length == 298  # 2 s at one IMU sample every 6.7 ms
    assert len(sim.channels) == 42
    assert sim.channels[:7] == [
        "s1_emg",
        "s1_acc_x",
        "s1_acc_y",
        "s1_acc_z",
        "s1_gyro_x",
        "s1_gyro_y",
        "s1_gyro_z",
    ]


def test_small_config_shapes_and_groups():
    rec = SMALL.generate()
    assert rec.x.shape == (6 * 3 * 8, 42, 298) and rec.x.dtype == np.float32
    assert rec.classes[0] == "sign_00" and len(rec.classes) == 6
    assert sorted(set(rec.groups)) == ["subject_1", "subject_2", "subject_3"]
    assert np.bincount(rec.y).tolist() == [24] * 6
    emg = rec.x[:, 0::7]
    assert (emg >= 0).all()  # an RMS envelope is never negative


def test_signs_are_learnable_not_noise():
    rec = IslSimulator(n_signs=5, n_subjects=2, n_repetitions=20, n_families=5).generate()
    features = rec.x[:, :, :294].reshape(len(rec.x), 42, 6, 49).mean(-1).reshape(len(rec.x), -1)
    train = np.arange(len(rec.y)) % 4 != 0
    model = LogisticRegression(max_iter=1000).fit(features[train], rec.y[train])
    assert model.score(features[~train], rec.y[~train]) > 0.6  # chance is 0.2


def test_harder_knobs_make_signs_harder_to_tell_apart():
    def accuracy(sim: IslSimulator) -> float:
        rec = sim.generate()
        f = rec.x[:, :, :294].reshape(len(rec.x), 42, 6, 49).mean(-1).reshape(len(rec.x), -1)
        train = np.arange(len(rec.y)) % 4 != 0
        return (
            LogisticRegression(max_iter=500)
            .fit(f[train], rec.y[train])
            .score(f[~train], rec.y[~train])
        )

    base = IslSimulator(n_signs=10, n_subjects=2, n_repetitions=12, n_families=2)
    easy = accuracy(dataclasses.replace(base, noise=0.1, sign_separation=1.0))
    hard = accuracy(dataclasses.replace(base, noise=2.0, sign_separation=0.05))
    assert easy > hard + 0.2


def test_load_caches_on_disk(tmp_path, monkeypatch):
    first = SMALL.load(tmp_path)
    assert len(list(tmp_path.glob("isl_sim-*.npz"))) == 1

    def fail():
        raise AssertionError("generated again instead of reading the cache")

    monkeypatch.setattr(IslSimulator, "generate", lambda self: fail())
    second = SMALL.load(tmp_path)
    assert np.array_equal(first.x, second.x) and first.channels == second.channels


@pytest.mark.parametrize(
    ("field", "value"),
    [("n_signs", 1), ("n_subjects", 0), ("noise", -0.1), ("n_families", 99), ("emg_rate_hz", 0)],
)
def test_invalid_knobs_name_the_config_key(field, value):
    with pytest.raises(DataError, match=rf"^data\.source\.{field}={value}: must be"):
        dataclasses.replace(SMALL, **{field: value})


def test_fingerprint_is_pinned():
    """Cached teachers and logged runs are keyed by it: a change must be deliberate."""
    assert SMALL.generate().fingerprint == "462d4456d35b393f"
