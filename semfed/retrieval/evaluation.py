"""Retrieval evaluation of the adapter on a held-out split (Flickr30K protocol)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from semfed.config import SemfedConfig
from semfed.config_values import ClientProfile, is_image_encoder
from semfed.data.dataset import CAPTIONS_PER_IMAGE
from semfed.data.features import split_features
from semfed.retrieval.adapter.model import GraphAdapter
from semfed.retrieval.metrics import RECALL_NAMES, retrieval_recalls, users_mean
from semfed.retrieval.participants import client_test_images, dataset_and_skb

Receiver = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def embed(model: GraphAdapter, feats: torch.Tensor, mask: torch.Tensor, encoder: str, device: str,
          batch_size: int = 500, receive: Receiver | None = None) -> torch.Tensor:
    """Pooled unit embeddings [N, d] of N samples' frozen features [N, L, D] (mask [N, L]).

    receive: None keeps the model's pooled embedding; else (tokens [b, L, d], mask [b, L]) -> [b, d]
    pools the tokens another way, e.g. after a channel (semfed.retrieval.token_channel.token_receiver).
    """
    model.eval()
    out = []
    for i in range(0, len(feats), batch_size):
        chunk_mask = mask[i:i + batch_size].to(device)
        tokens, pooled = model(feats[i:i + batch_size].to(device), chunk_mask, encoder)
        out.append((pooled if receive is None else receive(tokens, chunk_mask)).cpu())
    return torch.cat(out)


def encoder_embeddings(model: GraphAdapter, cfg: SemfedConfig, encoders: tuple[str, ...], split: str = "test",
                       receivers: dict[str, Receiver] | None = None) -> dict[str, torch.Tensor]:
    """Each encoder's split embedded once: images [N, d] or captions [5N, d] (flat_captions order); an
    encoder named in `receivers` is embedded with that receiver (see embed), e.g. its tokens over a channel."""
    scenes, _ = dataset_and_skb(cfg)
    out = {}
    for encoder in encoders:
        features = split_features(cfg, scenes, encoder, split)
        out[encoder] = embed(model, features["feats"], features["mask"], encoder, cfg.torch_device,
                             receive=(receivers or {}).get(encoder))
    return out


def pair_recalls(embeddings: dict[str, torch.Tensor], images: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """Recalls for every (image encoder, text encoder) pair among the embedded encoders, keyed 'image+text':
    over all the split's images, or over `images` (indices) and their captions only."""
    rows = cols = slice(None)
    if images is not None:
        rows = torch.tensor(images, dtype=torch.long)  # a copy: the indices may be a read-only cached array
        cols = (rows[:, None] * CAPTIONS_PER_IMAGE + torch.arange(CAPTIONS_PER_IMAGE)).flatten()
    image_encoders = [e for e in embeddings if is_image_encoder(e)]
    texts = [e for e in embeddings if not is_image_encoder(e)]
    return {f"{i}+{t}": retrieval_recalls(embeddings[i][rows] @ embeddings[t][cols].T) for i in image_encoders for t in texts}


def evaluate_federation(model: GraphAdapter, cfg: SemfedConfig, encoders: tuple[str, ...],
                        split: str = "test", receivers: dict[str, Receiver] | None = None
                        ) -> dict[str, dict[str, float]]:
    """Recalls for every (image encoder, text encoder) pair among `encoders` on the whole split."""
    return pair_recalls(encoder_embeddings(model, cfg, encoders, split, receivers))


def user_rsum(embeddings: dict[str, torch.Tensor], cfg: SemfedConfig, partition_id: int) -> float:
    """A user's RSUM on its own test images (semfed.retrieval.participants.client_test_images), mean over the encoder
    pairs it uses (client_encoders); NaN for a user whose share of the test split is empty."""
    images = client_test_images(cfg)[partition_id]
    if not len(images):
        return float("nan")
    own = client_encoders(cfg.client_profiles[partition_id], tuple(embeddings))
    return mean_recalls(pair_recalls({e: embeddings[e] for e in own}, images))["rsum"]


def mean_recalls(per_pair: dict[str, dict[str, float]]) -> dict[str, float]:
    """Average of each recall (and RSUM) over encoder pairs."""
    keys = next(iter(per_pair.values())).keys()
    return {k: sum(r[k] for r in per_pair.values()) / len(per_pair) for k in keys}


def client_encoders(profile: ClientProfile, encoders: tuple[str, ...]) -> tuple[str, ...]:
    """The encoders of the pairs a client uses: its own, plus every encoder of the modality it lacks."""
    if len(profile.encoders) == 2:
        return profile.encoders
    lacking = [e for e in encoders if is_image_encoder(e) != is_image_encoder(profile.encoders[0])]
    return tuple(sorted((*profile.encoders, *lacking)))


def evaluate_clients(models: dict[int, torch.nn.Module], cfg: SemfedConfig,
                     encoders: tuple[str, ...]) -> tuple[dict[str, dict[str, float]], dict[int, float]]:
    """Each client's own model (local-only training) on the pairs it uses. Returns recalls per pair on the
    whole split, averaged over the clients using it, and each client's RSUM on its own test images."""
    per_client, rsums = {}, {}
    for c, model in models.items():
        embeddings = encoder_embeddings(model, cfg, client_encoders(cfg.client_profiles[c], encoders))
        per_client[c], rsums[c] = pair_recalls(embeddings), user_rsum(embeddings, cfg, c)
    pairs = sorted({pair for results in per_client.values() for pair in results})
    per_pair = {pair: mean_recalls({c: r[pair] for c, r in per_client.items() if pair in r}) for pair in pairs}
    return per_pair, rsums


def evaluate_shared_model(model: GraphAdapter, cfg: SemfedConfig, encoders: tuple[str, ...]
                          ) -> tuple[dict[str, dict[str, float]], dict[int, float]]:
    """One model every client uses (federated or centralised): recalls per pair on the whole split, and
    each client's RSUM on its own test images."""
    embeddings = encoder_embeddings(model, cfg, encoders)
    return pair_recalls(embeddings), {c: user_rsum(embeddings, cfg, c) for c in range(len(cfg.client_profiles))}


def recall_columns(per_pair: dict[str, dict[str, float]], client_rsum: dict[int, float],
                   cfg: SemfedConfig) -> dict[str, float]:
    """A metrics row's evaluation columns: RSUM and its recalls (mean over encoder pairs, whole split), RSUM
    per pair, each user's RSUM on its own test images (user_rsum[k]), the worst user's and their spread (the
    population standard deviation; fairness, seed 000 VI-B), and with label noise or handling on,
    group_rsum[g]: the mean of a label group's users' RSUMs (users without test images left out)."""
    recalls = mean_recalls(per_pair)
    scored = [v for v in client_rsum.values() if math.isfinite(v)]
    row = {"rsum": recalls["rsum"], **{k: recalls[k] for k in RECALL_NAMES},
           **{f"rsum[{pair}]": r["rsum"] for pair, r in per_pair.items()},
           **{f"user_rsum[{c}]": client_rsum[c] for c in sorted(client_rsum)},
           "user_rsum_worst": min(scored, default=float("nan")),
           "user_rsum_spread": float(np.std(scored)) if scored else float("nan")}
    if cfg.label_noise or cfg.label_policy.scores:
        row.update({f"group_rsum[{name}]": users_mean(client_rsum, clients)
                    for name, clients in cfg.label_groups().items()})
    return row


def user_groups(cfg: SemfedConfig) -> dict[int, str]:
    """Partition id -> the group its users.png line is coloured by: its label-noise group (or 'clean')
    when the run injects noise, else its encoders."""
    if not cfg.noise_groups:
        return {pid: profile.group for pid, profile in enumerate(cfg.client_profiles)}
    groups = cfg.label_groups()
    return {pid: next(name for name, clients in groups.items() if pid in clients)
            for pid in range(len(cfg.client_profiles))}
