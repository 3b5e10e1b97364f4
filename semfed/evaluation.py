"""Retrieval evaluation of the adapter on a held-out split (Flickr30K protocol)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from semfed.adapter.model import GraphAdapter
from semfed.config import SemfedConfig
from semfed.config_values import IMAGE_ENCODERS, ClientProfile
from semfed.data.features import split_features
from semfed.metrics import RECALL_NAMES, retrieval_recalls
from semfed.participants import dataset_and_skb


Receiver = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def embed(model: GraphAdapter, feats: torch.Tensor, mask: torch.Tensor, encoder: str, device: str,
          batch_size: int = 500, receive: Receiver | None = None) -> torch.Tensor:
    """Pooled unit embeddings [N, d] of N samples' frozen features [N, L, D] (mask [N, L]).

    receive: None keeps the model's pooled embedding; else (tokens [b, L, d], mask [b, L]) -> [b, d]
    pools the tokens another way, e.g. after a channel (semfed.token_channel.token_receiver).
    """
    model.eval()
    out = []
    for i in range(0, len(feats), batch_size):
        chunk_mask = mask[i:i + batch_size].to(device)
        tokens, pooled = model(feats[i:i + batch_size].to(device), chunk_mask, encoder)
        out.append((pooled if receive is None else receive(tokens, chunk_mask)).cpu())
    return torch.cat(out)


def evaluate_federation(model: GraphAdapter, cfg: SemfedConfig, encoders: tuple[str, ...],
                        split: str = "test", receivers: dict[str, Receiver] | None = None
                        ) -> dict[str, dict[str, float]]:
    """Recalls for every (image encoder, text encoder) pair among `encoders`, keyed 'image+text'.

    Each encoder's split (images [N, R, D] or captions [5N, T, D]) is embedded once; an encoder
    named in `receivers` is embedded with that receiver (see embed), e.g. its tokens over a channel.
    """
    scenes, _ = dataset_and_skb(cfg)
    embeddings = {}
    for encoder in encoders:
        features = split_features(cfg, scenes, encoder, split)
        embeddings[encoder] = embed(model, features["feats"], features["mask"], encoder, cfg.torch_device,
                                    receive=(receivers or {}).get(encoder))
    images = [e for e in encoders if e in IMAGE_ENCODERS]
    texts = [e for e in encoders if e not in IMAGE_ENCODERS]
    return {f"{i}+{t}": retrieval_recalls(embeddings[i] @ embeddings[t].T) for i in images for t in texts}


def mean_recalls(per_pair: dict[str, dict[str, float]]) -> dict[str, float]:
    """Average of each recall (and RSUM) over encoder pairs."""
    keys = next(iter(per_pair.values())).keys()
    return {k: sum(r[k] for r in per_pair.values()) / len(per_pair) for k in keys}


def group_rsum(per_pair: dict[str, dict[str, float]], group_encoders: tuple[str, ...]) -> float:
    """RSUM of a client group: mean over the encoder pairs that use all of the group's encoders."""
    pairs = [r["rsum"] for name, r in per_pair.items() if set(group_encoders) <= set(name.split("+"))]
    return sum(pairs) / len(pairs)


def client_rsums(per_pair: dict[str, dict[str, float]], profiles: tuple) -> dict[int, float]:
    """RSUM of each client (by partition id) under one shared model: its group RSUM."""
    return {c: group_rsum(per_pair, p.encoders) for c, p in enumerate(profiles)}


def client_encoders(profile: ClientProfile, encoders: tuple[str, ...]) -> tuple[str, ...]:
    """The encoders of the pairs a client uses: its own, plus every encoder of the modality it lacks."""
    if len(profile.encoders) == 2:
        return profile.encoders
    lacking = [e for e in encoders if (e in IMAGE_ENCODERS) != (profile.encoders[0] in IMAGE_ENCODERS)]
    return tuple(sorted((*profile.encoders, *lacking)))


def evaluate_clients(models: dict[int, torch.nn.Module], cfg: SemfedConfig,
                     encoders: tuple[str, ...]) -> tuple[dict[str, dict[str, float]], dict[int, float]]:
    """Each client's own model (local-only training) on the pairs it uses. Returns recalls per pair,
    averaged over the clients using it, and each client's RSUM."""
    per_client = {c: evaluate_federation(model, cfg, client_encoders(cfg.client_profiles[c], encoders))
                  for c, model in models.items()}
    pairs = sorted({pair for results in per_client.values() for pair in results})
    per_pair = {pair: mean_recalls({c: r[pair] for c, r in per_client.items() if pair in r}) for pair in pairs}
    return per_pair, {c: mean_recalls(r)["rsum"] for c, r in per_client.items()}


def recall_columns(per_pair: dict[str, dict[str, float]], client_rsum: dict[int, float],
                   cfg: SemfedConfig) -> dict[str, float]:
    """A metrics row's evaluation columns: RSUM and its recalls (mean over encoder pairs), RSUM per
    pair, and with label noise or handling on, group_rsum[g] (mean over a label group's clients)."""
    recalls = mean_recalls(per_pair)
    row = {"rsum": recalls["rsum"], **{k: recalls[k] for k in RECALL_NAMES},
           **{f"rsum[{pair}]": r["rsum"] for pair, r in per_pair.items()}}
    if cfg.label_noise or cfg.label_policy.scores:
        row.update({f"group_rsum[{name}]": sum(client_rsum[c] for c in clients) / len(clients)
                    for name, clients in cfg.label_groups().items()})
    return row
