import numpy as np
import pytest

from pks4_lit.tables.stats import mcnemar, mean_ci, paired_bootstrap


def test_mean_ci_uses_student_t_over_seeds():
    ci = mean_ci([0.8, 0.9, 0.85, 0.75, 0.95])
    assert ci["mean"] == pytest.approx(0.85) and ci["n"] == 5
    # t(0.975, 4) = 2.776, sd = 0.0791: half-width 0.0982 (a normal quantile would give 0.069)
    assert ci["half"] == pytest.approx(2.7764 * np.std([0.8, 0.9, 0.85, 0.75, 0.95], ddof=1) / np.sqrt(5), rel=1e-3)
    assert ci["lo"] < 0.85 < ci["hi"]
    assert mean_ci([0.5])["half"] == 0.0


def test_paired_bootstrap_finds_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(1)
    truth = rng.random((5, 400))
    a = truth < 0.80                                     # a ~ 80 %
    b = truth < 0.70                                     # b ~ 70 %, wrong on a superset of a's errors
    res = paired_bootstrap(a, b, n_boot=2000)
    assert res["delta"] == pytest.approx(a.mean() - b.mean())
    assert res["significant"] and res["lo"] > 0 and res["p"] < 0.01
    null = paired_bootstrap(a, a.copy(), n_boot=2000)
    assert null["delta"] == 0 and not null["significant"] and null["p"] == 1.0
    c = rng.random((5, 400)) < 0.80                      # same true accuracy, independent errors
    same = paired_bootstrap(a, c, n_boot=2000)
    assert same["lo"] <= 0 <= same["hi"] and not same["significant"]


def test_pairing_is_what_makes_small_differences_visible():
    """b = a with 12 of 2000 (seed, clip) answers flipped to wrong: paired, that is significant."""
    rng = np.random.default_rng(0)
    a = rng.random((5, 400)) < 0.7
    b = a.copy()
    b[0, np.flatnonzero(a[0])[:12]] = False
    assert mcnemar(a, b)["a_only"] == 12 and mcnemar(a, b)["b_only"] == 0
    assert mcnemar(a, b)["p"] < 0.001
    assert paired_bootstrap(a, b, n_boot=2000)["lo"] > 0      # a − b > 0: b lost 12 answers


def test_paired_tests_refuse_unpaired_inputs():
    with pytest.raises(ValueError, match="same seeds and test clips"):
        paired_bootstrap(np.ones((5, 10), bool), np.ones((5, 11), bool))
