"""Table statistics from trial results: pairing is by clip id and seed, never by position alone."""
import pytest

from pks4_lit.tables.aggregate import correct_matrix, group_summary, lr_winner, paired


def test_group_summary_is_the_mean_of_per_seed_accuracies(trial):
    g = [trial(1, [0, 0, 1, 1]), trial(0, [0, 1, 1, 1])]          # 50 %, 25 %; given out of seed order
    s = group_summary(g)
    assert s["seeds"] == [0, 1] and s["test_top1"] == [0.25, 0.5]
    assert s["test"]["mean"] == pytest.approx(0.375) and s["test"]["n"] == 2 and s["n_test"] == 4


def test_paired_refuses_other_clips_or_order_and_other_seeds(trial):
    a = [trial(0, [0, 1, 0]), trial(1, [0, 0, 0])]
    shuffled = [trial(0, [0, 1, 0], ids=["2", "1", "3"]), trial(1, [0, 0, 0], ids=["2", "1", "3"])]
    with pytest.raises(ValueError, match="test clips differ"):
        paired(a, shuffled)
    with pytest.raises(ValueError, match="same seeds"):
        paired(a, [trial(0, [0, 1, 0]), trial(2, [0, 0, 0])])
    with pytest.raises(ValueError, match="repeated seeds"):
        group_summary([trial(0, [0]), trial(0, [1])])


def test_paired_pairs_clip_by_clip_and_seed_by_seed(trial):
    # b is right exactly where a is wrong, on every seed: the pooled difference and McNemar see it
    a = [trial(s, [0, 0, 0, 0, 1, 1, 1, 1] * 25) for s in range(3)]
    b = [trial(s, [1, 1, 1, 1, 0, 0, 0, 0] * 25) for s in range(3)]
    d = paired(a, b)
    assert d["delta"] == 0 and d["a_only"] == d["b_only"] == 300 and d["n_pairs"] == 600
    better = [trial(s, [0] * 200) for s in range(3)]                 # always right
    d = paired(better, b)
    assert d["delta"] == pytest.approx(0.5) and d["significant"] and d["lo"] > 0 and d["mcnemar_p"] < 1e-6
    assert d["a_only"] == 300 and d["b_only"] == 0


def test_correct_matrix_is_seed_by_clip(trial):
    ids, c = correct_matrix([trial(0, [0, 1]), trial(1, [1, 0])])
    assert ids == ["1", "2"] and c.tolist() == [[True, False], [False, True]]


def test_lr_winner_is_the_validation_argmax_smallest_on_ties(trial):
    assert lr_winner({0.001: [0.5, 0.7], 0.004: [0.6, 0.65], 0.016: [0.1, 0.2]}) == 0.004
    assert lr_winner({0.016: [0.6], 0.001: [0.6], 0.004: [0.5]}) == 0.001
