import numpy as np
import pytest

from semfed.data.partition import follow_partition, partition_indices


def test_iid_covers_everything_once_in_near_equal_parts():
    parts = partition_indices(np.zeros(103, int), 10, "iid", 1.0, seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(103))
    assert {len(p) for p in parts} == {10, 11}


def test_dirichlet_is_a_reproducible_skewed_partition():
    classes = np.repeat(np.arange(6), 100)
    parts = partition_indices(classes, 10, "dirichlet", 0.3, seed=4)
    assert sorted(np.concatenate(parts).tolist()) == list(range(600))
    again = partition_indices(classes, 10, "dirichlet", 0.3, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = partition_indices(classes, 10, "dirichlet", 0.3, seed=5)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other))
    # non-IID: some client's class histogram is far from uniform
    hist = np.array([np.bincount(classes[p], minlength=6) / len(p) for p in parts])
    assert hist.max() > 0.5
    assert min(len(p) for p in parts) >= 2


def test_unknown_scheme_is_rejected():
    with pytest.raises(ValueError, match="unknown partitioning 'zipf'"):
        partition_indices(np.zeros(5, int), 2, "zipf", 1.0, seed=0)


def test_a_test_pool_follows_each_clients_share_of_every_class():
    classes = np.array([0, 0, 0, 0, 1, 1])
    parts = [np.array([0, 1, 2]), np.array([3, 4, 5])]  # client 0 holds 3/4 of class 0, client 1 the rest
    pool = np.array([0] * 8 + [1] * 4 + [2] * 2)  # class 2: held by nobody, shared equally
    test = follow_partition(classes, parts, pool, seed=0)
    assert [np.bincount(pool[t], minlength=3).tolist() for t in test] == [[6, 0, 1], [2, 4, 1]]
    assert sorted(np.concatenate(test).tolist()) == list(range(14))
    assert all(np.array_equal(a, b) for a, b in zip(test, follow_partition(classes, parts, pool, seed=0)))


def test_under_dirichlet_each_clients_test_classes_track_its_training_classes():
    classes, pool = np.repeat(np.arange(6), 100), np.repeat(np.arange(6), 50)
    parts = partition_indices(classes, 5, "dirichlet", 0.3, seed=1)
    test = follow_partition(classes, parts, pool, seed=1)
    train_hist = np.array([np.bincount(classes[p], minlength=6) for p in parts])
    test_hist = np.array([np.bincount(pool[t], minlength=6) for t in test])
    assert np.abs(test_hist - train_hist / 2).max() <= 1  # half the pool per class: half the counts, floor cuts


def test_more_clients_than_samples_is_refused_naming_both():
    with pytest.raises(ValueError, match="5 clients and 4 samples: under 'iid' partitioning some client would get fewer than 1"):
        partition_indices(np.zeros(4, int), 5, "iid", 1.0, seed=0)
