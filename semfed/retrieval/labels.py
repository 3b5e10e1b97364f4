"""Error-aware labelling (seed 000, V-C): confidence, the label ledger, consensus statistics.

A *label* in semfed is an image's annotation: its five captions (the positives of the
triplet loss) and the SKB concepts they name (the targets of the alignment loss). With the
encoders frozen there is no ground truth for the aligned tokens, so the adapter's own
SKB-aligned output of the annotation is the *provisional label*: the embedding of the
caption for a client holding both modalities, the unit mean of the named concepts'
SKB embeddings for a single-modality client. A label is trusted as far as the sample's
embedding picks it out of a mini-batch of labels (`rank_confidence`). What chance looks like
is measured the same way: each label has a *decoy*, another sample's label, scored against the sample
(`decoy_rank_confidence`); a noisy label ranks like a decoy, whatever the encoders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from semfed.label_policies import LabelPolicy

HISTOGRAM_BINS = 20


def rank_confidence(similarity: torch.Tensor) -> torch.Tensor:
    """Confidence of each label from a mini-batch similarity matrix. [B, B] -> [B] in [0, 1].

    similarity[i, j]: sample i against label j. Confidence of label i is the fraction of
    the other labels that sample i scores below its own, averaged with the fraction of the
    other samples that label i scores below sample i; ties count half. 0.5 is chance, 1 means
    the pair is the best match both ways. A batch of one gives 1.
    """
    b = similarity.shape[0]
    if b == 1:
        return torch.ones(1, device=similarity.device)
    diag = similarity.diag()
    row = (diag[:, None] > similarity).float() + 0.5 * (diag[:, None] == similarity).float()
    col = (diag[None, :] > similarity).float() + 0.5 * (diag[None, :] == similarity).float()
    return (row.sum(1) + col.sum(0) - 1.0) / (2 * (b - 1))  # each sum holds the diagonal tie once (0.5)


def concept_prototypes(targets: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
    """Unit mean SKB embedding of each label's concepts: targets [B, K] multi-hot, concepts [K, d] -> [B, d]."""
    return torch.nn.functional.normalize(targets @ concepts, dim=1)


def confidence_histogram(confidence: np.ndarray) -> np.ndarray:
    """Counts of confidences in HISTOGRAM_BINS equal bins over [0, 1]. [HISTOGRAM_BINS] float64."""
    return np.histogram(np.clip(confidence, 0, 1), bins=HISTOGRAM_BINS, range=(0.0, 1.0))[0].astype(np.float64)


def decoy_rank_confidence(similarity: torch.Tensor, decoy_similarity: torch.Tensor) -> torch.Tensor:
    """Confidence each sample's *decoy* label would get in its mini-batch: the chance distribution.
    [B, B], [B, B] -> [B] in [0, 1].

    similarity[i, j]: sample i against the batch's label j (as in rank_confidence); decoy_similarity[i, j]:
    sample i against the decoy label of sample j (another sample's label, which does not describe it). The
    decoy of label i is scored exactly as a label of sample i would be: the fraction of the batch's other
    labels (j != i) that sample i scores below its decoy, averaged with the fraction of the other samples
    (m != i) that the decoy scores below sample i; ties count half. A batch of one gives 0.5.
    """
    b = similarity.shape[0]
    if b == 1:
        return torch.full((1,), 0.5, device=similarity.device)
    decoy = decoy_similarity.diag()
    others = ~torch.eye(b, dtype=torch.bool, device=similarity.device)
    row = ((decoy[:, None] > similarity).float() + 0.5 * (decoy[:, None] == similarity).float()) * others
    col = ((decoy[None, :] > decoy_similarity).float() + 0.5 * (decoy[None, :] == decoy_similarity).float()) * others
    return (row.sum(1) + col.sum(0)) / (2 * (b - 1))


LABEL_COUNTS = ("excluded", "pruned", "reinstated")  # what a client reports of its labels each round
CHANCE_BIN = HISTOGRAM_BINS // 2  # labels under confidence 0.5 (the first CHANCE_BIN bins) estimate the noise fraction


def noise_fraction(histogram: np.ndarray, null: np.ndarray) -> float:
    """Estimated fraction of noisy labels in a confidence histogram [HISTOGRAM_BINS], given the chance
    (decoy) histogram `null` [HISTOGRAM_BINS]: the labels under 0.5 over the share of chance that falls
    there (Storey's pi_0 at lambda = 0.5; clean labels rarely rank under chance, so it errs high only by
    them). In [0, 1]; 0 for an empty histogram, 1 when the null has no mass under 0.5."""
    total, null_total = histogram.sum(), null.sum()
    if total <= 0:
        return 0.0
    null_below = null[:CHANCE_BIN].sum() / null_total if null_total > 0 else 0.0
    if null_below <= 0:
        return 1.0
    return float(min(1.0, histogram[:CHANCE_BIN].sum() / total / null_below))


def noise_cut(histogram: np.ndarray, null: np.ndarray, precision: float) -> float:
    """Confidence under which a client's labels are called noise: the highest bin edge t at which the
    labels under t are expected to be noise at least `precision` of the time, pi_0 F_0(t) / F(t)
    (noise_fraction; F, F_0 the cumulative shares of the histogram and of the null); 0 when no t is
    (a client whose labels show no excess of chance-level confidences prunes nothing)."""
    if histogram.sum() <= 0 or null.sum() <= 0:
        return 0.0
    share, null_share = np.cumsum(histogram) / histogram.sum(), np.cumsum(null) / null.sum()
    expected_noise = noise_fraction(histogram, null) * null_share / np.clip(share, 1e-12, None)
    edges = np.nonzero((share > 0) & (expected_noise >= precision))[0]
    return float((edges.max() + 1) / HISTOGRAM_BINS) if len(edges) else 0.0


@dataclass
class LabelLedger:
    """A client's record of its labels across rounds. N = shard size.

    history: [R, N] confidence of each label in each scored round (mean over the round's epochs; pruned
    labels are scored too); pruned: [N] bool, left out of training.
    """

    history: np.ndarray
    pruned: np.ndarray

    @classmethod
    def empty(cls, n: int) -> "LabelLedger":
        return cls(np.zeros((0, n), np.float32), np.zeros(n, bool))

    def update(self, confidence: np.ndarray, null: np.ndarray, precision: float, prune_rounds: int) -> int:
        """Record one round's confidence [N], then decide every label anew on its evidence: once
        `prune_rounds` rounds are recorded, a label is pruned while its mean confidence over the last
        `prune_rounds` rounds is under noise_cut(the histogram of those means, `null`, precision), and
        taken back when it no longer is. A mean over rounds tells a label that ranks like chance round
        after round (noise) from a hard clean one the adapter is still learning to rank. Returns how
        many pruned labels were taken back this round."""
        self.history = np.concatenate([self.history, confidence[None].astype(np.float32)])
        if len(self.history) < prune_rounds:
            return 0
        evidence = self.history[-prune_rounds:].mean(0)
        below = evidence < noise_cut(confidence_histogram(evidence), null, precision)
        reinstated = int((self.pruned & ~below).sum())
        self.pruned = below
        return reinstated

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"history": self.history, "pruned": self.pruned}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "LabelLedger":
        """A ledger from to_arrays' arrays (a file from an earlier rule may hold more; they are not used)."""
        return cls(arrays["history"], arrays["pruned"].astype(bool))


def detection_scores(flagged: int, flagged_noisy: int, noisy: int) -> dict[str, float]:
    """Precision, recall and F1 of a flagged set against the injected noise (NaN where undefined)."""
    precision = flagged_noisy / flagged if flagged else float("nan")
    recall = flagged_noisy / noisy if noisy else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1}


NULL = "null-histogram"  # the label statistic a client sends: its decoys' confidences


@dataclass
class LabelRoundReport:
    """A client's label outcome for one round.

    statistics: what the client sends for the federation's consensus: the histogram [HISTOGRAM_BINS] of
    its unpruned labels' decoys' round confidences (NULL); no samples, captions, features or indices.
    counts: what the scheme itself knows (labels excluded this round, pruned, taken back this round;
    LABEL_COUNTS), for the metrics table. pruned: [N] bool, the client's pruned labels (stays on the
    client; noise_overlap compares it with the injected noise).
    """

    statistics: dict[str, np.ndarray]
    counts: dict[str, int]
    pruned: np.ndarray


def close_label_round(ledger: LabelLedger | None, confidence: torch.Tensor, decoy_confidence: torch.Tensor,
                      excluded: torch.Tensor, policy: LabelPolicy, consensus: np.ndarray | None,
                      precision: float, prune_rounds: int) -> LabelRoundReport:
    """Fold one round's per-epoch confidences of the labels and of their decoys [E, N] and the
    exclusions [N] into the ledger.

    A policy without a ledger passes None. Otherwise the ledger records each label's round confidence
    (mean over epochs) and decides which labels are pruned (LabelLedger.update) against the null, what
    chance looks like: the histogram of the client's own decoys this round, or, for a policy that uses the
    consensus, the federation's pooled decoy histogram `consensus` once one has arrived.
    """
    round_confidence = torch.nanmean(confidence, dim=0).numpy()
    round_decoy = torch.nanmean(decoy_confidence, dim=0).numpy()
    pruned_before = ledger.pruned.copy() if ledger is not None else np.zeros(len(round_confidence), bool)
    statistics = {NULL: confidence_histogram(round_decoy[~pruned_before])}
    reinstated = 0
    if ledger is not None:
        null = consensus if policy.uses_consensus and consensus is not None else statistics[NULL]
        reinstated = ledger.update(round_confidence, null, precision, prune_rounds)
    pruned = ledger.pruned.copy() if ledger is not None else pruned_before
    counts = {"excluded": int(excluded.sum()), "pruned": int(pruned.sum()), "reinstated": reinstated}
    return LabelRoundReport(statistics, counts, pruned)


def noise_overlap(noisy: torch.Tensor, excluded: torch.Tensor | None = None,
                  pruned: np.ndarray | None = None) -> dict[str, int]:
    """A client's label diagnostics (label-diagnostics on): its injected-noise count, and how many
    of its excluded / pruned labels ([N] bool each, None before labels are scored) are noisy."""
    noisy = noisy.numpy()
    overlap = {"noisy": int(noisy.sum())}
    if excluded is not None:
        overlap["excluded-noisy"] = int((excluded.numpy() & noisy).sum())
    if pruned is not None:
        overlap["pruned-noisy"] = int((pruned & noisy).sum())
    return overlap


def group_label_metrics(groups: dict[str, tuple[int, ...]], client_metrics: dict[int, dict[str, float]],
                        client_diagnostics: dict[int, dict[str, int]] | None = None) -> dict[str, float]:
    """Label columns of a metrics row: per group, the summed excluded / pruned
    counts of its replying clients; with client_diagnostics (noise_overlap by partition id,
    label-diagnostics on) also the precision, recall and F1 of their pruned sets against the
    injected noise. Keys like 'pruned[severe]'."""
    row = {}
    for name, clients in groups.items():
        metrics = [client_metrics[c] for c in clients if c in client_metrics]
        total = {key: int(sum(m.get(f"label-{key}", 0) for m in metrics)) for key in LABEL_COUNTS}
        row.update({f"{key}[{name}]": value for key, value in total.items()})
        if client_diagnostics is not None:
            overlap = [client_diagnostics.get(c, {}) for c in clients if c in client_metrics]
            noisy = {key: int(sum(d.get(key, 0) for d in overlap)) for key in ("pruned-noisy", "noisy")}
            scores = detection_scores(total["pruned"], noisy["pruned-noisy"], noisy["noisy"])
            row.update({f"{key}[{name}]": value for key, value in scores.items()})
    return row
