"""Seed 003's text task (task = text): its config keys, the energy -> bits -> output dimension rule, the
semantic metrics, the codec's power and masking, learning, the devices' values, and a tiny federated run."""

import json
import math

import pandas as pd
import pytest
import torch

from semfed.config import ConfigError, from_overrides, load_config
from semfed.text import energy
from semfed.text.codec import TextCodec, dimension_mask, unit_power
from semfed.text.corpus import PAD, UNKNOWN, Vocabulary, read_sentences, word_pieces
from semfed.text.energy_auction import device_value, score_curves
from semfed.text.metrics import SentenceSimilarity, bleu
from semfed.text.training import codec_loss
from tests.checks import assert_plot
from tests.flower_runs import in_process


@pytest.mark.parametrize("overrides, message", [
    ({"text-output-dims": "4,7"}, "text-output-dims: each output dimension must be an even integer"),
    ({"text-output-dims": "4,x"}, "text-output-dims: '4,x' is not a comma-separated list"),
    ({"auction-bidders": "1,4"}, "auction-bidders: an auction needs at least 2 bidders"),
    ({"hap-distance-m": "0.5,10"}, "hap-distance-m: need 1 <= nearest <= farthest"),
    ({"hap-distance-m": "10"}, "hap-distance-m: '10' is not 'nearest,farthest'"),
    ({"auction-value": "rouge"}, "auction-value: 'rouge' is not one of"),
    ({"text-encoder": "oracle-text"}, "text-encoder: 'oracle-text' has no features of free text"),
    ({"text-corpus": "relative.txt"}, "text-corpus: 'relative.txt' is not an absolute path"),
    ({"task": "text", "text-channel": "rician"}, "text-channel: 'rician' is not one of"),
    ({"task": "text", "min-replies": 4, "text-devices": 3}, "min-replies: must be in 1..3"),
])
def test_bad_text_keys_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        from_overrides(overrides)


def test_text_defaults_parse_and_give_one_supernode_per_device():
    cfg = load_config(task="text", text_devices=4, text_output_dims="16,4, 8", text_eval_snrs="10,0,10")
    assert cfg.text_dims == (4, 8, 16) and cfg.text_eval_snr_values == (0.0, 10.0)
    assert cfg.supernodes == 4 and cfg.hap_distances == (5.0, 35.0)


def test_bits_and_dimensions_from_harvested_energy_by_hand():
    # 1 W for 1 s at 10 m: g = 1e-3 * 10^-3 = 1e-6, E = 0.6 * 1 * 1 * 1e-6 J
    assert energy.harvested_energy(1.0, 10.0) == pytest.approx(6e-7, rel=1e-12)
    # sent over 10 ms: 6e-5 W * 1e-6 received, against (-174 + 10) dBm/Hz * 1 MHz = 10^-13.4 W
    assert energy.uplink_snr_db(6e-7, 10.0, 1e6) == pytest.approx(10 * math.log10(6e-11 / 10 ** -13.4), abs=1e-9)
    assert energy.uplink_bits(10 * math.log10(15), 1e6) == pytest.approx(1e6 * 0.01 * 4)  # log2(1 + 15) = 4
    # a message: 10 sentences x 32 words x d values x 8 bits = 2560 d bits
    assert energy.message_bits(16, 32, 8) == 40960
    assert energy.fitting_dims(40960, (32, 4, 16, 8), 32, 8) == [4, 8, 16]
    assert energy.fitting_dims(40959, (4, 8, 16, 32), 32, 8) == [4, 8]
    assert energy.fitting_dims(10239, (4, 8, 16, 32), 32, 8) == []


def test_bleu_of_a_hand_counted_pair():
    hypothesis, reference = ["the cat sat on the mat"], ["the cat is on the mat"]
    assert bleu(hypothesis, reference, 1) == pytest.approx(5 / 6)  # 5 of 6 words match, same length
    assert bleu(hypothesis, reference, 2) == pytest.approx(math.sqrt(5 / 6 * 3 / 5))  # bigrams: 3 of 5
    assert bleu(hypothesis, reference, 4) == 0.0  # no 4-gram in common, no smoothing
    assert bleu(reference, reference, 4) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def minilm():
    from semfed.text.data import text_encoder

    return text_encoder("minilm", 32)


def test_similarity_is_one_for_identical_sentences_and_lower_for_unrelated_captions(minilm):
    similarity = SentenceSimilarity(minilm)
    same = similarity(["a big red circle left of a small blue square"], ["a big red circle left of a small blue square"])
    assert same.item() == pytest.approx(1.0, abs=1e-5)
    near, far = similarity(["a big red circle left of a small blue square", "a big red circle left of a small blue square"],
                           ["a large red circle to the left of a tiny blue box", "there are a white star and a green cross"])
    assert far < near < 1.0
    assert len(similarity.embeddings) == 3  # each distinct sentence embedded once, across calls


def test_word_pieces_fill_the_slots_of_the_encoders_features(minilm):
    texts = ["a big amber cross and a white cross", "there is a tiny ivory triangle"]
    ids = word_pieces(minilm.tokenizer, texts, 8)
    _, mask = minilm.encode(texts)
    assert torch.equal(ids[:, :8] >= 0, mask[:, :8])
    assert (ids[0] >= 0).sum() == 8  # cut at 8 word pieces


def test_vocabulary_round_trip_and_unknown_pieces():
    vocabulary = Vocabulary(torch.tensor([[7, 3, -1], [3, 9, 7]]))
    assert len(vocabulary) == 2 + 3
    encoded = vocabulary.encode(torch.tensor([[9, 5, -1]]))
    assert encoded.tolist() == [[4, UNKNOWN, PAD]]  # 3 -> 2, 7 -> 3, 9 -> 4
    assert vocabulary.decode(encoded).tolist() == [[9, -1, -1]]


def test_a_text_file_splits_by_seed(tmp_path):
    corpus = tmp_path / "sentences.txt"
    corpus.write_text("\n".join(f"sentence number {i}" for i in range(10)) + "\n\n")
    train, test = read_sentences(str(corpus), seed=3)
    assert len(test) == 2 and len(train) == 8 and not set(train) & set(test)
    assert read_sentences(str(corpus), seed=3) == (train, test) != read_sentences(str(corpus), seed=4)
    corpus.write_text("only one\n")
    with pytest.raises(ValueError, match="text-corpus: .* holds 1 sentence"):
        read_sentences(str(corpus), seed=0)


def test_unit_power_over_the_sent_values_only():
    symbols = torch.randn(3, 5, 8)
    dims = torch.tensor([2, 4, 8])
    sent = unit_power(symbols, dimension_mask(dims, 8))
    for row, d in enumerate(dims.tolist()):
        assert torch.all(sent[row, :, d:] == 0)
        assert (2 * sent[row, :, :d].pow(2).mean()).item() == pytest.approx(1.0, rel=1e-5)  # per complex symbol


def test_the_receiver_ignores_what_was_not_sent():
    torch.manual_seed(0)
    codec = TextCodec(feature_dim=6, vocabulary=5, words=4, max_dim=8).eval()
    received = torch.randn(2, 4, 8)
    dims = torch.tensor([4, 4])
    changed = received.clone()
    changed[:, :, 4:] = 100.0  # noise on the dimensions a d = 4 device never sends
    assert torch.equal(codec.decode(received, dims), codec.decode(changed, dims))
    assert not torch.equal(codec.decode(received, torch.tensor([8, 8])), codec.decode(changed, torch.tensor([8, 8])))


def test_the_codec_learns_to_send_words(one_torch_thread):
    """Word pieces with fixed random features (as a frozen encoder gives): trained, the receiver reads most
    slots right at 20 dB; untrained, it is at chance."""
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(12, 16, generator=generator)  # 12 word pieces (ids 0..11, 0 = padding)
    ids = torch.randint(1, 12, (256, 6), generator=generator)
    feats = table[ids]
    torch.manual_seed(0)
    codec = TextCodec(feature_dim=16, vocabulary=12, words=6, max_dim=8)

    def accuracy() -> float:
        with torch.no_grad():
            codec.eval()
            logits = codec(feats, torch.full((256,), 8), torch.full((256,), 20.0), "awgn", torch.Generator().manual_seed(1))
        return (logits.argmax(-1) == ids).float().mean().item()

    untrained = accuracy()
    optimiser = torch.optim.Adam(codec.parameters(), lr=3e-3)
    codec.train()
    for step in range(150):
        batch = torch.randint(0, 256, (32,), generator=generator)
        loss = codec_loss(codec, feats[batch], ids[batch], torch.full((32,), 8), torch.full((32,), 20.0), "awgn", generator)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert untrained < 0.25 and accuracy() > 0.9


def test_a_device_values_the_best_dimension_its_bits_afford():
    cfg = load_config(task="text", hap_power_w=1.0, uplink_bandwidth_mhz=1.0, text_words=32, text_feature_bits=8,
                      text_channel="awgn", auction_value="similarity")
    table = pd.DataFrame([{"round": 3, "channel": "awgn", "snr": snr, "dim": dim, "similarity": score}
                          for dim, scores in {4: (0.1, 0.2), 8: (0.2, 0.5), 16: (0.3, 0.7), 32: (0.4, 0.9)}.items()
                          for snr, score in zip((0.0, 20.0), scores)]
                         + [{"round": 2, "channel": "awgn", "snr": 0.0, "dim": 32, "similarity": 1.0}])
    curves = score_curves(table, cfg)
    # 15 m: 21.2 dB buys 70.6 kbit; 2560 d bits fit up to d = 27: d = 16 at its 20 dB end value (not d = 32's 0.9)
    assert device_value(15.0, curves, cfg) == pytest.approx(0.7)
    # 25 m: 7.9 dB buys 28.4 kbit: d <= 11, so d = 8 between 0 and 20 dB
    snr = 10 * math.log10(0.6 * (1e-3 * 25.0 ** -3) ** 2 / 0.01 / 10 ** -13.4)
    assert device_value(25.0, curves, cfg) == pytest.approx(0.2 + 0.3 * snr / 20)
    assert device_value(40.0, curves, cfg) == 0.0  # not even d = 4 fits


def test_a_tiny_text_federation_learns_and_prices_the_energy(tmp_path):
    run = in_process(tmp_path / "work", "run-name='text' task='text' num-server-rounds=3 text-devices=3 "
                     "text-train-sentences=90 text-eval-sentences=20 text-output-dims='4,32' text-eval-snrs='0,20' "
                     "text-steps-per-round=10 text-batch-size=16 text-learning-rate=0.003 auction-bidders='2,3' "
                     "auction-train-steps=30 scenes-train=40 scenes-val=4 scenes-test=4 scenes-image-size=32 "
                     "client-devices='drawn' round-deadline-s=60 straggler-policy='partial'")
    metrics = pd.read_csv(run / "text_metrics.csv")
    assert len(metrics) == 4 * 2 * 2  # rounds 0..3 x 2 SNRs x 2 dims
    best = metrics[(metrics["dim"] == 32) & (metrics["snr"] == 20)].set_index("round")
    assert best.loc[3, "word_accuracy"] > best.loc[0, "word_accuracy"] + 0.2
    assert (metrics.loc[metrics["round"] > 0, "bytes_received"] > 0).all()
    auctions = pd.read_csv(run / "auction.csv")
    assert auctions["bidders"].tolist() == [2, 3]
    assert (auctions["ir_violation"] <= 1e-5).all()  # float32 round trip of the threshold bid
    assert (auctions["second_price_revenue"] <= auctions["highest_value"] + 1e-6).all()
    assert {"text_scores.png", "auction.png", "text_scores.csv", "text_checkpoint.pt"} <= {p.name for p in run.iterdir()}
    network = pd.read_csv(run / "network.csv")  # the simulated network's log: each device in each round
    assert sorted(network.groupby("round")["partition"].nunique().tolist()) == [3, 3, 3]


def _fake_text_run(run_dir, overrides, bleu4, learned):
    """A finished text run directory: hand-made scores (one cell) and auctions (2 and 4 bidders)."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(overrides))
    scores = {"round": 2, "channel": "awgn", "snr": 0.0, "dim": 8, "bleu1": 0.9, "bleu2": 0.8, "bleu3": 0.7,
              "bleu4": bleu4, "similarity": 0.95, "word_accuracy": 0.9}
    pd.DataFrame([{**scores, "round": r} for r in (0, 1, 2)]).to_csv(run_dir / "text_metrics.csv", index=False)
    pd.DataFrame([scores]).to_csv(run_dir / "text_scores.csv", index=False)
    pd.DataFrame([{"bidders": n, "mean_value": 0.5, "highest_value": 0.8, "second_price_revenue": 0.6,
                   "learned_revenue": revenue, "learned_over_second_price": revenue / 0.6, "ir_violation": -0.1,
                   "regret": 0.0, "unsold": 0.0} for n, revenue in zip((2, 4), learned)]).to_csv(run_dir / "auction.csv",
                                                                                              index=False)


def test_the_text_sweep_report_averages_seeds_and_names_where_the_learned_auction_leads(tmp_path):
    from experiments import text_results
    from experiments.sweep_grid import load_sweep

    file = tmp_path / "s.toml"
    file.write_text('name = "s"\ncompare = "seed"\n[base]\ntask = "text"\nnum-server-rounds = 2\n[grid]\nseed = [0, 1, 2]\n')
    sweep = load_sweep(file)
    runs = tmp_path / "runs" / "s"
    for point, bleu4, learned in zip(sweep.points[:2], (0.5, 0.7), ((0.66, 0.6003), (0.60, 0.5997))):
        _fake_text_run(runs / point.name, point.overrides, bleu4, learned)  # the third point never ran
    table, text = text_results.report(sweep, runs, tmp_path)
    assert table.loc[0, "bleu4"] == pytest.approx(0.6) and table.loc[0, "bleu4_std"] == pytest.approx(math.sqrt(0.02))
    assert table.loc[0, "points"] == 2
    assert "| awgn | 0 | 8 | 0.900 ± 0.000 | 0.800 ± 0.000 | 0.700 ± 0.000 | 0.600 ± 0.141 |" in text
    assert "| 2 | 0.500 | 0.800 | 0.600 ± 0.000 | 0.630 ± 0.042 | 1.050 |" in text
    assert "by over 0.1% (mean ratio over points) at [2] and less at none" in text  # 4 bidders: a tie
    assert_plot(tmp_path / "text_case_study.png")
