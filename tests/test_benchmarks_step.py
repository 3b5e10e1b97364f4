"""The adapter-step benchmark's two variants are what its table says: the dense one's intra-modal graph is
every ordered pair of distinct nodes of an image (regions) or caption (tokens), the sparse one keeps top-k."""

import pytest
import torch
import torch.nn.functional as F

from benchmarks.adapter_step import dense_top_k, edges_per_image, intra_top_k
from semfed.config import load_config
from semfed.retrieval.adapter.graph import gaussian_knn_edges


@pytest.mark.parametrize("nodes", [8, 24, 36])  # regions (8, 36) and a caption's max-tokens (24)
def test_dense_variant_is_all_pairs_and_sparse_is_top_k(nodes):
    cfg = load_config()
    batch = 3
    x = F.normalize(torch.randn(batch, nodes, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    mask = torch.ones(batch, nodes, dtype=torch.bool)
    dense, _ = gaussian_knn_edges(x, mask, intra_top_k("dense", nodes, cfg), cfg.kernel_sigma)
    assert intra_top_k("dense", nodes, cfg) == dense_top_k(nodes, cfg.max_tokens) >= nodes - 1
    pairs = {(b * nodes + j, b * nodes + i) for b in range(batch) for i in range(nodes) for j in range(nodes) if i != j}
    assert set(map(tuple, dense.T.tolist())) == pairs
    assert dense.shape[1] == batch * edges_per_image(nodes, dense_top_k(nodes, cfg.max_tokens))
    sparse, _ = gaussian_knn_edges(x, mask, intra_top_k("sparse", nodes, cfg), cfg.kernel_sigma)
    assert sparse.shape[1] == batch * edges_per_image(nodes, cfg.intra_top_k) == batch * nodes * cfg.intra_top_k
    assert set(map(tuple, sparse.T.tolist())) < pairs
