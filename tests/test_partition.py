import numpy as np
import pytest

from semfed.data.partition import partition_indices


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
