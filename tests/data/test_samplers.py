"""EpochSampler / EvalSampler shards and the ResumableDataLoader's place in the epoch."""
import numpy as np
import pytest
import torch

from pks4_lit.data.samplers import EpochSampler, EvalSampler, ResumableDataLoader


class Items(torch.utils.data.Dataset):
    """Item = (index, epoch) as a tensor: what the sampler asked for."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, key):
        index, epoch = key
        return torch.tensor([index, epoch])


def test_single_process_order_is_the_seeded_permutation():
    s = EpochSampler(10, shuffle=True, seed=3)
    first, second = list(s), list(s)  # no set_epoch: a new epoch per pass
    assert [i for i, _ in first] == np.random.default_rng([3, 0]).permutation(10).tolist()
    assert {e for _, e in first} == {0} and {e for _, e in second} == {1}
    s.set_epoch(0)
    assert list(s) == first
    assert [i for i, _ in EpochSampler(4, shuffle=False)] == [0, 1, 2, 3]


def test_training_shards_are_equal_and_cover_every_item():
    shards = [list(EpochSampler(7, shuffle=True, seed=1, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]  # padded: 9 = 7 + 2 repeats
    assert {i for s in shards for i, _ in s} == set(range(7))


def test_eval_shards_hold_every_video_once():
    shards = [list(EvalSampler(5, num_replicas=2, rank=r)) for r in range(2)]
    assert shards == [[0, 2, 4], [1, 3]]
    assert [len(EvalSampler(5, num_replicas=2, rank=r)) for r in range(2)] == [3, 2]


def _loader(n=10, batch=3, workers=0, rank=0, world=1):
    return ResumableDataLoader(Items(n), batch_size=batch, num_workers=workers,
                               sampler=EpochSampler(n, shuffle=True, seed=5, num_replicas=world, rank=rank))


def _rows(batches):
    return [tuple(r) for b in batches for r in b.tolist()]


@pytest.mark.parametrize("epoch", [0, 2])
def test_a_resumed_loader_continues_where_the_saved_one_was(epoch):
    full = _loader()
    full.sampler.set_epoch(epoch)
    whole = _rows(full)

    first = _loader()
    first.sampler.set_epoch(epoch)
    it = iter(first)
    head = _rows([next(it), next(it)])
    state = first.state_dict()
    assert state == {"epoch": epoch, "batches": 2}

    resumed = _loader()
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(epoch)  # what Lightning does on resume, after load_state_dict
    tail = _rows(resumed)
    assert head + tail == whole and len(tail) == 4
    assert resumed.state_dict() == {"epoch": epoch, "batches": 4}
    resumed.sampler.set_epoch(epoch + 1)  # the next epoch is whole again
    assert len(_rows(resumed)) == 10


def test_state_of_another_epoch_is_ignored():
    resumed = _loader()
    resumed.load_state_dict({"epoch": 0, "batches": 4})  # saved at the end of epoch 0
    resumed.sampler.set_epoch(1)
    assert len(_rows(resumed)) == 10


def test_iteration_starts_at_the_first_batch_not_at_iter():
    """Lightning calls iter() before set_epoch(); workers must not draw indices for the stale epoch."""
    loader = _loader(workers=2)
    it = iter(loader)
    loader.sampler.set_epoch(4)
    assert {e for _, e in _rows(it)} == {4}
