"""The per-concept label statistics analysis (experiments/label_concepts.py) on hand-computed cases."""

import numpy as np

from experiments.label_concepts import best_cuts, concept_scores, pooled_f1


def test_concept_scores_pool_the_other_clients_per_concept_means():
    confidence = [np.array([0.9, 0.3]), np.array([0.5, 0.7])]
    concepts = [np.array([[1, 0], [0, 1]], bool), np.array([[1, 0], [1, 1]], bool)]
    # client 0 sees client 1's means (concept 0: 0.6, concept 1: 0.7); client 1 sees client 0's (0.9, 0.3)
    scores = concept_scores(confidence, concepts)
    np.testing.assert_allclose(scores[0], [[0.9, 0.3, -0.3], [0.3, -0.4, 0.4]])
    np.testing.assert_allclose(scores[1], [[0.5, -0.4, 0.3], [0.7, 0.1, -0.05]])  # row 1 names both concepts


def test_pooled_f1_sums_counts_over_clients_and_the_best_cut_finds_separable_noise():
    flagged = [np.array([True, False]), np.array([True, True])]
    noisy = [np.array([True, False]), np.array([False, True])]
    assert pooled_f1(flagged, noisy) == 2 * 2 / (3 + 2)  # 2 hits, 3 flagged, 2 noisy
    [cut] = best_cuts([np.array([0.2, 0.8, 0.5])], [np.array([True, False, True])])
    assert cut.tolist() == [True, False, True]
