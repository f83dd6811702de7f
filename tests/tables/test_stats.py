import numpy as np
import pytest

from pks4_lit.tables.stats import mcnemar, mean_ci, paired_bootstrap, seed_t


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
    """b = a with 6 answers flipped to wrong on EVERY seed: paired, that is significant (no seed spread)."""
    rng = np.random.default_rng(0)
    a = rng.random((5, 400)) < 0.7
    b = a.copy()
    for s in range(5):
        b[s, np.flatnonzero(a[s])[:6]] = False
    assert mcnemar(a, b)["a_only"] == 30 and mcnemar(a, b)["b_only"] == 0
    res = paired_bootstrap(a, b, n_boot=2000)
    assert res["lo"] > 0 and res["seed_t_p"] == 0.0 and res["significant"]


def test_a_difference_made_by_one_collapsed_seed_is_not_significant():
    """One of five runs never learned (seed 4 at chance): that is run-to-run spread, not an effect of the
    switch. Resampling clips with the seeds held fixed calls it significant; seeds × clips must not."""
    rng = np.random.default_rng(0)
    truth = rng.random((5, 200))
    b = truth < 0.5
    a = b.copy()
    a[4] = truth[4] < 0.125                                # the collapsed run
    res = paired_bootstrap(a, b, n_boot=4000)
    assert res["delta"] < -0.05
    assert res["hi"] >= 0 and not res["significant"]
    assert res["seed_t_p"] > 0.05


def test_a_consistent_difference_across_seeds_is_significant_and_matches_the_t_test():
    rng = np.random.default_rng(2)
    truth = rng.random((5, 300))
    a = truth < np.array([0.62, 0.60, 0.65, 0.61, 0.63])[:, None]
    b = truth < 0.5
    res = paired_bootstrap(a, b, n_boot=4000)
    t = seed_t(a, b)
    assert res["significant"] and res["lo"] > 0 and t["p"] < 0.01
    assert t["per_seed"] == pytest.approx((a.mean(1) - b.mean(1)).tolist())


def test_paired_tests_refuse_unpaired_inputs():
    with pytest.raises(ValueError, match="same seeds and test clips"):
        paired_bootstrap(np.ones((5, 10), bool), np.ones((5, 11), bool))
