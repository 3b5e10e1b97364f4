"""The D-JSCC registries (channel models, decoder families, frameworks): a toy entry in each runs
through the config and a real code path, an unregistered name is refused naming the key and the
registry's names, and a registration undone by monkeypatch leaves the registry as it was.
The template for a new entry: docs/extending.md."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semfed.channels import CHANNELS
from semfed.config import ConfigError, load_config
from semfed.jscc import DECODERS, AttentionEncoder, JSCCDecoder, build_decoder
from semfed.jscc.encoder import DOWNSAMPLE, IMAGE_CHANNELS
from semfed.jscc.federation import anchor_partition, build_encoder, build_user_decoder
from semfed.jscc.forgetting import forgetting_curve
from semfed.jscc.framework_registry import FRAMEWORKS, Framework
from semfed.jscc.frameworks import decoder_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(task="jscc", jscc_encoder_width=8, jscc_crop_size=48)


def erasure(x: torch.Tensor, snr_db, generator: torch.Generator | None = None) -> torch.Tensor:
    """A toy channel that loses everything: zeros with x's shape [B, ..., 2k]."""
    return torch.zeros_like(x)


class ToyDecoder(JSCCDecoder):
    """A toy family: x4 nearest upsampling of the latent, then 1x1 convolutions to RGB (ignores the SNR)."""

    min_blocks = 1

    def __init__(self, latent_channels: int, width: int = 8, num_blocks: int = 1):
        super().__init__(latent_channels, num_blocks)
        self.head = nn.Sequential(nn.Upsample(scale_factor=DOWNSAMPLE), nn.Conv2d(latent_channels, width, 1),
                                  nn.ReLU(), nn.Conv2d(width, IMAGE_CHANNELS, 1), nn.Sigmoid())

    def decode(self, latent: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
        return self.head(latent)


#: A toy framework: iterative's strategy and properties under another name.
TOY_FRAMEWORK = Framework("strategies.jscc_iterative:IterativeFedAvg", two_stage=False, users_in_turn=True)


@pytest.mark.parametrize("key, value, names", [
    ("jscc_channel", "toy", CHANNELS),
    ("jscc_framework", "toy", FRAMEWORKS),
])
def test_an_unregistered_name_is_refused_naming_the_key_and_the_registered_names(key, value, names):
    message = f"{key.replace('_', '-')}: 'toy' is not one of {tuple(names)}"
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(**TINY, **{key: value})


def test_an_unregistered_decoder_family_is_refused_listing_the_families():
    with pytest.raises(ConfigError, match=r"jscc-decoders: bad decoder 'toy'; expected one of the families \('attention', "
                                          r"'conv', 'resnet', 'vgg', 'prompt'\)"):
        load_config(**TINY, jscc_decoders="toy;conv")


def test_a_toy_channel_runs_through_the_config_and_the_decoder_loss(monkeypatch):
    monkeypatch.setitem(CHANNELS, "toy", erasure)
    cfg = load_config(**TINY, jscc_channel="toy", jscc_decoders="conv:8:2")
    assert cfg.jscc_channel == "toy"
    encoder, decoder = build_encoder(cfg), build_user_decoder(cfg, 0)
    images = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    sent = encoder(images, 5.0)
    erased = F.mse_loss(decoder(torch.zeros_like(sent), 5.0, image_size=(48, 48)), images)
    loss = decoder_loss(encoder, decoder, images, 5.0, cfg.jscc_channel, torch.Generator().manual_seed(1))
    assert torch.equal(loss, erased)  # the decoder saw what the toy channel sent: nothing
    noisy = decoder_loss(encoder, decoder, images, 5.0, "awgn", torch.Generator().manual_seed(1))
    assert not torch.equal(noisy, erased)


def test_a_toy_decoder_family_runs_through_the_config_and_build_user_decoder(monkeypatch):
    monkeypatch.setitem(DECODERS, "toy", ToyDecoder)
    cfg = load_config(**TINY, jscc_decoders="toy;conv")
    assert [spec.family for spec in cfg.decoder_specs] == ["toy", "conv"]
    decoder = build_user_decoder(cfg, 0)
    assert isinstance(decoder, ToyDecoder)
    images = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    restored = decoder(build_encoder(cfg)(images, 5.0), 5.0, image_size=(48, 48))
    assert restored.shape == (2, 3, 48, 48) and 0 <= restored.min() and restored.max() <= 1
    with pytest.raises(ConfigError, match="jscc-decoders: a toy decoder needs >= 1 blocks, got 0"):
        load_config(**TINY, jscc_decoders="toy:8:0;conv")
    with pytest.raises(ValueError, match="num_blocks must be >= 1"):
        build_decoder("toy", latent_channels=4, num_blocks=0)


def test_the_anchor_client_is_the_first_whose_family_says_it_is_symmetric(monkeypatch):
    monkeypatch.setitem(DECODERS, "toy", ToyDecoder)
    cfg = load_config(**TINY, jscc_decoders="toy;attention")
    assert anchor_partition(cfg) == 1
    monkeypatch.setattr(ToyDecoder, "symmetric", True)
    assert anchor_partition(cfg) == 0


def test_a_toy_framework_runs_through_the_config_the_forgetting_curve_and_the_server(monkeypatch):
    monkeypatch.setitem(FRAMEWORKS, "toy", TOY_FRAMEWORK)
    cfg = load_config(**TINY, jscc_framework="toy", jscc_decoders="attention:8:2;conv:8:2")
    from server.jscc import build_strategy  # imports Flower: only this test needs it
    from strategies.jscc_iterative import IterativeFedAvg

    assert type(build_strategy(cfg, {0: 101, 1: 202})) is IterativeFedAvg
    gen = torch.Generator().manual_seed(5)
    stages = [[torch.rand(2, 3, 36, 36, generator=gen)] for _ in range(2)]
    images = torch.rand(2, 3, 36, 36, generator=gen)
    torch.manual_seed(0)
    encoder = AttentionEncoder(1 / 6, width=8, num_blocks=2)
    target, other = (build_decoder(name, latent_channels=16, width=8, num_blocks=2) for name in ("attention", "conv"))
    table = forgetting_curve(encoder, target, [("conv", other)], stages, images, eval_snrs=[4.0], seed=1,
                             frameworks=["toy", "iterative"])
    toy, iterative = (table[table["framework"] == name].drop(columns="framework").reset_index(drop=True)
                      for name in ("toy", "iterative"))
    assert toy.equals(iterative)  # the same properties train the same way
    with pytest.raises(ValueError, match="do not train in turn"):
        forgetting_curve(encoder, target, [("conv", other)], stages, images, eval_snrs=[4.0],
                         frameworks=["simultaneous"])


def test_every_registered_framework_names_a_strategy_class_the_server_loads():
    from semfed.tasks import load
    from strategies.jscc_fedavg import JSCCFedAvg

    for name, framework in FRAMEWORKS.items():
        assert issubclass(load(framework.strategy), JSCCFedAvg), name


@pytest.mark.parametrize("registry, entry", [(CHANNELS, erasure), (DECODERS, ToyDecoder), (FRAMEWORKS, TOY_FRAMEWORK)],
                         ids=["channels", "decoders", "frameworks"])
def test_registering_then_removing_leaves_the_registry_as_it_was(monkeypatch, registry, entry):
    before = list(registry.items())
    with monkeypatch.context() as patch:
        patch.setitem(registry, "toy", entry)
        assert list(registry)[-1] == "toy" and len(registry) == len(before) + 1
    assert list(registry.items()) == before
