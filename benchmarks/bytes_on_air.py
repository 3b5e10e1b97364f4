"""Bytes on the air per client per round: the adapter update each client profile of the default config
sends, against sending the frozen encoders it sits on if they were fine-tuned instead (their parameter
bytes: torchvision's Faster R-CNNs as built here, the packaged MiniLM). float32 throughout.

    .venv/bin/python -m benchmarks.bytes_on_air
"""

from __future__ import annotations

import torch
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn, fasterrcnn_resnet50_fpn
from transformers import AutoModel

from semfed.config import load_config
from semfed.data.scene_vocabulary import SCENE_CONCEPTS
from semfed.encoders.regions import GEOMETRY_DIM
from semfed.encoders.tokens import resolve_model_dir
from semfed.retrieval.adapter.model import GraphAdapter

REGION_DIM = 1024 + GEOMETRY_DIM  # box-head output + box geometry (semfed.encoders.regions)
TOKEN_DIM = 384  # MiniLM's hidden width
ENCODER_DIMS = {"frcnn-r50": REGION_DIM, "frcnn-mnv3": REGION_DIM, "minilm": TOKEN_DIM}


def parameter_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def encoder_bytes() -> dict[str, int]:
    """Parameter bytes of each frozen encoder, as the runs build them."""
    return {"frcnn-r50": parameter_bytes(fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)),
            "frcnn-mnv3": parameter_bytes(fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None)),
            "minilm": parameter_bytes(AutoModel.from_pretrained(resolve_model_dir("minilm")))}


def update_bytes(encoders: tuple[str, ...]) -> int:
    """Bytes of the adapter arrays a client holding `encoders` sends back each round (its state dict)."""
    cfg = load_config()
    model = GraphAdapter({e: ENCODER_DIMS[e] for e in encoders}, torch.zeros(len(SCENE_CONCEPTS), TOKEN_DIM),
                         cfg.adapter_width, cfg.gnn_layers, cfg.intra_top_k, cfg.kernel_sigma, cfg.skb_top_k,
                         cfg.attention_scale)
    return sum(v.numel() * v.element_size() for v in model.state_dict().values())


def main() -> None:
    frozen = encoder_bytes()
    print("| client profile | adapter update per round | fine-tuning its frozen encoders | ratio |")
    print("|---|---|---|---|")
    for profile in sorted({p.encoders for p in load_config().client_profiles}):
        update, encoders = update_bytes(profile), sum(frozen[e] for e in profile)
        print(f"| {'+'.join(profile)} | {update / 1e6:.2f} MB | {encoders / 1e6:.1f} MB | {encoders / update:.0f}x |")


if __name__ == "__main__":
    main()
