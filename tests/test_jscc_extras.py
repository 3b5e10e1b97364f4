"""Issue 5's extras: SKB tokens over the channel, the forgetting curve, the cliff and the D-JSCC summary."""

import io
import json
import math

import pandas as pd
import pytest
import torch
from PIL import Image

from experiments import jscc_results
from experiments.run_state import is_finished
from experiments.sweep_grid import load_sweep
from semfed import channels as ch
from semfed.data.image_folder import DEFAULT_IMAGES, center_crops, load_images
from semfed.jscc import AttentionEncoder, build_decoder, psnr
from semfed.jscc.cliff import cliff_curve, separation_scores
from semfed.jscc.forgetting import forgetting_curve
from semfed.jscc.separation import CODECS, FAILURE_GREY
from semfed.retrieval.adapter.model import GraphAdapter
from semfed.retrieval.evaluation import embed
from semfed.retrieval.metrics import retrieval_recalls
from semfed.retrieval.token_channel import pool_tokens, send_tokens, token_receiver, unit_power_scale
from tests.checks import assert_plot

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def default_image():
    """The 64-px centre crop of scikit-image's cat: [3, 64, 64] in [0, 1]."""
    return center_crops(load_images(None), 64)[DEFAULT_IMAGES.index("chelsea")]


def _tokens(seed: int = 0, b: int = 6, n: int = 5, d: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit tokens [b, n, d] scaled per sample, with padding (sample i keeps 1 + i % n tokens)."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.arange(n)[None, :] < (1 + torch.arange(b) % n)[:, None]
    tokens = torch.nn.functional.normalize(torch.randn(b, n, d, generator=gen), dim=-1)
    tokens = tokens * torch.rand(b, 1, 1, generator=gen).add(0.1) * 3 * mask[..., None]
    return tokens, mask


# --- SKB tokens over the air ---------------------------------------------------------------

def test_power_normalisation_is_exact_per_sample_over_valid_tokens():
    tokens, mask = _tokens()
    sent = tokens * unit_power_scale(tokens, mask)[..., None]
    complex_symbols = mask.sum(1) * tokens.shape[-1] / 2
    power = sent.pow(2).flatten(1).sum(1) / complex_symbols  # sum |z|^2 / k over the valid symbols
    assert torch.allclose(power, torch.ones_like(power), atol=1e-6)
    assert unit_power_scale(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)).eq(1).all()


@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
def test_at_very_high_snr_tokens_and_rsum_are_unchanged(channel):
    tokens, mask = _tokens()
    received = send_tokens(tokens, mask, channel, 150.0, torch.Generator().manual_seed(1))
    assert torch.allclose(received, tokens, atol=1e-5)
    assert received[~mask].eq(0).all()
    texts = pool_tokens(*_tokens(seed=2, b=30))  # 5 captions per image
    clean = retrieval_recalls(pool_tokens(tokens, mask) @ texts.T)
    assert retrieval_recalls(pool_tokens(received, mask) @ texts.T) == clean


def test_awgn_noise_variance_matches_the_snr():
    tokens, mask = torch.ones(400, 16, 64), torch.ones(400, 16, dtype=torch.bool)
    tokens = tokens * unit_power_scale(tokens, mask)[..., None]  # unit power: the scale is 1 at the receiver
    for snr in (0.0, 10.0):
        noise = send_tokens(tokens, mask, "awgn", snr, torch.Generator().manual_seed(3)) - tokens
        per_complex_symbol = 2 * noise.pow(2).mean()
        assert per_complex_symbol.item() == pytest.approx(10 ** (-snr / 10), rel=0.02)


def test_rayleigh_with_equalisation_has_the_expected_noise_before_equalising():
    tokens, mask = torch.ones(4000, 2, 32), torch.ones(4000, 2, dtype=torch.bool)
    tokens = tokens * unit_power_scale(tokens, mask)[..., None]
    faded = send_tokens(tokens, mask, "rayleigh", 10.0, torch.Generator().manual_seed(4), equalize=False)
    assert (2 * faded.pow(2).mean()).item() == pytest.approx(1 + 10 ** -1, rel=0.05)  # E|h z|^2 + sigma^2


def test_receiver_is_seeded_and_padding_only_changes_nothing():
    tokens, mask = _tokens()
    a = send_tokens(tokens, mask, "rayleigh", 5.0, torch.Generator().manual_seed(9), block=False)
    b = send_tokens(tokens, mask, "rayleigh", 5.0, torch.Generator().manual_seed(9), block=False)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="d even"):
        send_tokens(torch.zeros(2, 3, 5), torch.ones(2, 3, dtype=torch.bool), "awgn", 5.0)
    assert not math.isnan(pool_tokens(a, mask).sum().item())


def test_embed_with_a_receiver_pools_the_received_tokens():
    torch.manual_seed(0)
    model = GraphAdapter({"enc": 6}, torch.randn(5, 8), width=8)
    feats, mask = torch.randn(7, 4, 6), torch.arange(4)[None, :] < torch.tensor([4, 3, 2, 1, 4, 2, 3])[:, None]
    plain = embed(model, feats, mask, "enc", "cpu", batch_size=3)
    assert torch.allclose(embed(model, feats, mask, "enc", "cpu", batch_size=3, receive=pool_tokens), plain, atol=1e-6)
    noisy = embed(model, feats, mask, "enc", "cpu", receive=token_receiver("awgn", -5.0, torch.Generator().manual_seed(0)))
    assert (noisy - plain).abs().max() > 0.05


# --- forgetting curve ------------------------------------------------------------------------

def _tiny_models(seed: int = 0):
    torch.manual_seed(seed)
    encoder = AttentionEncoder(1 / 6, width=8, num_blocks=2)
    decoders = [build_decoder(name, latent_channels=16, width=8, num_blocks=2) for name in ("attention", "conv", "vgg")]
    return encoder, decoders[0], [("conv", decoders[1]), ("vgg", decoders[2])]


def test_forgetting_anchor_keeps_the_target_bit_identical_and_iterative_moves_it():
    gen = torch.Generator().manual_seed(5)
    stages = [[torch.rand(2, 3, 36, 36, generator=gen) for _ in range(2)] for _ in range(3)]
    images = torch.rand(2, 3, 36, 36, generator=gen)
    encoder, target, others = _tiny_models()
    table = forgetting_curve(encoder, target, others, stages, images, eval_snrs=[4.0, 10.0], seed=1)
    assert list(table.columns) == ["framework", "stage", "trained_with", "snr", "psnr", "ms_ssim"]
    assert len(table) == 2 * 3 * 2
    for framework, rows in table.groupby("framework"):
        by_snr = rows.pivot(index="stage", columns="snr", values="psnr")
        changed = (by_snr.iloc[1:] != by_snr.iloc[0]).any(axis=None)
        assert changed == (framework == "iterative")  # anchor: exactly equal at every stage
    anchor = table[table["framework"] == "anchor"]
    assert anchor.groupby("snr")["ms_ssim"].nunique().eq(1).all()
    assert table[table["stage"] == 2]["trained_with"].eq("vgg").all()
    first = table[table["stage"] == 0].set_index(["framework", "snr"])["psnr"]
    assert first["anchor"].equals(first["iterative"])  # one shared stage 0
    with pytest.raises(ValueError, match="stage batches"):
        forgetting_curve(encoder, target, others, stages[:2], images, eval_snrs=[4.0])


def test_forgetting_from_a_run_starts_from_its_checkpoint_untouched(tmp_path):
    from experiments.jscc_forgetting import from_run
    from semfed.config import load_config
    from semfed.jscc.federation import build_encoder, build_user_decoder, evaluate_decoder, evaluation_crops
    from semfed.jscc.report import save_checkpoint

    cfg = load_config(task="jscc", jscc_decoders="conv:8:2;attention:8:2;vgg:8:2", jscc_encoder_width=8,
                      jscc_crop_size=32, jscc_batch_size=2, jscc_holdout=0.1, jscc_channel="rayleigh")
    encoder = build_encoder(cfg)
    decoders = [build_user_decoder(cfg, pid) for pid in range(3)]
    save_checkpoint(tmp_path, encoder.state_dict(), {pid: d.state_dict() for pid, d in enumerate(decoders)},
                    ["conv", "attention", "vgg"], 7, cfg.to_run_config())
    target, table = from_run(tmp_path, steps=1, eval_snrs=[4.0], generator=torch.Generator().manual_seed(0), seed=3)
    assert target == "1:attention"  # the anchor: the first symmetric decoder, not client 0
    assert table[table["stage"] > 0].drop_duplicates("stage")["trained_with"].tolist() == ["0:conv", "2:vgg"]
    images = evaluation_crops(cfg, load_images(None))
    untouched = evaluate_decoder(encoder, decoders[1], images, 4.0, "rayleigh", torch.Generator().manual_seed(3))
    assert table.loc[table["stage"] == 0, "psnr"].tolist() == [untouched["psnr"]] * 2  # anchor and iterative
    assert table.loc[table["framework"] == "anchor", "psnr"].nunique() == 1
    assert table.loc[table["framework"] == "iterative", "psnr"].nunique() == 3


# --- cliff -----------------------------------------------------------------------------------

def test_separation_fails_below_the_capacity_threshold_and_succeeds_above(default_image):
    ratio = 1 / 12
    pixels = default_image.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=1)
    bits_per_symbol = 8 * len(buffer.getvalue()) / ch.bandwidth_symbols(tuple(default_image.shape), ratio)
    threshold = 10 * math.log10(2 ** bits_per_symbol - 1)  # quality 1 fits exactly at this SNR (dB)
    below = separation_scores(default_image[None], ratio, threshold - 0.3)
    above = separation_scores(default_image[None], ratio, threshold + 0.3)
    grey = psnr(torch.full_like(default_image, FAILURE_GREY)[None], default_image[None]).item()
    assert below["failed"] == 1.0 and below["quality"] == 0 and below["psnr"] == pytest.approx(grey)
    assert above["failed"] == 0.0 and above["quality"] >= 1 and above["psnr"] > grey + 3


def test_cliff_curve_has_a_row_per_method_channel_and_snr(default_image):
    encoder, target, _ = _tiny_models()
    table = cliff_curve(encoder, {"a": target}, default_image[None], [-2.0, 20.0], 1 / 6, ("awgn", "rayleigh"))
    separation = [codec.label for codec in CODECS.values()]  # every registered codec by default
    assert len(table) == 2 * (2 + len(CODECS)) and len(set(separation)) == len(CODECS) >= 4
    assert set(table["method"]) == {"D-JSCC a", *separation}
    assert set(table[table["method"].isin(separation)]["channel"]) == {"awgn"}
    by_method = table[table["method"].isin(separation)].set_index(["method", "snr"])
    jpeg, payload = CODECS["jpeg"].label, CODECS["jpeg-payload"].label
    assert by_method.loc[(jpeg, -2.0), "failed"] == 1.0 and by_method.loc[(jpeg, 20.0), "failed"] == 0.0
    assert by_method.loc[(payload, -2.0), "failed"] == 0.0  # 81 bytes fit from -6.1 dB, the whole file from 7.6 dB
    for snr in (-2.0, 20.0):  # the payload is smaller at every quality, so it never gets a lower one
        assert by_method.loc[(payload, snr), "quality"] >= by_method.loc[(jpeg, snr), "quality"]
    assert table[table["method"] == "D-JSCC a"]["failed"].isna().all()
    only = cliff_curve(encoder, {}, default_image[None], [20.0], 1 / 6, codecs=["webp"])
    assert only["method"].tolist() == ["WebP separation (whole file)"]
    with pytest.raises(ValueError, match="'png' is not one of"):
        cliff_curve(encoder, {}, default_image[None], [20.0], 1 / 6, codecs=["png"])


# --- D-JSCC sweep summary --------------------------------------------------------------------

def _fake_run(run_dir, overrides, psnr_by_decoder):
    """A finished D-JSCC run directory with hand-made scores at the last round (the same on both channels)."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(overrides))
    rounds = overrides["num-server-rounds"]
    rows = [{"round": r, "decoder": d, "family": f"f{d}", "channel": c, "snr": snr,
             "psnr": (p + snr) if r == rounds else 0.0, "ms_ssim": 0.5 + p / 100}
            for r in range(1, rounds + 1) for d, p in enumerate(psnr_by_decoder) for c in ("awgn", "rayleigh")
            for snr in (1, 13)]
    pd.DataFrame(rows).to_csv(run_dir / "jscc_metrics.csv", index=False)
    (run_dir / "jscc_table.csv").write_text("done\n")


def test_jscc_results_build_one_table_and_checks_the_ordering(tmp_path):
    file = tmp_path / "s.toml"
    file.write_text('name = "s"\n[base]\ntask = "jscc"\nnum-server-rounds = 2\njscc-stage1-rounds = 1\n'
                    '[grid]\njscc-channel = ["awgn"]\njscc-framework = ["anchor", "iterative", "simultaneous"]\n')
    sweep = load_sweep(file)
    runs = tmp_path / "runs" / "s"
    scores = {"anchor": [20.0, 18.0], "iterative": [19.0, 18.0], "simultaneous": [17.0, 18.5]}
    for point in sweep.points:
        _fake_run(runs / point.name, point.overrides, scores[point.overrides["jscc-framework"]])
    rows = jscc_results.collect(sweep, runs)
    assert set(rows["channel"]) == {"awgn"} and set(rows["round"]) == {2}  # training channel, last round
    table = jscc_results.framework_table(rows).set_index(["decoder", "snr"])
    assert table.loc[(0, 13), "psnr[anchor]"] == 33.0 and table.loc[(0, 13), "psnr[simultaneous]"] == 30.0
    assert table["order_psnr"].tolist() == [True, True, False, False]  # decoder 1: iterative = 18 < 18.5
    text = jscc_results.summary(table.reset_index())
    assert "ordering holds in 2 of 4 cells (anchor >= iterative in 4 of 4)" in text
    assert "| awgn | 0: f0 | 13 | 33.00 ✓ | 32.00 | 30.00 | 0.700 ✓ | 0.690 | 0.670 |" in text  # ms_ssim = 0.5 + p/100
    assert "| awgn | 1: f1 | 1 | 19.00 | 19.00 | 19.50 | 0.680 | 0.680 | 0.685 |" in text
    jscc_results.plot_frameworks(table.reset_index(), tmp_path / "frameworks.png")
    assert_plot(tmp_path / "frameworks.png")
    unfinished = runs / sweep.points[2].name
    (unfinished / "jscc_table.csv").unlink()
    assert not is_finished(unfinished, sweep.points[2])
    table = jscc_results.framework_table(jscc_results.collect(sweep, runs))
    assert table["order_psnr"].isna().all() and table["psnr[simultaneous]"].isna().all()
    anchor = runs / sweep.points[0].name  # its plateau window: rounds 1-2, scores 0 then 20 + snr (decoder 0)
    (anchor / "jscc_plateau.json").write_text(json.dumps({"phases": [{"window": [1, 2], "plateaued": False}]}))
    windowed = jscc_results.collect(sweep, runs, window=True).set_index(["decoder", "snr"])
    assert set(windowed["framework"]) == {"anchor"}  # the runs without a plateau file are left out
    assert windowed.loc[(0, 13), "psnr"] == 16.5 and windowed.loc[(1, 1), "psnr"] == 9.5
