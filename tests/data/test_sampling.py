import numpy as np
import pytest

from pks4_lit.data.sampling import dense_indices, sample_indices, segment_indices


@pytest.mark.parametrize("n,T", [(100, 8), (16, 8), (8, 8), (37, 5)])
def test_segment_train_one_index_inside_each_segment(n, T):
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = segment_indices(n, T, rng)
        seg = np.arange(T)
        assert np.all(idx >= np.floor(seg * n / T)) and np.all(idx < np.ceil((seg + 1) * n / T))


def test_segment_eval_centres_and_distinct_test_clips():
    assert segment_indices(80, 8).tolist() == [5, 15, 25, 35, 45, 55, 65, 75]  # centre of each 10-frame segment
    clips = [segment_indices(80, 8, clip=k, num_clips=3) for k in range(3)]
    assert clips[0].tolist() == [1, 11, 21, 31, 41, 51, 61, 71]  # position (k + 0.5)/K inside the segment
    assert len({tuple(c) for c in clips}) == 3  # test views differ (SlowFast #306)
    for c in clips:
        assert np.all(np.diff(c) == 10)


def test_segment_short_video_repeats_frames():
    idx = segment_indices(3, 8)
    assert idx.min() == 0 and idx.max() == 2 and np.all(np.diff(idx) >= 0)
    assert sorted(set(idx.tolist())) == [0, 1, 2]


def test_dense_definitions():
    rng = np.random.default_rng(1)
    starts = set()
    for _ in range(100):
        idx = dense_indices(100, 8, 4, rng)
        assert np.all(np.diff(idx) == 4) and idx[0] <= 100 - 29
        starts.add(int(idx[0]))
    assert len(starts) > 20  # the start really is random
    assert dense_indices(100, 8, 4)[0] == (100 - 29) // 2  # centred at eval
    clips = [dense_indices(100, 8, 4, clip=k, num_clips=3)[0] for k in range(3)]
    assert clips == [0, 36, 71]  # evenly spaced starts over the room 100 - 29


def test_dense_short_video_clamps_to_last_frame():
    assert dense_indices(10, 4, 4).tolist() == [0, 4, 8, 9]


def test_bad_arguments():
    with pytest.raises(ValueError):
        sample_indices("random", 10, 4)
    with pytest.raises(ValueError):
        segment_indices(0, 4)
    with pytest.raises(ValueError):
        segment_indices(10, 4, clip=3, num_clips=3)
