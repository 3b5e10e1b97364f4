"""Seed 002's generative D-JSCC decoder (semfed.jscc.generative, decoders.PromptDecoder): the latent as L
prompts, any prefix decodes, the receiver decodes k(SNR) prompts by the capacity rule and fills the rest
from the prior with an explicit generator; its moment-matching KL joins the trainers' loss through one
hook that leaves every deterministic decoder's loss bit for bit as before."""

import math

import pytest
import torch
import torch.nn.functional as F

from semfed.channels import apply_channel
from semfed.config import load_config
from semfed.jscc import DECODERS, AttentionEncoder, PromptDecoder, build_decoder, psnr
from semfed.jscc import frameworks as fw
from semfed.jscc.federation import anchor_partition, build_encoder, build_user_decoder, evaluate_decoders, train_role
from semfed.jscc.generative import (
    DEFAULT_SNR_RANGE_DB,
    KL_WEIGHT,
    PRIOR_VARIANCE,
    keep_prefix,
    prior_kl,
    prompt_thresholds_db,
    prompts_decoded,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"width": 8, "num_blocks": 2}
RATIO, C = 1 / 12, 8  # 8 latent channels: L = 8 prompts by default


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _encoder() -> AttentionEncoder:
    torch.manual_seed(0)
    return AttentionEncoder(RATIO, **TINY)


def _prompt(**options) -> PromptDecoder:
    torch.manual_seed(1)
    return build_decoder("prompt", latent_channels=C, **TINY, **options)


def _images(n: int, size: int = 32, seed: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=_gen(seed))


# --- the prompt-count rule ------------------------------------------------------------------

def test_thresholds_are_evenly_spaced_in_capacity_between_the_training_snrs():
    # capacities 1..4 bits: SNR 2^c - 1 = 1, 3, 7, 15 (linear)
    thresholds = prompt_thresholds_db(4, (10 * math.log10(15), 0.0, 5.0))
    assert thresholds == pytest.approx([0.0, 10 * math.log10(3), 10 * math.log10(7), 10 * math.log10(15)], abs=1e-12)
    assert prompt_thresholds_db(1, (1.0, 13.0)) == (1.0,)
    assert prompt_thresholds_db(3, (6.0, 6.0)) == pytest.approx([6.0, 6.0, 6.0])
    assert DEFAULT_SNR_RANGE_DB == (min(fw.PAPER_SNR_SET_DB), max(fw.PAPER_SNR_SET_DB))
    # the paper's set, L = 8 (ratio 1/12): capacities 1.1756 .. 4.3891 bits in steps of 0.4591
    paper = prompt_thresholds_db(8, fw.PAPER_SNR_SET_DB)
    assert paper == pytest.approx([1.0, 3.233, 5.144, 6.873, 8.492, 10.038, 11.536, 13.0], abs=5e-4)
    with pytest.raises(ValueError, match="num_prompts"):
        prompt_thresholds_db(0)


def test_prompts_decoded_counts_the_thresholds_reached_and_at_least_one():
    thresholds = prompt_thresholds_db(4, (0.0, 10 * math.log10(15)))
    snrs = [-5.0, 0.0, 4.7, 10 * math.log10(3), 8.45, 10 * math.log10(7), 11.7, 10 * math.log10(15), 30.0]
    expected = [1, 1, 1, 2, 2, 3, 3, 4, 4]
    assert [prompts_decoded(s, thresholds) for s in snrs] == expected
    assert prompts_decoded(torch.tensor(snrs), thresholds).tolist() == expected
    paper = prompt_thresholds_db(8, fw.PAPER_SNR_SET_DB)
    assert [prompts_decoded(s, paper) for s in (-2.0, 1.0, 4.0, 7.0, 10.0, 13.0, 20.0)] == [1, 1, 2, 4, 5, 8, 8]


# --- prefixes and the prior ------------------------------------------------------------------

def test_keep_prefix_keeps_the_first_k_prompts_and_fills_the_rest_from_the_prior():
    latent = torch.full((3, 8, 4, 4), 7.0)
    filled = keep_prefix(latent, torch.tensor([1, 2, 4]), 4, _gen(0))  # 4 prompts of 2 channels
    for b, kept_channels in enumerate([2, 4, 8]):
        assert torch.equal(filled[b, :kept_channels], latent[b, :kept_channels])
        assert (filled[b, kept_channels:] != 7.0).all()
    big = keep_prefix(torch.zeros(64, 8, 16, 16), torch.ones(64, dtype=torch.long), 8, _gen(1))[:, 1:]
    assert big.mean().item() == pytest.approx(0.0, abs=0.01)
    assert big.var().item() == pytest.approx(PRIOR_VARIANCE, rel=0.02)


def test_every_prefix_decodes_to_an_image_in_unit_range():
    decoder, y = _prompt(), _encoder()(_images(2), 5.0)
    assert decoder.num_prompts == C
    outputs = []
    for k in range(1, C + 1):
        out = decoder(y, 5.0, image_size=(32, 32), generator=_gen(3), prompts=k)
        assert out.shape == (2, 3, 32, 32) and 0 <= out.min() and out.max() <= 1
        outputs.append(out)
    assert all(not torch.equal(a, b) for a, b in zip(outputs, outputs[1:]))  # each prompt changes the image
    mixed = decoder(y, 5.0, image_size=(32, 32), generator=_gen(3), prompts=torch.tensor([1, C]))
    assert torch.allclose(mixed[0], outputs[0][0], atol=1e-6) and torch.allclose(mixed[1], outputs[-1][1], atol=1e-6)
    grouped = _prompt(num_prompts=2)
    assert grouped.num_prompts == 2 and grouped(y, 5.0, image_size=(32, 32), prompts=2).shape == (2, 3, 32, 32)
    for bad in (0, C + 1, torch.tensor([1, 2, 3])):
        with pytest.raises(ValueError, match="prompts must be"):
            decoder(y, 5.0, image_size=(32, 32), prompts=bad)
    with pytest.raises(ValueError, match="positive divisor of the 8 latent channels"):
        _prompt(num_prompts=3)


def test_eval_mode_decodes_k_of_snr_prompts_and_train_mode_a_random_prefix():
    decoder, y = _prompt(), _encoder()(_images(2), 5.0)
    snr = torch.tensor([1.0, 13.0])
    decoder.eval()
    assert decoder.prompts_at(snr).tolist() == [1, C]
    by_rule = decoder(y, snr, image_size=(32, 32), generator=_gen(4))
    assert torch.equal(by_rule, decoder(y, snr, image_size=(32, 32), generator=_gen(4), prompts=torch.tensor([1, C])))
    decoder.train()
    train = [decoder(y, snr, image_size=(32, 32), generator=_gen(s)) for s in range(5)]
    assert len({out.sum().item() for out in train}) == 5  # another seed, another prefix and fill


def test_the_body_sees_the_prefix_the_prior_fill_and_the_share_of_prompts_decoded():
    """What the attention body receives: the kept prompts, prior samples drawn from the generator after
    training's k (k ~ uniform 1..L first, then one full-shape prior draw), and a constant plane k/L."""
    decoder, latent = _prompt(num_prompts=4), torch.randn(3, C, 8, 8, generator=_gen(9))
    seen = []
    decoder.body.blocks[0].register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
    for mode, snr in ((True, 7.0), (False, torch.tensor([1.0, 10.0, 13.0]))):
        decoder.train(mode)
        decoder(latent, snr, generator=_gen(10))
        draws = _gen(10)
        k = torch.randint(1, 5, (3,), generator=draws) if mode else torch.tensor([1, 3, 4])
        assert decoder.prompts_at(torch.tensor([1.0, 10.0, 13.0])).tolist() == [1, 3, 4]  # 1, 5.74, 9.53, 13 dB
        assert torch.equal(seen[-1][:, :C], keep_prefix(latent, k, 4, draws))
        assert torch.equal(seen[-1][:, C:], (k / 4).reshape(3, 1, 1, 1).expand(3, 1, 8, 8))
    # the plane alone tells the body how many prompts are real: same input channels, another count
    decoder.eval()
    filled = keep_prefix(latent, torch.ones(3, dtype=torch.long), 4, _gen(11))
    one, two = (decoder(filled, 7.0, generator=_gen(11), prompts=k) for k in (1, 2))
    assert torch.equal(seen[-1][:, :C], seen[-2][:, :C]) and not torch.equal(one, two)


def test_the_same_generator_seed_gives_identical_output_and_the_global_rng_is_untouched():
    decoder, y = _prompt(), _encoder()(_images(2), 5.0)
    for mode in (True, False):
        decoder.train(mode)
        state = torch.get_rng_state()
        a = decoder(y, 7.0, image_size=(32, 32), generator=_gen(5))
        b = decoder(y, 7.0, image_size=(32, 32), generator=_gen(5))
        c = decoder(y, 7.0, image_size=(32, 32), generator=_gen(6))
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert torch.equal(decoder(y, 7.0, image_size=(32, 32)), decoder(y, 7.0, image_size=(32, 32)))  # no generator
        assert torch.equal(torch.get_rng_state(), state)


def test_more_prompts_never_lower_the_expected_quality_of_a_trained_decoder():
    """Hand-made latents z ~ prior (8 channels = 4 prompts) and images x = sigmoid(upsampled A z) in which
    prompt j weighs 0.6^(j-1): a tiny prompt decoder trained 100 steps (about 2 s) on (z, x). The mean PSNR
    over 4 prior fills rises with every prompt decoded, and all 4 beat 1 by a margin."""
    gen = _gen(7)
    mix = torch.randn(3, C, generator=gen) * (0.6 ** torch.arange(4.0)).repeat_interleave(2)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(n, C, 4, 4, generator=gen) * math.sqrt(PRIOR_VARIANCE)
        return z, torch.sigmoid(F.interpolate(torch.einsum("rc,bchw->brhw", mix, z), scale_factor=4))

    decoder, draws = _prompt(num_prompts=4), _gen(8)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    for _ in range(100):  # train mode: a random prefix per image, the rest from the prior
        z, x = sample(8)
        optimizer.zero_grad()
        F.mse_loss(decoder(z, 13.0, generator=draws), x).backward()
        optimizer.step()
    z, x = sample(16)
    decoder.eval()
    with torch.no_grad():
        quality = [sum(psnr(decoder(z, 13.0, generator=_gen(s), prompts=k), x).mean() for s in range(4)).item() / 4
                   for k in range(1, 5)]
    assert all(later >= earlier for earlier, later in zip(quality, quality[1:])), quality
    assert quality[-1] > quality[0] + 3.0, quality


# --- the KL term and the trainers' hook ------------------------------------------------------

def test_prior_kl_is_the_moment_matching_kl_per_channel():
    s = math.sqrt(PRIOR_VARIANCE)
    signs = torch.tensor([1.0, -1.0]).repeat(8).reshape(1, 1, 4, 4)
    assert prior_kl(s * signs).item() == pytest.approx(0.0, abs=1e-7)  # mean 0, variance 1/2
    assert prior_kl(signs).item() == pytest.approx(0.5 * (2 - 1 - math.log(2)), abs=1e-6)  # variance 1
    assert prior_kl(1 + s * signs).item() == pytest.approx(1.0, abs=1e-6)  # mean 1: (1 + 2 - 1 - 0) / 2
    both = torch.cat([s * signs, signs], dim=1)
    assert prior_kl(both).item() == pytest.approx(0.25 * (1 - math.log(2)), abs=1e-6)  # mean over channels


def test_the_generative_loss_is_mse_plus_weighted_kl_and_the_kl_trains_the_encoder():
    encoder, decoder, images = _encoder(), _prompt(), _images(4)
    sent = encoder(images, 5.0)
    received = apply_channel(sent, "awgn", 5.0, _gen(1))
    loss = fw.user_loss(decoder, sent, received, 5.0, images, _gen(2))
    mse = F.mse_loss(decoder(received, 5.0, image_size=(32, 32), generator=_gen(2)), images)
    kl = prior_kl(sent.reshape(4, C, 8, 8))
    assert kl > 0 and torch.allclose(loss, mse + decoder.kl_weight * kl, rtol=0, atol=1e-7)
    kl.backward()  # the KL reaches the encoder only: power normalisation leaves the per-channel moments free
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())
    assert all(p.grad is None for p in decoder.parameters())


def _old_user_losses(encoder, decoders, images, snr_db, channel, generator, channel_options, train_encoder=True):
    """frameworks._user_losses before the generative hook, verbatim."""
    from contextlib import nullcontext
    with nullcontext() if train_encoder else torch.no_grad():
        sent = encoder(images, snr_db)
    size = (images.shape[2], images.shape[3])
    return [F.mse_loss(decoder(apply_channel(sent, channel, snr_db, generator, **(channel_options or {})),
                               snr_db, image_size=size), images)
            for decoder in decoders]


def _trained(monkeypatch, user_losses):
    with monkeypatch.context() as patch:
        patch.setattr(fw, "_user_losses", user_losses)
        encoder = AttentionEncoder(1 / 6, **TINY)
        torch.manual_seed(1)
        decoders = [build_decoder(name, latent_channels=16, **TINY) for name in ("attention", "conv")]
        batches = [_images(2, seed=s) for s in range(3)]
        history = fw.train_simultaneous(encoder, decoders, batches, generator=_gen(3), channel="rayleigh", lr=1e-3)
        states = [m.state_dict() for m in (encoder, *decoders)]
    return history, states


def test_deterministic_decoders_train_bit_for_bit_as_before_the_hook(monkeypatch):
    encoder = _encoder()
    decoders = [build_decoder(name, latent_channels=C, **TINY)
                for name, family in DECODERS.items() if not family.generative]
    snr = torch.tensor([1.0, 7.0, 13.0])
    old = _old_user_losses(encoder, decoders, _images(3), snr, "awgn", _gen(4), None)
    new = fw._user_losses(encoder, decoders, _images(3), snr, "awgn", _gen(4), None)
    assert len(old) == 4 and all(torch.equal(a, b) for a, b in zip(old, new))
    torch.manual_seed(0)
    old_history, old_states = _trained(monkeypatch, _old_user_losses)
    torch.manual_seed(0)
    new_history, new_states = _trained(monkeypatch, fw._user_losses)
    assert old_history == new_history
    assert all(torch.equal(a[k], b[k]) for a, b in zip(old_states, new_states) for k in a)
    scores = fw.evaluate_decoder(encoder, decoders[0], _images(2, size=36), 4.0, "awgn", _gen(5))
    restored = decoders[0](fw.transmit(encoder, _images(2, size=36), 4.0, "awgn", _gen(5)), 4.0, image_size=(36, 36))
    assert set(scores) == {"psnr", "ms_ssim"} and scores["psnr"] == psnr(restored, _images(2, size=36)).mean().item()


# --- through the config and the federation ---------------------------------------------------

def test_the_family_goes_through_the_config_build_user_decoder_training_and_evaluation():
    cfg = load_config(task="jscc", jscc_decoders="prompt:8:2;attention:8:2", jscc_encoder_width=8, jscc_crop_size=36,
                      jscc_snr_set="2,5,8", jscc_eval_snrs="1,13", jscc_bandwidth_ratio=RATIO)
    assert [spec.family for spec in cfg.decoder_specs] == ["prompt", "attention"] and anchor_partition(cfg) == 1
    encoder, decoders = build_encoder(cfg), [build_user_decoder(cfg, pid) for pid in (0, 1)]
    prompt = decoders[0]
    assert isinstance(prompt, PromptDecoder) and prompt.num_prompts == C
    assert prompt.thresholds_db[0] == pytest.approx(2.0) and prompt.thresholds_db[-1] == pytest.approx(8.0)
    images = _images(2, size=36)
    history = train_role("simultaneous", cfg, encoder, prompt, [images], _gen(1))
    assert len(history) == 1 and math.isfinite(history[0])
    rows = evaluate_decoders(cfg, encoder, decoders, images)
    assert all(list(row)[4:] == ["psnr", "ms_ssim", "prior_kl", "prompts"] for row in rows)
    for row in rows:
        if row["family"] == "prompt":
            assert row["prompts"] == (1 if row["snr"] == 1.0 else C) and row["prior_kl"] > 0
        else:
            assert math.isnan(row["prompts"]) and math.isnan(row["prior_kl"])
    assert rows == evaluate_decoders(cfg, encoder, decoders, images)  # seeded: the same rows again


def test_the_prompt_count_and_kl_weight_keys_reach_the_decoder():
    assert load_config().jscc_prior_kl_weight == KL_WEIGHT and load_config().jscc_prompts == 0  # one default
    cfg = load_config(task="jscc", jscc_decoders="prompt:8:2", jscc_bandwidth_ratio=RATIO, jscc_prompts=C // 2,
                      jscc_prior_kl_weight=0.25)
    prompt = build_user_decoder(cfg, 0)
    assert prompt.num_prompts == C // 2 and prompt.kl_weight == 0.25 and len(prompt.thresholds_db) == C // 2


def test_a_runs_checkpoint_is_scored_on_its_evaluation_crops_and_channel(tmp_path):
    from experiments.jscc_generative import from_run, prefix_table, snr_table
    from semfed.data.image_folder import load_images
    from semfed.jscc.federation import evaluation_crops
    from semfed.jscc.report import save_checkpoint

    cfg = load_config(task="jscc", jscc_decoders="conv:8:2;prompt:8:2;attention:8:2", jscc_encoder_width=8,
                      jscc_crop_size=32, jscc_holdout=0.1, jscc_holdout_layout="tiles", jscc_channel="rayleigh",
                      jscc_bandwidth_ratio=RATIO)
    encoder, decoders = build_encoder(cfg), [build_user_decoder(cfg, pid) for pid in range(3)]
    save_checkpoint(tmp_path, encoder.state_dict(), {pid: d.state_dict() for pid, d in enumerate(decoders)},
                    ["conv", "prompt", "attention"], 4, cfg.to_run_config())
    loaded, picked, images, channel = from_run(tmp_path)
    assert channel == "rayleigh" and torch.equal(images, evaluation_crops(cfg, load_images(None)))
    assert isinstance(picked["prompt"], PromptDecoder)
    assert type(picked["attention"]) is type(decoders[0])  # the first deterministic decoder: client 0's conv
    for name, decoder in (("attention", decoders[0]), ("prompt", decoders[1])):
        assert all(torch.equal(a, b) for a, b in zip(picked[name].state_dict().values(), decoder.state_dict().values()))
    table = snr_table(loaded, picked, images, [1.0, 13.0], seed=0, channel=channel)
    run_rows = {(r["family"], r["channel"], r["snr"]): r for r in evaluate_decoders(cfg, encoder, decoders, images)}
    rule = table[table["method"] == "prompt (rule)"].set_index("snr")
    assert rule.loc[1.0, "psnr"] == run_rows[("prompt", "rayleigh", 1.0)]["psnr"]  # the run's own scoring, exactly
    assert rule.loc[13.0, "psnr"] == run_rows[("prompt", "rayleigh", 13.0)]["psnr"]
    all_l = table[table["method"] == "prompt (all L)"].set_index("snr")
    assert all_l.loc[13.0, "psnr"] == rule.loc[13.0, "psnr"] and all_l.loc[1.0, "psnr"] != rule.loc[1.0, "psnr"]
    assert all_l["prompts"].eq(C).all() and rule["prompts"].tolist() == [1, C]
    prefixes = prefix_table(loaded, picked["prompt"], images, [13.0], seed=0, channel=channel)
    assert prefixes["prompts"].tolist() == list(range(1, C + 1))
    save_checkpoint(tmp_path, encoder.state_dict(), {0: decoders[0].state_dict()}, ["conv"], 4,
                    {**cfg.to_run_config(), "jscc-decoders": "conv:8:2"})
    with pytest.raises(SystemExit, match="no generative decoder .*conv"):
        from_run(tmp_path)
