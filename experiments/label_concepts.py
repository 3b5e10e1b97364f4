"""Could label statistics per SKB concept tell noisy labels from hard clean ones? Offline, on finished
noisy runs' label ledgers (issue: a consensus that uses the users' diversity).

    .venv/bin/python -m experiments.label_concepts work/runs/<run-name> [work/runs/<run-name> ...]

For every client and round, each label's confidence (the ledger's history) is compared with three scores a
per-concept consensus could give it; a client would send, per concept, the count and summed confidence of
its labels naming the concept (no samples), and the server would pool them over the other clients:
- `own`: the label's confidence (what the ledger uses today);
- `own - elsewhere`: the confidence less the other clients' mean confidence on the label's concepts (a
  concept that is hard for everyone no longer makes its labels look noisy);
- `elsewhere - local`: the other clients' mean on the label's concepts less this client's own (flags a
  label whose concepts are aligned confidently elsewhere but not here).
It prints, per run, the area under the ROC curve of each score for finding the injected noise (1 is
perfect, 0.5 chance), averaged over the rounds, and of a logistic regression on all three, fitted on the
other clients' labels (leave one client out), so that a gain cannot come from fitting the client itself.
Beside them, the headroom of any consensus that only sets each client's cut: the F1 of pruning the labels
whose mean confidence over the run is under a cut chosen knowing the noise, one cut per client (`F1, best
cut per client`), against the pruning the run itself did (`F1 of the run`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from semfed.config import SemfedConfig, default_run_config
from semfed.retrieval.labels import detection_scores
from semfed.retrieval.ledger_files import ledger_folder, ledger_rounds
from semfed.retrieval.participants import dataset_and_skb
from semfed.retrieval.shards import client_indices

SCORES = ("own", "own - elsewhere", "elsewhere - local")


def label_concepts(cfg: SemfedConfig, run: Path) -> list[np.ndarray]:
    """Per client, the multi-hot SKB concepts [N, K] its labels name (the annotation each row carries),
    and the injected noise [N] bool, from the run's label_noise.csv."""
    scenes, skb = dataset_and_skb(cfg)
    noise = pd.read_csv(run / "label_noise.csv")
    captions = scenes.splits["train"].captions
    out = []
    for pid, indices in enumerate(client_indices(cfg, scenes)):
        annotations = np.asarray(indices).copy()
        rows = noise[noise["partition-id"] == pid]
        annotations[rows["row"].to_numpy()] = rows["annotation_of"].to_numpy()
        concepts = np.stack([skb.labels(captions[i]).amax(dim=0).numpy() > 0 for i in annotations.tolist()])
        out.append((concepts, annotations != np.asarray(indices)))
    return out


def concept_scores(confidence: list[np.ndarray], concepts: list[np.ndarray]) -> list[np.ndarray]:
    """Per client, its labels' scores [N, len(SCORES)] from one round's confidences [N] of every client."""
    sums = np.stack([c.astype(float).T @ conf for conf, c in zip(confidence, concepts)])  # [clients, K]
    counts = np.stack([c.sum(0) for c in concepts]).astype(float)
    out = []
    for p, (conf, c) in enumerate(zip(confidence, concepts)):
        elsewhere = (sums.sum(0) - sums[p]) / np.clip(counts.sum(0) - counts[p], 1, None)  # [K]
        local = sums[p] / np.clip(counts[p], 1, None)
        named = np.clip(c.sum(1), 1, None)
        elsewhere_mean, local_mean = (c @ elsewhere) / named, (c @ local) / named
        out.append(np.stack([conf, conf - elsewhere_mean, elsewhere_mean - local_mean], axis=1))
    return out


def round_aucs(features: list[np.ndarray], noisy: list[np.ndarray]) -> dict[str, float]:
    """AUC of each score (low own confidence = noisy) and of the leave-one-client-out logistic regression."""
    x, y = np.concatenate(features), np.concatenate(noisy)
    signs = np.array([-1.0, -1.0, 1.0])  # the direction in which each score points to noise
    aucs = {name: roc_auc_score(y, signs[j] * x[:, j]) for j, name in enumerate(SCORES)}
    held_out = []
    for p in range(len(features)):
        rest = [q for q in range(len(features)) if q != p]
        model = LogisticRegression().fit(np.concatenate([features[q] for q in rest]),
                                         np.concatenate([noisy[q] for q in rest]))
        held_out.append(model.decision_function(features[p]))
    aucs["all three, leave one client out"] = roc_auc_score(y, np.concatenate(held_out))
    return aucs


def pooled_f1(flagged: list[np.ndarray], noisy: list[np.ndarray]) -> float:
    """F1 of the clients' flagged sets [N] bool against their noise [N] bool, counts summed over clients
    (labels.detection_scores; 0 where it is undefined)."""
    hits = sum(int((f & n).sum()) for f, n in zip(flagged, noisy))
    f1 = detection_scores(sum(int(f.sum()) for f in flagged), hits, sum(int(n.sum()) for n in noisy))["f1"]
    return 0.0 if np.isnan(f1) else f1


def best_cuts(confidence: list[np.ndarray], noisy: list[np.ndarray]) -> list[np.ndarray]:
    """Per client, the labels under the cut on `confidence` [N] that maximises its own F1 (knowing the noise)."""
    flagged = []
    for conf, n in zip(confidence, noisy):
        cuts = np.concatenate([[0.0], np.unique(conf) + 1e-9])
        flagged.append(conf < max(cuts, key=lambda t: pooled_f1([conf < t], [n])))
    return flagged


def analyse(run: Path) -> pd.Series:
    """Mean over the ledgers' rounds of round_aucs, and the F1 of the run's pruning and of the best cuts."""
    cfg = SemfedConfig.from_run_config({**default_run_config(), **json.loads((run / "config.json").read_text())})
    pairs = label_concepts(cfg, run)
    concepts, noisy = [c for c, _ in pairs], [n for _, n in pairs]
    ledgers = cfg.run_ledgers(cfg.run_name)
    histories, pruned = [], []
    for pid in range(len(pairs)):
        folder = ledger_folder(ledgers, pid)
        with np.load(folder / f"round-{ledger_rounds(folder)[-1]}.npz") as arrays:
            histories.append(arrays["history"])
            pruned.append(arrays["pruned"].astype(bool))
    rows = [round_aucs(concept_scores([h[r] for h in histories], concepts), noisy)
            for r in range(min(len(h) for h in histories))]
    f1 = {"F1 of the run": pooled_f1(pruned, noisy),
          "F1, best cut per client": pooled_f1(best_cuts([h.mean(0) for h in histories], noisy), noisy)}
    return pd.concat([pd.DataFrame(rows).mean(), pd.Series(f1)]).rename(run.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="finished noisy runs with label ledgers")
    table = pd.DataFrame([analyse(run) for run in parser.parse_args().runs])
    print(table.round(3).to_markdown())


if __name__ == "__main__":
    main()
