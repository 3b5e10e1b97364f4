"""Frozen BERT-family text encoder: captions -> word-piece token features and sentence embeddings.

Models are only ever loaded from local directories (no network access).
"""

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from torch import Tensor  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

from semfed.config_values import ENCODERS, HF_PREFIX, TEXT, encoder_names  # noqa: E402
from semfed.tasks import load  # noqa: E402


def resolve_model_dir(name: str) -> Path:
    """Map a text-encoder name (one of ENCODERS with a model to load, or "hf@/absolute/dir") to its local
    model directory."""
    entry = ENCODERS.get(name)
    if entry and entry.modality == TEXT and entry.load:
        return Path(load(entry.load)())
    if name.startswith(HF_PREFIX):
        path = Path(name[len(HF_PREFIX):])
        if not path.is_absolute():
            raise ValueError(f"text encoder directory must be an absolute path: {path}")
        if not path.is_dir():
            raise FileNotFoundError(f"text encoder directory not found: {path}")
        return path
    raise ValueError(f"unknown text encoder {name!r}; allowed: "
                     f"{encoder_names(lambda e: e.modality == TEXT and bool(e.load))} or 'hf@/absolute/dir'")


class TokenEncoder:
    """Frozen local transformer encoder; `out_dim` is its hidden size."""

    def __init__(self, name: str, max_tokens: int, device="cpu"):
        self.name, self.max_tokens = name, max_tokens
        self.device = torch.device(device)
        model_dir = resolve_model_dir(name)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModel.from_pretrained(model_dir, local_files_only=True)
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.out_dim = model.config.hidden_size
        self.max_length = min(self.tokenizer.model_max_length, model.config.max_position_embeddings)
        st_config = model_dir / "sentence_bert_config.json"
        if st_config.is_file():  # sentence-transformers models embed at most max_seq_length tokens
            self.max_length = min(self.max_length, json.loads(st_config.read_text())["max_seq_length"])

    def _forward(self, texts: list[str], max_length: int) -> tuple[Tensor, dict]:
        """Run the model; returns (last hidden states float32 [B,L,out_dim], tokenizer batch)."""
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_length,
            return_tensors="pt", return_special_tokens_mask=True,
        ).to(self.device)
        inputs = {k: v for k, v in batch.items() if k != "special_tokens_mask"}
        return self.model(**inputs).last_hidden_state.float(), batch

    @torch.no_grad()
    def encode(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """Word-piece token features: (feats float32 [B,T,out_dim], mask bool [B,T]), T = max_tokens.

        Special tokens ([CLS], [SEP]) and padding are dropped; texts longer than T word
        pieces are truncated; padding rows are zero with mask False.
        """
        n_special = self.tokenizer.num_special_tokens_to_add(pair=False)
        hidden, batch = self._forward(texts, min(self.max_tokens + n_special, self.max_length))
        real = batch["attention_mask"].bool() & ~batch["special_tokens_mask"].bool()
        slot = real.cumsum(dim=1) - 1  # output position of each real token (< max_tokens by truncation)
        rows = real.nonzero(as_tuple=True)[0]
        feats = hidden.new_zeros(len(texts), self.max_tokens, self.out_dim)
        mask = torch.zeros(len(texts), self.max_tokens, dtype=torch.bool, device=self.device)
        feats[rows, slot[real]] = hidden[real]
        mask[rows, slot[real]] = True
        return feats, mask

    @torch.no_grad()
    def sentence_embedding(self, texts: list[str]) -> Tensor:
        """Sentence embeddings float32 [B,out_dim]: attention-masked mean of the last hidden
        states (special tokens included, as sentence-transformers does), L2-normalised."""
        hidden, batch = self._forward(texts, self.max_length)
        weights = batch["attention_mask"].unsqueeze(-1).float()
        mean = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1e-9)
        return torch.nn.functional.normalize(mean, dim=-1)
