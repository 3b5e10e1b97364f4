import torch
import torch.nn.functional as F

from semfed.retrieval.adapter.model import GraphAdapter, stem_id


def make_adapter(**kw):
    torch.manual_seed(0)
    concepts = F.normalize(torch.randn(7, 16), dim=-1)
    return GraphAdapter({"frcnn-r50": 12, "minilm": 10}, concepts, width=32, layers=kw.get("layers", 1),
                        intra_k=2, sigma=0.5, skb_k=3, attention_scale=1.5)


def test_shapes_unit_norms_and_padding():
    model = make_adapter(layers=2)
    feats, mask = torch.randn(4, 5, 12), torch.ones(4, 5, dtype=torch.bool)
    mask[1, 3:] = False
    tokens, pooled = model(feats, mask, "frcnn-r50")
    assert tokens.shape == (4, 5, 16) and pooled.shape == (4, 16)
    torch.testing.assert_close(tokens[mask].norm(dim=-1), torch.ones(int(mask.sum())))
    assert tokens[~mask].abs().max() == 0
    torch.testing.assert_close(pooled.norm(dim=-1), torch.ones(4))
    # what sits in padded slots does not matter
    changed = feats.clone()
    changed[1, 3:] = 100.0
    torch.testing.assert_close(model(changed, mask, "frcnn-r50")[1], pooled)


def test_gradients_reach_only_the_stem_in_use_and_shared_layers():
    model = make_adapter()
    _, pooled = model(torch.randn(3, 4, 10), torch.ones(3, 4, dtype=torch.bool), "minilm")
    pooled.sum().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert grads["stems.frcnn_r50.0.weight"] is None
    assert grads["stems.minilm.0.weight"].abs().sum() > 0
    assert grads["layers.0.concept_query.weight"].abs().sum() > 0  # the learned concept mapping is trained
    assert grads["layers.0.attention.query.weight"].abs().sum() > 0


def test_state_dict_holds_stems_and_shared_layers_but_not_the_skb():
    keys = set(make_adapter().state_dict())
    assert any(k.startswith("stems.frcnn_r50.") for k in keys) and any(k.startswith("stems.minilm.") for k in keys)
    assert "concepts" not in keys
    assert stem_id("hf@/models/bert-base") == stem_id("hf@/models/bert-base").replace("-", "_")
