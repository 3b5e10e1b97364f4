"""D-JSCC over Flower (task = jscc): config keys, the three framework strategies' choice of clients
and keys, the client's local round, and (slow) a two-round real `flwr run` of each framework."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from experiments.run_state import is_finished
from experiments.sweep_grid import Point
from semfed.config import ConfigError, DecoderSpec, default_run_config, load_config
from semfed.jscc import DECODERS, build_decoder
from semfed.jscc.federation import (
    ENCODER,
    build_encoder,
    build_user_decoder,
    decoder_prefix,
    initial_state,
    state_digest,
    train_role,
    training_batches,
    unprefixed,
)
from semfed.jscc.plateau import PLATEAU, Plateau
from strategies.jscc_anchor import AnchorFedAvg
from strategies.jscc_iterative import IterativeFedAvg
from strategies.jscc_simultaneous import SimultaneousFedAvg
from tests.checks import assert_plot
from tests.flower_messages import Grid, reply_from
from tests.flower_runs import in_process

TINY = dict(task="jscc", jscc_decoders="attention:8:2;conv:8:2", jscc_encoder_width=8, jscc_crop_size=48,
            jscc_batch_size=2, jscc_steps_per_round=2, jscc_eval_snrs="1,13", jscc_stage1_rounds=1,
            num_server_rounds=2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- config ------------------------------------------------------------------------------------

def test_jscc_defaults_validate_and_parse():
    cfg = load_config(task="jscc")
    assert cfg.task == "jscc" and cfg.jscc_framework == "anchor"
    assert [s.family for s in cfg.decoder_specs] == ["attention", "conv", "resnet", "vgg"]
    assert cfg.snr_set == cfg.eval_snrs == (1.0, 4.0, 7.0, 10.0, 13.0)
    assert load_config().task == "retrieval"  # the default run is unchanged
    specs = load_config(jscc_decoders=" resnet:16:5 ; vgg:8 ;conv").decoder_specs
    assert specs == (DecoderSpec("resnet", 16, 5), DecoderSpec("vgg", 8, None), DecoderSpec("conv", None, None))
    assert specs[1].sizes(32) == {"width": 8} and specs[2].sizes(32) == {"width": 32}


@pytest.mark.parametrize("override, message", [
    ({"task": "jsc"}, "task: 'jsc' is not one of"),
    ({"task": "jscc", "jscc-framework": "joint"}, "jscc-framework: 'joint' is not one of"),
    ({"task": "jscc", "jscc-decoders": "transformer"}, "jscc-decoders: bad decoder 'transformer'"),
    ({"jscc-decoders": "conv:x"}, "jscc-decoders: width and blocks must be integers"),
    ({"task": "jscc", "jscc-decoders": "vgg:8:1"}, "jscc-decoders: a vgg decoder needs >= 2 blocks"),
    ({"jscc-decoders": " ; "}, "jscc-decoders: no decoders given"),
    ({"jscc-snr-set": "1,a"}, "jscc-snr-set: '1,a' is not a comma-separated list"),
    ({"jscc-eval-snrs": ""}, "jscc-eval-snrs: no SNRs given"),
    ({"jscc-crop-size": 12}, "jscc-crop-size: must be a multiple of 4 and >= 16"),
    ({"jscc-holdout": 0.6}, "jscc-holdout: the held-out fraction of each image's rows (or tiles) must be in [0, 0.5], got 0.6"),
    ({"jscc-plateau-rounds": -1}, "jscc-plateau-rounds: must be 0"),
    ({"jscc-plateau-db": -0.1}, "jscc-plateau-db: must be >= 0 dB"),
    ({"jscc-plateau-smoothing": 0}, "jscc-plateau-smoothing: must be >= 1"),
    ({"jscc-crop-size": 50}, "jscc-crop-size: must be a multiple of 4"),
    ({"jscc-images": "relative/dir"}, "jscc-images: 'relative/dir' is not an absolute path"),
    ({"jscc-eval-images": "/nonexistent/dir"}, "jscc-eval-images: '/nonexistent/dir' is not an absolute path"),
    ({"task": "jscc", "jscc-channel": "rician"}, "jscc-channel: 'rician' is not one of"),
    ({"jscc-steps-per-round": 0}, "jscc-steps-per-round: must be an integer >= 1"),
    ({"jscc-learning-rate": 0.0}, "jscc-learning-rate: must be > 0"),
    ({"jscc-prompts": -1}, "jscc-prompts: must be 0"),
    ({"task": "jscc", "jscc-prompts": 3}, "jscc-prompts: 3 prompts do not divide the 8 latent channels"),
    ({"jscc-prior-kl-weight": -0.1}, "jscc-prior-kl-weight: must be >= 0, got -0.1"),
    ({"task": "jscc", "jscc-bandwidth-ratio": 0.1}, "jscc-bandwidth-ratio: bandwidth ratio 0.1 gives 9.6 latent"),
    ({"task": "jscc", "jscc-stage1-rounds": 13}, "jscc-stage1-rounds: 13 stage-1 rounds exceed num-server-rounds"),
])
def test_bad_jscc_config_fails_naming_the_key(override, message):
    from semfed.config import SemfedConfig

    with pytest.raises(ConfigError, match=re.escape(message)):
        SemfedConfig.from_run_config({**default_run_config(), **override})


def test_min_blocks_table_matches_the_decoder_classes():
    for family, decoder_class in DECODERS.items():
        minimum = decoder_class.min_blocks
        build_decoder(family, latent_channels=4, width=4, num_blocks=minimum)
        with pytest.raises(ValueError, match="num_blocks"):
            build_decoder(family, latent_channels=4, width=4, num_blocks=minimum - 1)


# --- strategies --------------------------------------------------------------------------------

NODES = {0: 101, 1: 202, 2: 303}


def _global() -> ArrayRecord:
    keys = ["encoder.w", "decoder.0.w", "decoder.1.w", "decoder.2.w"]
    return ArrayRecord({k: Array(np.full(2, i, np.float32)) for i, k in enumerate(keys)})


@pytest.fixture
def flower_task(monkeypatch):
    """Messages need a run id; a running Flower app sets it, a unit test sets a stand-in."""
    from flwr.supercore.task_identity import TaskIdentity

    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 1)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)


def _sent(strategy, server_round: int) -> dict[int, tuple[str, list[str]]]:
    """node id -> (role, array keys) of the train messages of one round."""
    messages = strategy.configure_train(server_round, _global(), ConfigRecord({}), grid=Grid(NODES.values()))
    return {m.metadata.dst_node_id: (m.content["config"]["jscc-role"], sorted(m.content["arrays"]))
            for m in messages}


def test_anchor_trains_one_anchor_client_then_every_decoder_against_the_frozen_encoder(flower_task):
    strategy = AnchorFedAvg(NODES, stage1_rounds=2, anchor=1)
    for r in (1, 2):
        assert _sent(strategy, r) == {202: ("stage1", ["decoder.1.w", "encoder.w"])}
    assert _sent(strategy, 3) == {101: ("stage2", ["decoder.0.w", "encoder.w"]),
                                  202: ("stage2", ["decoder.1.w", "encoder.w"]),
                                  303: ("stage2", ["decoder.2.w", "encoder.w"])}
    assert strategy.round_stats[3]["bytes_sent"] == 6 * (128 + 2 * 4)  # float32 [2] .npy payloads: header + data


def test_iterative_cycles_one_client_per_round_and_simultaneous_trains_all(flower_task):
    iterative = IterativeFedAvg(NODES)
    assert [list(_sent(iterative, r).items()) for r in (1, 2, 3, 4)] == [
        [(101, ("iterative", ["decoder.0.w", "encoder.w"]))], [(202, ("iterative", ["decoder.1.w", "encoder.w"]))],
        [(303, ("iterative", ["decoder.2.w", "encoder.w"]))], [(101, ("iterative", ["decoder.0.w", "encoder.w"]))]]
    simultaneous = SimultaneousFedAvg(NODES)
    assert {node: role for node, (role, _) in _sent(simultaneous, 1).items()} == {
        101: "simultaneous", 202: "simultaneous", 303: "simultaneous"}


def Reply(arrays: dict, partition: int, examples: int = 4):  # noqa: N802 (reads as the message it builds)
    """A reply Message from partition `partition`'s node."""
    return reply_from(NODES.get(partition, 0), RecordDict({
        "arrays": ArrayRecord({k: Array(np.asarray(v, np.float32)) for k, v in arrays.items()}),
        "metrics": MetricRecord({"num-examples": examples, "partition-id": partition, "train_loss": 0.5})}))


def test_stage2_keeps_the_encoder_bits_and_refuses_an_encoder_update(flower_task):
    strategy = AnchorFedAvg(NODES, stage1_rounds=1, anchor=0)
    strategy.configure_train(2, _global(), ConfigRecord({}), grid=Grid(NODES.values()))
    before = strategy.global_arrays["encoder.w"].numpy().copy()
    arrays, _ = strategy.aggregate_train(2, [Reply({"decoder.2.w": [7, 7]}, 2), Reply({"decoder.0.w": [5, 5]}, 0),
                                             Reply({"decoder.1.w": [6, 6]}, 1)])
    assert arrays["encoder.w"].numpy().tobytes() == before.tobytes()
    assert [arrays[f"decoder.{p}.w"].numpy().tolist() for p in range(3)] == [[5, 5], [6, 6], [7, 7]]
    strategy.configure_train(3, _global(), ConfigRecord({}), grid=Grid(NODES.values()))
    arrays, _ = strategy.aggregate_train(3, [Reply({"decoder.1.w": [6, 6], "encoder.w": [9, 9]}, 1),
                                             Reply({"decoder.0.w": [4, 4]}, 0)])
    assert arrays["encoder.w"].numpy().tobytes() == before.tobytes()  # the encoder update was rejected
    assert arrays["decoder.1.w"].numpy().tolist() == _global()["decoder.1.w"].numpy().tolist()
    assert strategy.round_stats[3]["updates_rejected"] == 1 and arrays["decoder.0.w"].numpy().tolist() == [4, 4]


def test_simultaneous_averages_the_encoder_and_keeps_each_clients_decoder(flower_task):
    strategy = SimultaneousFedAvg(NODES)
    strategy.configure_train(1, _global(), ConfigRecord({}), grid=Grid(NODES.values()))
    replies = [Reply({"encoder.w": [3 * p, 1], f"decoder.{p}.w": [p, p]}, p) for p in (2, 0, 1)]
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert arrays["encoder.w"].numpy().tolist() == [3.0, 1.0]  # (0 + 3 + 6) / 3, equal weights
    assert [arrays[f"decoder.{p}.w"].numpy().tolist() for p in range(3)] == [[0, 0], [1, 1], [2, 2]]
    iterative = IterativeFedAvg(NODES)
    iterative.configure_train(1, _global(), ConfigRecord({}), grid=Grid(NODES.values()))
    assert iterative.aggregate_train(1, [Reply({"decoder.1.w": [1, 1]}, 1)]) == (None, None)  # not asked: rejected
    assert iterative.round_stats[1]["updates_rejected"] == 1 and iterative.round_stats[1]["skipped"] == 1


# --- one client's round, without Flower --------------------------------------------------------

def test_stage2_role_leaves_the_encoder_bit_identical_and_trains_the_decoder():
    cfg = load_config(**TINY)
    encoder, decoder = build_encoder(cfg), build_user_decoder(cfg, 1)
    state = initial_state(cfg)
    assert state_digest(unprefixed(state, ENCODER)) == state_digest(encoder.state_dict())
    assert state_digest(unprefixed(state, decoder_prefix(1))) == state_digest(decoder.state_dict())
    generator = torch.Generator().manual_seed(0)
    images = [np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)]
    batches = training_batches(cfg, images, generator, "cpu")
    assert [tuple(b.shape) for b in batches] == [(2, 3, 48, 48)] * 2
    encoder_before, decoder_before = state_digest(encoder.state_dict()), state_digest(decoder.state_dict())
    losses = train_role("stage2", cfg, encoder, decoder, batches, generator)
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert state_digest(encoder.state_dict()) == encoder_before
    assert state_digest(decoder.state_dict()) != decoder_before
    train_role("iterative", cfg, encoder, decoder, batches, generator)
    assert state_digest(encoder.state_dict()) != encoder_before
    with pytest.raises(ValueError, match="unknown D-JSCC role"):
        train_role("joint", cfg, encoder, decoder, batches, generator)


# --- whole runs (slow) ------------------------------------------------------------------------------

def two_rounds(framework: str) -> str:
    """The run config of two rounds of `framework` on 2 clients."""
    return (f"task='jscc' run-name='{framework}' num-server-rounds=2 jscc-framework='{framework}' "
            "jscc-stage1-rounds=1 jscc-decoders='attention:8:2;conv:8:2' jscc-encoder-width=8 "
            "jscc-crop-size=48 jscc-batch-size=2 jscc-steps-per-round=2 jscc-eval-snrs='1,13'")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The three frameworks in this process (the real ServerApp and ClientApp, every message through
    Flower's wire format; the real `flwr run` path, SuperLink and Ray, is tested by test_flower_e2e and the
    TLS cluster test, which cost most of the suite's time)."""
    work = tmp_path_factory.mktemp("jscc")
    for framework in ("anchor", "iterative", "simultaneous"):
        in_process(work, two_rounds(framework))
    return work


DIGESTS = {"encoder_sha256": str, "decoder_sha256": str}  # hex digests: never let pandas read them as numbers


def _changed(table: pd.DataFrame, column: str, server_round: int) -> dict[int, bool]:
    """decoder -> whether `column` (a digest) differs between round server_round - 1 and server_round."""
    digest = table.groupby(["round", "decoder"])[column].first()
    return {pid: digest[server_round, pid] != digest[server_round - 1, pid] for pid in (0, 1)}


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["anchor", "iterative", "simultaneous"])
def test_two_round_simulation_writes_metrics_for_every_decoder_snr_and_channel(runs, framework):
    run = runs / "runs" / framework
    table = pd.read_csv(run / "jscc_metrics.csv", dtype=DIGESTS)
    assert list(table.columns) == ["round", "decoder", "family", "channel", "snr", "psnr", "ms_ssim", "prior_kl",
                                   "prompts", "train_loss", "encoder_sha256", "decoder_sha256"]
    assert table[["prior_kl", "prompts"]].isna().all().all()  # deterministic decoders: no prompts, no prior
    assert len(table) == 3 * 2 * 2 * 2  # rounds 0-2 x decoders x channels x SNRs
    assert sorted(set(zip(table["decoder"], table["family"]))) == [(0, "attention"), (1, "conv")]
    assert set(table["channel"]) == {"awgn", "rayleigh"} and set(table["snr"]) == {1.0, 13.0}
    assert np.isfinite(table[["psnr", "ms_ssim"]]).all().all()
    assert table["psnr"].between(5, 60).all() and table["ms_ssim"].between(0, 1).all()
    paper = pd.read_csv(run / "jscc_table.csv")
    assert list(paper.columns) == ["framework", "round", "channel", "decoder", "family", "PSNR@1dB", "MS-SSIM@1dB",
                                   "PSNR@13dB", "MS-SSIM@13dB"]
    assert len(paper) == 4 and (paper["framework"] == framework).all() and (paper["round"] == 2).all()
    checkpoint = torch.load(run / "jscc_checkpoint.pt", weights_only=True)
    assert checkpoint["round"] == 2 and checkpoint["families"] == ["attention", "conv"]
    assert state_digest(checkpoint["encoder"]) == table.loc[table["round"] == 2, "encoder_sha256"].iloc[0]
    assert_plot(run / "jscc_psnr.png")
    assert "round 2/2" in (run / "run.log").read_text()


@pytest.mark.slow
def test_which_models_each_framework_changes_per_round(runs):
    anchor, iterative, simultaneous = (pd.read_csv(runs / "runs" / f / "jscc_metrics.csv", dtype=DIGESTS)
                                       for f in ("anchor", "iterative", "simultaneous"))
    # anchor: stage 1 (round 1) trains the encoder with the attention client's decoder only;
    # stage 2 (round 2) trains both decoders and leaves the encoder bit-identical.
    assert _changed(anchor, "encoder_sha256", 1) == {0: True, 1: True}
    assert _changed(anchor, "decoder_sha256", 1) == {0: True, 1: False}
    assert _changed(anchor, "encoder_sha256", 2) == {0: False, 1: False}
    assert _changed(anchor, "decoder_sha256", 2) == {0: True, 1: True}
    assert anchor.loc[anchor["round"] == 1, "train_loss"].notna().tolist() == [True] * 4 + [False] * 4
    # iterative: the encoder trains every round, with client 0's decoder, then client 1's
    assert _changed(iterative, "decoder_sha256", 1) == {0: True, 1: False}
    assert _changed(iterative, "decoder_sha256", 2) == {0: False, 1: True}
    assert all(_changed(iterative, "encoder_sha256", r)[0] for r in (1, 2))
    # simultaneous: every decoder and the averaged encoder change every round
    for r in (1, 2):
        assert _changed(simultaneous, "decoder_sha256", r) == {0: True, 1: True}
        assert _changed(simultaneous, "encoder_sha256", r)[0]


def test_plateau_rule_counts_rounds_without_the_least_gain_over_the_best():
    rule = Plateau(patience=2, min_gain=0.1)
    # 10.06 is a gain under 0.1 dB: no gain, and the best stays at 10.0, so 10.12 is a gain (>= 10.1);
    # had the best moved to 10.06, 10.12 (< 10.16) would have been a second round without gain
    assert [rule.update(r, s) for r, s in enumerate([10.0, 10.06, 10.12, 10.15, 10.2], start=1)] == [
        False, False, False, False, True]
    assert (rule.best, rule.best_round) == (10.12, 3)
    with pytest.raises(ValueError, match="patience"):
        Plateau(patience=0, min_gain=0.1)


def test_smoothed_plateau_rule_rides_out_two_noisy_rounds():
    # a rising score with two low rounds: read raw, 11 and 11.5 do not beat 12 and the rule stops at round 4;
    # the mean of the last 3 (10, 11, 11, 11.5, 11.83, 12.83) gains at rounds 4-6
    scores = [10.0, 12.0, 11.0, 11.5, 13.0, 14.0]
    raw = Plateau(patience=2, min_gain=0.1)
    assert [raw.update(r, s) for r, s in enumerate(scores, start=1)][3] is True
    smoothed = Plateau(patience=2, min_gain=0.1, smoothing=3)
    assert [smoothed.update(r, s) for r, s in enumerate(scores, start=1)] == [False] * 6
    assert smoothed.best == pytest.approx((11.5 + 13 + 14) / 3) and smoothed.best_round == 6
    with pytest.raises(ValueError, match="smoothing"):
        Plateau(patience=1, min_gain=0.1, smoothing=0)


@pytest.mark.slow
def test_anchor_run_stops_each_stage_at_its_plateau_and_counts_as_finished(tmp_path):
    # a gain of 100 dB never comes: each phase plateaus on its second round (patience 1). Stage 1 (cap 3)
    # ends after round 2, stage 2 runs rounds 3-4 and ends the run before the cap of 6 rounds.
    config = {"num-server-rounds": 6, "jscc-stage1-rounds": 3, "jscc-plateau-rounds": 1, "jscc-plateau-db": 100.0,
              "jscc-crop-size": 32}
    run = in_process(tmp_path, two_rounds("anchor").replace("num-server-rounds=2 ", "").replace(
        "jscc-stage1-rounds=1 ", "").replace("jscc-crop-size=48 ", "") + " " +
        " ".join(f"{key}={value!r}" for key, value in config.items()))
    phases = json.loads((run / PLATEAU).read_text())["phases"]
    assert [(p["name"], p["first_round"], p["last_round"], p["best_round"], p["plateaued"], p["window"])
            for p in phases] == [("stage1", 1, 2, 1, True, [2, 2]), ("stage2", 3, 4, 3, True, [4, 4])]
    table = pd.read_csv(run / "jscc_metrics.csv", dtype=DIGESTS)
    assert sorted(set(table["round"])) == [0, 1, 2, 3, 4]
    assert set(table.loc[table["round"] >= 2, "encoder_sha256"]) == {table.loc[table["round"] == 2, "encoder_sha256"].iloc[0]}
    stage1 = table[(table["round"] == 1) & (table["channel"] == "awgn") & (table["decoder"] == 0)]
    assert phases[0]["best_psnr"] == pytest.approx(stage1["psnr"].mean())  # scored by the anchor's decoder only
    assert (pd.read_csv(run / "jscc_table.csv")["round"] == 4).all()
    assert is_finished(run, Point("anchor", {}, {"jscc-plateau-rounds": 1}))
    assert not is_finished(run, Point("anchor", {}, {"jscc-plateau-rounds": 2}))


@pytest.mark.slow
def test_iterative_run_is_scored_once_per_cycle_of_turns(tmp_path):
    # 2 clients: a cycle is rounds 1-2 (best, scored at round 2), then rounds 3-4 bring no 100 dB gain
    run = in_process(tmp_path, two_rounds("iterative").replace("num-server-rounds=2 ", "num-server-rounds=9 ")
                     + " jscc-plateau-rounds=1 jscc-plateau-db=100.0")
    phases = json.loads((run / PLATEAU).read_text())["phases"]
    assert [(p["name"], p["first_round"], p["last_round"], p["best_round"], p["plateaued"], p["window"])
            for p in phases] == [("training", 1, 4, 2, True, [3, 4])]
    table = pd.read_csv(run / "jscc_metrics.csv")
    cycle = table[table["round"].isin([1, 2]) & (table["channel"] == "awgn")]
    assert phases[0]["best_psnr"] == pytest.approx(cycle.groupby("round")["psnr"].mean().mean())
    assert table["round"].max() == 4
