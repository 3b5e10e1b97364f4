"""The encoder probe's score of a detector's prediction heads: the most probable value of each attribute's block."""

import numpy as np

from experiments.encoder_probe import block_accuracy

ATTRIBUTES = (("shape", ("circle", "square", "star")), ("size", ("small", "large")))


def test_each_block_is_scored_on_its_own_attribute():
    predictions = np.array([[0.7, 0.2, 0.1, 0.4, 0.6],    # predicted circle, large
                            [0.1, 0.1, 0.8, 0.9, 0.1],    # star, small
                            [0.3, 0.5, 0.2, 0.2, 0.8],    # square, large
                            [0.2, 0.3, 0.5, 0.6, 0.4]])   # star, small
    labels = np.array([[0, 1], [2, 1], [1, 1], [0, 0]])
    # by hand: shape right in rows 0, 1, 2; size right in rows 0, 2, 3. Reading the size block one column
    # early (columns 2-3) would give 0.5, scoring the first block for both would give shape 0.75, size 0.25
    assert block_accuracy(predictions, labels, ATTRIBUTES) == {"shape": 0.75, "size": 0.75}
