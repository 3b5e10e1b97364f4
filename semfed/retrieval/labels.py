"""Error-aware labelling (seed 000, V-C): confidence, the label ledger, consensus statistics.

A *label* in semfed is an image's annotation: its five captions (the positives of the
triplet loss) and the SKB concepts they name (the targets of the alignment loss). With the
encoders frozen there is no ground truth for the aligned tokens, so the adapter's own
SKB-aligned output of the annotation is the *provisional label*: the embedding of the
caption for a client holding both modalities, the unit mean of the named concepts'
SKB embeddings for a single-modality client. A label is trusted as far as the sample's
embedding picks it out of a mini-batch of labels (`rank_confidence`).
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


@dataclass
class NoiseMixture:
    """Confidence histograms of C clients as two-component Gaussian mixtures whose low
    (noise) component is shared: a label that does not describe its sample ranks at chance
    whatever the encoder, while how confidently clean labels rank depends on each client's
    encoders and data. noise_mean, noise_std: shared; noise_weight, clean_mean,
    clean_std, total: [C] per client."""

    noise_mean: float
    noise_std: float
    noise_weight: np.ndarray
    clean_mean: np.ndarray
    clean_std: np.ndarray
    total: np.ndarray

    def cut(self, row: int, fallback: float) -> float:
        """Confidence below which client `row`'s label is more likely noise than clean: where
        the weighted densities cross between the two means. `fallback` when the client's
        histogram shows no noise mode (fewer than 10 labels, noise weight under 1%, or
        means less than 0.1 apart)."""
        weight, mean, std = self.noise_weight[row], self.clean_mean[row], self.clean_std[row]
        if self.total[row] < 10 or weight < 0.01 or mean - self.noise_mean < 0.1:
            return fallback
        grid = np.linspace(self.noise_mean, mean, 1001)
        noise = np.log(weight) - np.log(self.noise_std) - 0.5 * ((grid - self.noise_mean) / self.noise_std) ** 2
        clean = np.log1p(-weight) - np.log(std) - 0.5 * ((grid - mean) / std) ** 2
        return float(grid[np.argmax(clean >= noise)])


def fit_noise_mixture(histograms: np.ndarray, noise: tuple[float, float] | None = None,
                      iterations: int = 200) -> NoiseMixture:
    """EM fit of histograms [C, HISTOGRAM_BINS] (bin centres weighted by counts).

    The noise component starts at chance (mean 0.5, std 0.15) and is fitted on all rows
    together, or held at `noise` = (mean, std) when given (a client applying the
    federation's consensus). Each row's clean component starts at its 90% quantile bin.
    """
    counts = np.atleast_2d(np.asarray(histograms, dtype=np.float64))
    bins = counts.shape[1]
    centres = (np.arange(bins) + 0.5) / bins
    total = counts.sum(1)
    cdf = np.cumsum(counts, 1) / total.clip(1e-12)[:, None]
    clean_mean = centres[np.minimum((cdf < 0.9).sum(1), bins - 1)]
    clean_std = np.full(len(counts), 0.1)
    noise_mean, noise_std = noise if noise is not None else (0.5, 0.15)
    weight = np.full(len(counts), 0.5)
    min_std = 0.5 / bins

    def gaussian(mean, std):
        return np.exp(-0.5 * ((centres - mean) / std) ** 2) / std

    for _ in range(iterations):
        low = weight[:, None] * gaussian(noise_mean, noise_std)[None, :]  # [C, bins]
        high = (1 - weight)[:, None] * gaussian(clean_mean[:, None], clean_std[:, None])
        resp = low / (low + high).clip(1e-300)
        low_mass, high_mass = (resp * counts).sum(1), ((1 - resp) * counts).sum(1)
        weight = low_mass / total.clip(1e-12)
        clean_mean = ((1 - resp) * counts * centres).sum(1) / high_mass.clip(1e-12)
        clean_std = np.sqrt(((1 - resp) * counts * (centres - clean_mean[:, None]) ** 2).sum(1)
                            / high_mass.clip(1e-12)).clip(min_std)
        if noise is None and low_mass.sum() > 0:
            noise_mean = float((resp * counts * centres).sum() / low_mass.sum())
            noise_std = float(np.sqrt((resp * counts * (centres - noise_mean) ** 2).sum() / low_mass.sum()).clip(min_std))
    return NoiseMixture(noise_mean, noise_std, weight, clean_mean, clean_std, total)


@dataclass
class LabelLedger:
    """A client's record of its labels across rounds. N = shard size.

    history: [R, N] confidence of each label in each round so far (mean over the round's epochs);
    tracked: [N] bool, low-confidence labels being watched; streak: [N] consecutive rounds a
    tracked label was inconsistent with the consensus; pruned: [N] bool, dropped for good.
    """

    history: np.ndarray
    tracked: np.ndarray
    streak: np.ndarray
    pruned: np.ndarray

    @classmethod
    def empty(cls, n: int) -> "LabelLedger":
        return cls(np.zeros((0, n), np.float32), np.zeros(n, bool), np.zeros(n, np.int64), np.zeros(n, bool))

    def update(self, confidence: np.ndarray, excluded: np.ndarray, inconsistent: np.ndarray,
               prune_rounds: int) -> None:
        """Record one round. confidence [N]; excluded [N] bool (left out of at least one epoch);
        inconsistent [N] bool (round confidence under the consensus threshold).

        A label enters the ledger when excluded and leaves it once it is neither excluded nor
        inconsistent; a tracked label inconsistent for `prune_rounds` rounds in a row is pruned.
        """
        self.history = np.concatenate([self.history, confidence[None].astype(np.float32)])
        self.tracked = (self.tracked | excluded) & (excluded | inconsistent) & ~self.pruned
        self.streak = np.where(self.tracked & inconsistent, self.streak + 1, 0)
        newly_pruned = self.streak >= prune_rounds
        self.pruned = self.pruned | newly_pruned
        self.tracked &= ~newly_pruned
        self.streak[newly_pruned] = 0

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"history": self.history, "tracked": self.tracked, "streak": self.streak, "pruned": self.pruned}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "LabelLedger":
        return cls(arrays["history"], arrays["tracked"].astype(bool), arrays["streak"], arrays["pruned"].astype(bool))


def detection_scores(flagged: int, flagged_noisy: int, noisy: int) -> dict[str, float]:
    """Precision, recall and F1 of a flagged set against the injected noise (NaN where undefined)."""
    precision = flagged_noisy / flagged if flagged else float("nan")
    recall = flagged_noisy / noisy if noisy else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1}


@dataclass
class LabelRoundReport:
    """A client's label outcome for one round.

    statistics: what the client sends for the federation's consensus (only the
    confidence histogram of its unpruned labels, [HISTOGRAM_BINS]; no samples, captions,
    features or indices). counts: what the scheme itself knows (labels excluded this round,
    tracked, pruned), for the metrics table. pruned: [N] bool, the client's pruned labels
    (stays on the client; noise_overlap compares it with the injected noise).
    """

    statistics: dict[str, np.ndarray]
    counts: dict[str, int]
    pruned: np.ndarray


def close_label_round(ledger: LabelLedger | None, confidence: torch.Tensor, excluded: torch.Tensor,
                      policy: LabelPolicy, consensus: tuple[float, float] | None, fallback: float,
                      prune_rounds: int) -> LabelRoundReport:
    """Fold one round's per-epoch confidences [E, N] and exclusions [N] into the ledger.

    A policy without a ledger passes None. Otherwise a label is inconsistent when its round
    confidence (mean over epochs) is under the client's cut (NoiseMixture.cut) of a mixture
    fitted to its own histogram: with the noise component fitted on its own labels alone, or,
    for a policy that uses the consensus, held at the federation's `consensus` (noise mean,
    std) once one has arrived.
    """
    round_confidence = torch.nanmean(confidence, dim=0).numpy()
    pruned_before = ledger.pruned.copy() if ledger is not None else np.zeros(len(round_confidence), bool)
    statistics = {"confidence-histogram": confidence_histogram(round_confidence[~pruned_before])}
    if ledger is not None:
        noise = consensus if policy.uses_consensus else None
        cut = fit_noise_mixture(statistics["confidence-histogram"][None], noise).cut(0, fallback)
        ledger.update(round_confidence, excluded.numpy(), round_confidence < cut, prune_rounds)
    pruned = ledger.pruned.copy() if ledger is not None else pruned_before
    tracked = ledger.tracked if ledger is not None else np.zeros_like(pruned)
    counts = {"excluded": int(excluded.sum()), "tracked": int(tracked.sum()), "pruned": int(pruned.sum())}
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
    """Label columns of a metrics row: per group, the summed excluded / tracked / pruned
    counts of its replying clients; with client_diagnostics (noise_overlap by partition id,
    label-diagnostics on) also the precision, recall and F1 of their pruned sets against the
    injected noise. Keys like 'pruned[severe]'."""
    row = {}
    for name, clients in groups.items():
        metrics = [client_metrics[c] for c in clients if c in client_metrics]
        total = {key: int(sum(m.get(f"label-{key}", 0) for m in metrics)) for key in ("excluded", "tracked", "pruned")}
        row.update({f"{key}[{name}]": value for key, value in total.items()})
        if client_diagnostics is not None:
            overlap = [client_diagnostics.get(c, {}) for c in clients if c in client_metrics]
            noisy = {key: int(sum(d.get(key, 0) for d in overlap)) for key in ("pruned-noisy", "noisy")}
            scores = detection_scores(total["pruned"], noisy["pruned-noisy"], noisy["noisy"])
            row.update({f"{key}[{name}]": value for key, value in scores.items()})
    return row
