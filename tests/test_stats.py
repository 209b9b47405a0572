"""The statistics helper on paired samples with known answers."""

import pytest

from signdistill.stats import mean_ci, paired


def test_mean_ci_is_the_t_interval():
    # mean 3, standard error sqrt(2.5 / 5), t(0.975, 4 df) = 2.7764
    ci = mean_ci([1, 2, 3, 4, 5])
    assert ci.mean == 3
    assert ci.low == pytest.approx(3 - 2.7764 * 0.70711, abs=1e-3)
    assert ci.high == pytest.approx(3 + 2.7764 * 0.70711, abs=1e-3)


def test_paired_differences_and_exact_wilcoxon_p_value():
    a = [0.80, 0.82, 0.84, 0.86, 0.88]
    b = [0.79, 0.80, 0.81, 0.82, 0.83]  # a - b = 0.01 .. 0.05, all positive
    result = paired(a, b)
    assert result.diff.mean == pytest.approx(0.03)
    assert result.diff.low == pytest.approx(0.03 - 2.7764 * 0.0070711, abs=1e-5)
    assert result.p_value == pytest.approx(2 / 32)  # 2 of 2^5 sign patterns are as extreme
    assert (result.wins, result.ties) == (5, 0)


def test_ties_are_counted_and_identical_samples_give_p_one():
    result = paired([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert (result.diff.mean, result.diff.low, result.diff.high) == (0, 0, 0)
    assert result.p_value == 1.0
    assert result.ties == 3


def test_unequal_lengths_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        paired([1, 2], [1])
