"""The simulated network: link and compute times, energy and deadlines on hand-computed values; the straggler
policies at the strategy with real Flower Messages; a budget that stops local training; the config keys."""

import dataclasses
import io
import math

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord

from semfed import protocol
from semfed.config_values import ConfigError
from semfed.network import (DEVICES, Network, in_time_users, load_snr_trace, min_time_bands, most_examples_bands,
                            parse_devices, parse_snr_range, spectral_efficiency, upload_seconds)
from semfed.participation import example_values
from semfed.retrieval import report
from semfed.retrieval.participants import build_adapter, client_shard
from semfed.retrieval.resume import plain
from semfed.retrieval.training import train_local
from semfed.update_validation import Judging
from server.retrieval import upload_bytes
from strategies.keyed_fedavg import KeyedFedAvg, record_nbytes
from tests.flower_messages import Grid, task_identity  # noqa: F401 (an autouse fixture)
from tests.checks import assert_trained
from experiments.snr_trace import path_loss_snr_db, trace_table, walk_distances
from tests.flower_runs import tiny_config, tiny_in_process
from tests.test_strategy_judging import GLOBAL, NODES, SHARDS, client_reply, honest_state

SNR_3 = 10 * math.log10(3)  # dB: log2(1 + 3) = 2 bits per second per Hz


def network(deadline: float = 0.0, policy: str = "drop", devices: dict | None = None, fading: str = "none",
            snr: float = 0.0, examples: int = 200, allocation: str = "equal") -> Network:
    devices = devices or {pid: "phone" for pid in range(10)}
    return Network(devices, {pid: snr for pid in devices}, {pid: examples for pid in devices}, 1e6, fading, deadline,
                   policy, seed=0, allocation=allocation)


def test_upload_time_is_bits_over_shannon_capacity():
    assert upload_seconds(125_000, 1e6, 0.0) == 1.0  # 1 Mbit over 1 MHz x log2(1 + 1)
    assert upload_seconds(125_000, 1e6, SNR_3) == pytest.approx(0.5)
    assert upload_seconds(125_000, 2e6, SNR_3) == pytest.approx(0.25)


def test_the_lte_cqi_rate_is_the_highest_table_entry_the_snr_reaches():
    assert spectral_efficiency(0.2, "lte-cqi") == 0.6016  # CQI 4 from its threshold on
    assert spectral_efficiency(0.19, "lte-cqi") == 0.3770  # still CQI 3
    assert spectral_efficiency(-20.0, "lte-cqi") == 0.1523 and spectral_efficiency(40.0, "lte-cqi") == 5.5547
    assert spectral_efficiency(0.0) == 1.0  # Shannon at 0 dB
    assert upload_seconds(125_000, 1e6, 22.7, "lte-cqi") == pytest.approx(1 / 5.5547)  # 1 Mbit over 1 MHz at CQI 15
    net = Network({0: "phone"}, {0: 0.2}, {0: 200}, 1e6, "none", 0.0, "drop", 0, link_rate="lte-cqi")
    assert net.client_round(1, 0, 200, 125_000).upload_s == pytest.approx(1 / 0.6016)


def test_a_users_round_time_energy_and_status_against_the_deadline():
    phone = DEVICES["phone"]  # 40 examples/s, 3 W computing, 0.2 W sending
    timing = network().client_round(1, 0, examples=200, upload_bytes=125_000)
    assert (timing.compute_s, timing.upload_s, timing.time_s) == (5.0, 1.0, 6.0)
    assert timing.energy_j == pytest.approx(phone.compute_w * 5.0 + phone.transmit_w * 1.0) == pytest.approx(15.2)
    assert timing.status == "in time" and timing.included
    assert network(deadline=5.5).client_round(1, 0, 200, 125_000).status == "late"
    assert network(deadline=6.0).client_round(1, 0, 200, 125_000).status == "in time"  # exactly at the deadline
    assert network(deadline=6.0).client_round(1, 0, 120, 125_000).status == "partial"  # fewer than its 200


def test_a_budget_is_what_fits_before_the_deadline_after_the_upload():
    partial = network(deadline=3.0, policy="partial")
    assert partial.budget(1, 0, 125_000) == 80  # (3 s - 1 s upload) x 40 examples/s
    assert partial.budget(1, 0, 500_000) == 0  # the upload alone takes 4 s
    assert network(deadline=30.0, policy="partial").budget(1, 0, 125_000) == 200  # never more than a full round
    assert network(deadline=3.0, policy="drop").budget(1, 0, 125_000) == 200  # drop: everyone trains in full


def test_a_round_lasts_as_long_as_its_slowest_included_user_or_the_deadline():
    net = network(deadline=5.5, devices={0: "phone", 1: "laptop"})
    fast, slow = net.client_round(1, 1, 200, 125_000), net.client_round(1, 0, 200, 125_000)  # 2.25 s, 6 s
    assert net.round_seconds([fast]) == 2.25
    assert net.round_seconds([fast, slow]) == 5.5  # the server waited for the late phone until the deadline


def test_rayleigh_fading_is_drawn_per_round_from_the_seed_and_averages_to_the_mean_power():
    faded = network(fading="rayleigh", snr=10.0)
    assert faded.snr_db(3, 4) == network(fading="rayleigh", snr=10.0).snr_db(3, 4)  # same seed, same draw
    assert faded.snr_db(3, 4) != faded.snr_db(4, 4) and faded.snr_db(3, 4) != faded.snr_db(3, 5)
    gains = [10 ** ((faded.snr_db(r, 0) - 10.0) / 10) for r in range(1, 2001)]
    assert abs(np.mean(gains) - 1.0) < 0.1  # Exp(1) power gain
    assert network(snr=10.0).snr_db(3, 4) == 10.0


def test_a_trace_sets_the_listed_users_snr_in_its_rounds_and_the_mean_holds_elsewhere(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(f"round,partition-id,snr_db\n1,0,12.5\n2,0,-3\n2,4,{SNR_3!r}\n")
    values = load_snr_trace(str(trace), clients=10)
    assert values == {(1, 0): 12.5, (2, 0): -3.0, (2, 4): SNR_3}
    net = Network({pid: "phone" for pid in range(10)}, {pid: 0.0 for pid in range(10)}, {pid: 200 for pid in range(10)},
                  1e6, "none", 0.0, "drop", 0, snr_trace=values)
    assert [net.snr_db(1, 0), net.snr_db(2, 0), net.snr_db(3, 0), net.snr_db(2, 4), net.snr_db(1, 4)] == [12.5, -3.0, 0.0, SNR_3, 0.0]
    assert net.client_round(2, 4, 200, 125_000).upload_s == pytest.approx(0.5)  # 1 Mbit at 2 bit/s/Hz
    assert net.client_round(1, 4, 200, 125_000).upload_s == pytest.approx(1.0)  # its mean, 0 dB: 1 bit/s/Hz
    faded = Network(net.devices, net.mean_snr_db, net.examples, 1e6, "rayleigh", 0.0, "drop", 0, snr_trace=values)
    assert faded.snr_db(2, 4) - SNR_3 == pytest.approx(network(fading="rayleigh").snr_db(2, 4))  # the fading draw on top


@pytest.mark.parametrize("text, message", [
    ("round,snr_db\n1,3\n", "lacks the column(s) ['partition-id']"),
    ("round,partition-id,snr_db\n1,0,abc\n", "row 2 holds a value that is not a finite number"),
    ("round,partition-id,snr_db\n1,0,3\n1,10,3\n", "line 3: round 1 and partition-id 10"),
    ("round,partition-id,snr_db\n0,0,3\n", "line 2: round 0"),
    ("round,partition-id,snr_db\n1,0,3\n1,0,4\n", "gives some (round, partition-id) twice"),
])
def test_a_bad_trace_file_names_the_problem(tmp_path, text, message):
    trace = tmp_path / "trace.csv"
    trace.write_text(text)
    with pytest.raises(ValueError) as error:
        load_snr_trace(str(trace), clients=10)
    assert message in str(error.value)


def test_device_and_snr_specs():
    assert parse_devices("2x phone; laptop", 3, seed=0) == {0: "phone", 1: "phone", 2: "laptop"}
    assert parse_devices("edge-server", 2, seed=0) == {0: "edge-server", 1: "edge-server"}
    drawn = parse_devices("drawn", 50, seed=1)
    assert drawn == parse_devices("drawn", 50, seed=1) and set(drawn.values()) == set(DEVICES)
    with pytest.raises(ValueError, match="lists 2 devices for 3 clients"):
        parse_devices("2x phone", 3, seed=0)
    with pytest.raises(ValueError, match="bad item 'toaster'"):
        parse_devices("toaster", 3, seed=0)
    assert parse_snr_range("5") == (5.0, 5.0) and parse_snr_range("0,20") == (0.0, 20.0)
    with pytest.raises(ValueError, match="lo <= hi"):
        parse_snr_range("20,0")


@pytest.mark.parametrize("changes, message", [
    ({"round_deadline_s": 5.0}, "round-deadline-s: a deadline needs the simulated network"),
    ({"client_devices": "2x phone"}, "client-devices: lists 2 devices for 3 clients"),
    ({"client_devices": "phone", "uplink_rate": "lte"}, "uplink-rate: 'lte' is not one of"),
    ({"client_devices": "phone", "uplink_allocation": "fair"}, "uplink-allocation: 'fair' is not one of"),
    ({"client_devices": "phone", "uplink_allocation": "min-time", "round_deadline_s": 30.0},
     "uplink-allocation: 'min-time' shortens rounds without a deadline"),
    ({"client_devices": "phone", "uplink_allocation": "deadline"}, "uplink-allocation: 'deadline' .* needs round-deadline-s"),
    ({"client_devices": "phone", "uplink_allocation": "deadline", "round_deadline_s": 30.0, "straggler_policy": "stale"},
     "got 30.0 and 'stale'"),
    ({"client_devices": "phone", "uplink_allocation": "most-examples", "round_deadline_s": 30.0},
     "uplink-allocation: 'most-examples' .* needs round-deadline-s > 0 and straggler-policy='partial' \\(got 30.0 and 'drop'"),
    ({"client_devices": "phone", "straggler_policy": "wait"}, "straggler-policy: 'wait'"),
    ({"uplink_snr_trace": "/x.csv"}, "uplink-snr-trace: a trace needs the simulated network"),
    ({"client_devices": "phone", "uplink_snr_trace": "x.csv"}, "uplink-snr-trace: must be an absolute path"),
    ({"client_devices": "phone", "stale_weight": 0.0}, "stale-weight: must be in"),
    ({"client_devices": "phone", "straggler_policy": "stale", "method": "local-only"},
     "method 'local-only' does not aggregate"),
    ({"client_devices": "phone", "method": "centralised"}, "client-devices: the centralised bound"),
])
def test_a_bad_network_key_is_refused_by_name(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(tmp_path, **changes)._check_network()


def test_network_config_keys_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="cannot read '/nonexistent/x.csv'"):
        tiny_config(tmp_path, client_devices="phone", uplink_snr_trace="/nonexistent/x.csv").check_environment()
    cfg = tiny_config(tmp_path, client_devices="phone;2x edge-server", uplink_snr_db="3")
    net = cfg.network({pid: 10 for pid in range(3)})
    assert net.devices == {0: "phone", 1: "edge-server", 2: "edge-server"}
    assert net.mean_snr_db == {pid: 3.0 for pid in range(3)} and net.bandwidth_hz == 1e6
    assert tiny_config(tmp_path).network({}) is None


def strategy_with(net: Network) -> KeyedFedAvg:
    """A strategy after configure_train of round 1 (every partition sampled) over the simulated network."""
    sizes = {pid: record_nbytes(ArrayRecord({k: Array(v) for k, v in GLOBAL.items()})) for pid in NODES}
    strategy = KeyedFedAvg(nodes=NODES, judging=Judging(SHARDS), network=net, upload_bytes=sizes)
    strategy.sent = strategy.configure_train(1, ArrayRecord({k: Array(v) for k, v in GLOBAL.items()}),
                                             ConfigRecord({}), Grid(NODES.values()))
    return strategy


def test_drop_discards_the_late_users_updates_and_logs_every_users_round():
    devices = {pid: "phone" if pid < 3 else "edge-server" for pid in NODES}
    # every user trains 200 examples: phones 5 s, edge servers 0.25 s, plus a tiny upload; deadline 1 s
    strategy = strategy_with(network(deadline=1.0, devices=devices))
    assert all(protocol.MAX_EXAMPLES not in m.content["config"] for m in strategy.sent)  # drop: nobody budgeted
    strategy.aggregate_train(1, [client_reply(pid, None) for pid in NODES])
    stats = strategy.round_stats[1]
    assert (stats["clients_replied"], stats["clients_late"], stats["updates_rejected"]) == (10, 3, 0)
    assert sorted(strategy.client_metrics[1]) == list(range(3, 10)) and stats["sim_round_s"] == 1.0
    log = strategy.network_log[1]
    assert [row["status"] for row in log] == ["late"] * 3 + ["in time"] * 7
    assert stats["energy_j"] == pytest.approx(sum(row["energy_j"] for row in log))
    assert log[0]["energy_j"] == pytest.approx(3.0 * 5.0 + 0.2 * log[0]["upload_s"])  # a late phone still spent it


def test_partial_sends_each_user_its_budget_and_weights_it_by_the_examples_it_may_train():
    devices = {pid: "phone" if pid < 3 else "edge-server" for pid in NODES}
    strategy = strategy_with(network(deadline=0.3, policy="partial", devices=devices, examples=200))
    budgets = {strategy.partition_of[m.metadata.dst_node_id]: m.content["config"][protocol.MAX_EXAMPLES]
               for m in strategy.sent}
    assert [budgets[pid] for pid in range(3)] == [11] * 3  # 0.3 s minus the upload (2.7 ms), x 40 examples/s
    assert [budgets[pid] for pid in range(3, 10)] == [200] * 7
    strategy.aggregate_train(1, [client_reply(pid, None) for pid in NODES])
    assert strategy.round_stats[1]["clients_late"] == 0 and len(strategy.client_metrics[1]) == 10
    weights = {pid: m["num-examples"] for pid, m in strategy.client_metrics[1].items()}
    assert weights == {pid: 11 if pid < 3 else SHARDS[pid] for pid in NODES}  # claimed 20-22, capped by the budget
    assert [row["status"] for row in strategy.network_log[1]] == ["partial"] * 3 + ["in time"] * 7


def test_stale_aggregates_a_late_update_in_the_next_round_with_its_weight_times_stale_weight(tmp_path):
    devices = {pid: "phone" if pid < 3 else "edge-server" for pid in NODES}
    stale, drop = (strategy_with(network(deadline=1.0, policy=policy, devices=devices)) for policy in ("stale", "drop"))
    replies = lambda: [client_reply(pid, None) for pid in NODES]  # noqa: E731
    first, _ = stale.aggregate_train(1, replies())
    dropped, _ = drop.aggregate_train(1, replies())
    for key in GLOBAL:  # round 1: exactly what dropping the late phones gives
        np.testing.assert_array_equal(first[key].numpy(), dropped[key].numpy())
    assert [row["status"] for row in stale.network_log[1]] == ["stale"] * 3 + ["in time"] * 7
    assert sorted(stale.client_metrics[1]) == list(range(3, 10)) and stale.round_stats[1]["clients_late"] == 3
    assert [(u["partition"], u["weight"]) for u in stale.stale_updates] == [(0, 10.0), (1, 10.5), (2, 11.0)]
    assert all(set(u["change"]) == {"core.w", "stem.w"} for u in stale.stale_updates)  # float arrays only
    # what a checkpoint keeps comes back from torch.load(weights_only=True) and aggregates the same
    buffer = io.BytesIO()
    torch.save(plain(stale.stale_updates), buffer)
    buffer.seek(0)
    stale.stale_updates = torch.load(buffer, weights_only=True)
    stale.configure_train(2, first, ConfigRecord({}), Grid(NODES.values()))
    second, _ = stale.aggregate_train(2, [client_reply(pid, None) for pid in range(3, 10)])
    assert stale.round_stats[2]["updates_stale"] == 3 and stale.stale_updates == []
    for key in ("core.w", "stem.w"):  # the phones' round-1 change applied to round 2's model, at half weight
        arrays = [honest_state(pid)[key].numpy() for pid in range(3, 10)]
        arrays += [first[key].numpy() + honest_state(pid)[key].numpy() - GLOBAL[key] for pid in range(3)]
        weights = [SHARDS[pid] for pid in range(3, 10)] + [0.5 * SHARDS[pid] for pid in range(3)]
        np.testing.assert_allclose(second[key].numpy(), np.average(arrays, axis=0, weights=weights), rtol=1e-6)
    users = report.write_network_users(tmp_path, stale.network, stale.network_log, {})
    assert users["stale"].tolist() == [1] * 3 + [0] * 7 and users["included"].tolist() == [1] * 3 + [2] * 7


def test_min_time_bands_end_the_users_rounds_together_at_the_hand_solved_finish():
    # computes of 1 s and 3 s, then 8 Mbit at 1 bit/s/Hz each, over 2 MHz in all:
    # 8/(T - 1) + 8/(T - 3) = 2  ->  T^2 - 12 T + 19 = 0  ->  T = 6 + sqrt(17) = 10.12 s (equal halves: 11 s)
    bands = min_time_bands(2e6, {0: 1.0, 1: 3.0}, {0: 8e6, 1: 8e6})
    finish = 6 + math.sqrt(17)
    assert bands[0] == pytest.approx(8e6 / (finish - 1), rel=1e-9) and bands[1] == pytest.approx(8e6 / (finish - 3), rel=1e-9)
    assert sum(bands.values()) == pytest.approx(2e6, rel=1e-12)
    assert min_time_bands(1e6, {0: 5.0}, {0: 3e6}) == {0: 1e6}  # alone: the whole band
    assert min_time_bands(2e6, {0: 1.0, 1: 1.0}, {0: 0.0, 1: 4e6}) == {0: 0.0, 1: 2e6}  # nothing to send, no band


def test_a_min_time_round_gives_the_slow_computers_more_band_and_ends_sooner_than_equal_bands():
    devices = {pid: "phone" if pid < 3 else "edge-server" for pid in NODES}  # 5 s and 0.25 s of compute
    rounds = {}
    for allocation in ("equal", "min-time"):
        strategy = strategy_with(network(devices=devices, allocation=allocation, snr=-20.0))  # 0.0144 bit/s/Hz
        strategy.aggregate_train(1, [client_reply(pid, None) for pid in NODES])
        rounds[allocation] = (strategy.network_log[1], strategy.round_stats[1]["sim_round_s"])
    equal, min_time = (rows for rows, _ in rounds.values())
    assert [row["bandwidth_hz"] for row in equal] == [1e6] * 10
    assert sum(row["bandwidth_hz"] for row in min_time) == pytest.approx(10e6)
    assert min_time[0]["bandwidth_hz"] > 1e6 > min_time[3]["bandwidth_hz"]  # the phones upload after 5 s of compute
    assert [row["time_s"] for row in min_time] == pytest.approx([min_time[0]["time_s"]] * 10, rel=1e-9)
    assert rounds["min-time"][1] < rounds["equal"][1] == pytest.approx(equal[0]["time_s"])


def test_the_deadline_split_admits_the_most_users_that_can_make_it_least_need_first():
    # deadline 10 s, 10 Hz in all; needs w / (D - c): user 0 20/10 = 2 Hz, 1 20/5 = 4, 2 10/2 = 5, 3 computes past D
    compute, work = {0: 0.0, 1: 5.0, 2: 8.0, 3: 12.0}, {0: 20.0, 1: 20.0, 2: 10.0, 3: 1.0}
    assert in_time_users(10.0, 10.0, compute, work) == [0, 1]  # 2 + 4 fit, + 5 does not
    # needs 6, 3, 3 in 7 Hz: the two small ones (id order or the first that fits would take user 0 alone)
    assert in_time_users(7.0, 10.0, {0: 0.0, 1: 0.0, 2: 0.0}, {0: 60.0, 1: 30.0, 2: 30.0}) == [1, 2]
    # the admitted pair splits the band to end together: 20/T + 20/(T - 5) = 10 -> T^2 - 9T + 10 = 0
    net = Network({0: "phone", 1: "phone", 2: "phone", 3: "phone"}, {pid: SNR_3 for pid in range(4)},
                  {0: 0, 1: 200, 2: 320, 3: 480}, 2.5, "none", 10.0, "drop", seed=0, allocation="deadline")
    bands = net.bands(1, [0, 1, 2, 3], {0: 5, 1: 5, 2: 2.5, 3: 0.25})  # bytes: 40, 40, 20, 2 bits = work x 2 bit/s/Hz
    finish = (9 + math.sqrt(41)) / 2
    assert sorted(bands) == [0, 1]
    assert bands[0] == pytest.approx(20 / finish, rel=1e-9) and bands[1] == pytest.approx(20 / (finish - 5), rel=1e-9)
    equal = dataclasses.replace(net, allocation="equal")
    in_time = [equal.client_round(1, pid, net.examples[pid], b).status for pid, b in enumerate([5, 5, 2.5, 0.25])]
    assert in_time == ["in time", "late", "late", "late"]  # 2.5 Hz each: user 1 ends at 5 + 40/5 = 13 s


def test_the_most_examples_split_water_fills_by_the_square_root_of_value_speed_and_work():
    # deadline 10 s, 10 Hz, 10 examples/s each, many examples: e_k = 10 (10 - w_k / B_k), B_k ~ sqrt(v_k w_k)
    speed, full = {0: 10.0, 1: 10.0}, {0: 1000, 1: 1000}
    bands = most_examples_bands(10.0, 10.0, speed, full, {0: 10.0, 1: 40.0}, {0: 1.0, 1: 1.0})
    assert bands == pytest.approx({0: 10 / 3, 1: 20 / 3}, rel=1e-9)  # 70 + 40 = 110 examples; equal 5/5: 80 + 20
    # worth four times as much per example, user 0 gets the same band as user 1 (sqrt(4 x 10) = sqrt(40))
    assert most_examples_bands(10.0, 10.0, speed, full, {0: 10.0, 1: 40.0}, {0: 4.0, 1: 1.0}) == pytest.approx(
        {0: 5.0, 1: 5.0}, rel=1e-9)
    # user 0 has 50 examples (5 s): full at F_0 = 10 / (10 - 5) = 2 Hz; the other 8 Hz go to user 1
    assert most_examples_bands(10.0, 10.0, speed, {0: 50, 1: 1000}, {0: 10.0, 1: 40.0}, {0: 1.0, 1: 1.0}) == \
        pytest.approx({0: 2.0, 1: 8.0}, rel=1e-9)
    # everyone's full work fits (F = 2 and 4 Hz): the 10 Hz shared in proportion
    assert most_examples_bands(10.0, 10.0, speed, {0: 50, 1: 50}, {0: 10.0, 1: 20.0}, {0: 1.0, 1: 1.0}) == \
        pytest.approx({0: 10 / 3, 1: 20 / 3}, rel=1e-9)
    # floors 6 and 5 Hz do not both fit in 10: user 0 buys less at its floor (v speed D^2 / w: 1000 / 60 < 1000 / 50)
    assert most_examples_bands(10.0, 10.0, speed, full, {0: 60.0, 1: 50.0}, {0: 1.0, 1: 1.0}) == {0: 0.0, 1: 10.0}
    # user 1's square-root share (10 x 9 / (3 + 9) = 7.5 Hz) is under its floor (8.1 Hz), where it trains
    # nothing: it is left out and user 0 takes the band, 91 examples (any split keeping both trains under 53)
    assert most_examples_bands(10.0, 10.0, speed, full, {0: 9.0, 1: 81.0}, {0: 1.0, 1: 1.0}) == {0: 10.0, 1: 0.0}


def test_under_the_auction_an_example_is_worth_its_users_bid_per_example():
    # user 2 is not heard from yet: it is worth the most any user is; nobody heard: 1 each
    assert example_values({0: 2.0, 1: 4.0}, [0, 1, 2]) == {0: 2.0, 1: 4.0, 2: 4.0}
    assert example_values({}, [3, 5]) == {3: 1.0, 5: 1.0}
    # a claim is capped at 10 x the median report (semantic_bids): median of 1, 1, 1000 is 1
    assert example_values({0: 1.0, 1: 1.0, 2: 1000.0}, [0, 2]) == {0: 1.0, 2: 10.0}


def test_a_most_examples_round_trains_more_examples_than_equal_bands_under_partial_work():
    devices = {pid: "phone" if pid % 2 else "edge-server" for pid in NODES}  # 40 and 800 examples/s
    trained, logs = {}, {}
    for allocation in ("equal", "most-examples"):  # at -20 dB an upload takes about 0.19 s over 1 MHz
        strategy = strategy_with(network(deadline=0.3, policy="partial", devices=devices, snr=-20.0,
                                         allocation=allocation))
        budgets = {strategy.partition_of[m.metadata.dst_node_id]: m.content["config"][protocol.MAX_EXAMPLES]
                   for m in strategy.sent}
        trained[allocation] = sum(budgets.values())
        strategy.aggregate_train(1, [client_reply(pid, None) for pid in NODES])
        logs[allocation] = strategy.network_log[1]
    assert trained["most-examples"] > trained["equal"], trained
    band = {row["partition"]: row["bandwidth_hz"] for row in logs["most-examples"]}
    assert sum(band.values()) == pytest.approx(10e6)
    assert min(band[pid] for pid in NODES if pid % 2 == 0) > max(band[pid] for pid in NODES if pid % 2)
    assert all(row["time_s"] <= 0.3 + 1e-9 for row in logs["most-examples"])  # partial work: everyone in time


def test_a_deadline_round_asks_only_the_users_its_band_gets_in_time():
    devices = {pid: "phone" if pid < 3 else "edge-server" for pid in NODES}  # 5 s and 0.25 s of compute
    upload = network(devices=devices, snr=-20.0).client_round(1, 0, 200, strategy_with(network()).upload_bytes[0]).upload_s
    for slack, asked in ((0.5, 10), (0.1, 7)):  # phones need 1 / slack of a 1-MHz share each: 2 MHz fits, 10 does not
        deadline = 5.0 + slack * upload
        strategy = strategy_with(network(deadline=deadline, devices=devices, snr=-20.0, allocation="deadline"))
        assert sorted(strategy.partition_of[m.metadata.dst_node_id] for m in strategy.sent) == list(range(10 - asked, 10))
        strategy.aggregate_train(1, [client_reply(pid, None) for pid in NODES if pid >= 10 - asked])
        log = strategy.network_log[1]
        assert [row["status"] for row in log] == ["no budget"] * (10 - asked) + ["in time"] * asked
        assert sum(row["bandwidth_hz"] for row in log) == pytest.approx(10e6)
        assert strategy.round_stats[1]["sim_round_s"] <= deadline
    equal = strategy_with(network(deadline=5.0 + 0.5 * upload, devices=devices, snr=-20.0))
    equal.aggregate_train(1, [client_reply(pid, None) for pid in NODES])
    assert [row["status"] for row in equal.network_log[1]] == ["late"] * 3 + ["in time"] * 7


def test_a_user_whose_upload_alone_misses_the_deadline_is_not_asked():
    strategy = strategy_with(network(deadline=1e-4, policy="partial"))
    assert strategy.sent == [] and strategy.round_stats[1]["clients_sampled"] == 10
    assert [row["status"] for row in strategy.network_log[1]] == ["no budget"] * 10


def test_a_budget_stops_local_training_before_the_batch_that_would_pass_it(tmp_path, one_torch_thread):
    cfg = tiny_config(tmp_path)
    shard = client_shard(cfg, 0)  # 16 images, batch size 16: one batch per epoch
    profile = cfg.client_profiles[0]

    def trained(max_examples):
        model = build_adapter(cfg, profile.encoders, seed=0)
        local = train_local(model, shard, cfg, 2, seed=5, device="cpu", max_examples=max_examples)
        return local.steps, model.state_dict()

    full_steps, full = trained(None)
    assert full_steps == 2
    budget_steps, budgeted = trained(2 * len(shard))  # exactly a full round: the same model, exactly
    assert budget_steps == 2 and all(torch.equal(full[k], budgeted[k]) for k in full)
    one_steps, one = trained(2 * len(shard) - 1)  # the second epoch's batch no longer fits
    assert one_steps == 1 and any(not torch.equal(full[k], one[k]) for k in full)
    none_steps, untrained = trained(len(shard) - 1)
    initial = build_adapter(cfg, profile.encoders, seed=0).state_dict()
    assert none_steps == 0 and all(torch.equal(initial[k], untrained[k]) for k in initial)


def test_a_compressed_run_over_the_simulated_network_drops_the_late_phone_and_counts_the_payload_bytes(tmp_path):
    cfg = tiny_config(tmp_path, update_compression="topk:0.1+int8")
    sizes = upload_bytes(cfg)  # user 0 holds both stems: the largest update, on the slowest device
    assert sum(sizes.values()) < sum(upload_bytes(tiny_config(tmp_path)).values()) / 7  # int8 and int32 of a tenth
    examples = {pid: 16 * p.local_epochs for pid, p in enumerate(cfg.client_profiles)}  # 48 images over 3 users
    phone = examples[0] / DEVICES["phone"].samples_per_s + upload_seconds(sizes[0], 1e6, 10.0)
    edge = max(examples[p] / DEVICES["edge-server"].samples_per_s + upload_seconds(sizes[p], 1e6, 10.0) for p in (1, 2))
    assert edge < phone
    deadline = (edge + phone) / 2
    run = tiny_in_process(tmp_path, "network", f"client-devices='phone;2x edge-server' uplink-snr-db='10' "
                                               f"round-deadline-s={deadline} update-compression='topk:0.1+int8'")
    metrics, log = pd.read_csv(run / report.METRICS), pd.read_csv(run / report.NETWORK)
    assert metrics["bytes_received"].tolist() == [0] + [sum(sizes.values())] * 2  # the payloads, late one included
    assert metrics["clients_late"].tolist() == [0, 1, 1] and metrics["clients_replied"].tolist() == [0, 3, 3]
    assert metrics["updates_rejected"].tolist() == [0, 0, 0]  # every payload decoded and judged sound
    assert_trained(metrics)
    assert metrics["sim_round_s"].tolist() == [0.0, deadline, deadline]
    assert metrics["sim_clock_s"].tolist() == pytest.approx([0.0, deadline, 2 * deadline])
    assert log["round"].tolist() == [1] * 3 + [2] * 3 and log["partition"].tolist() == [0, 1, 2] * 2
    assert log["status"].tolist() == ["late", "in time", "in time"] * 2
    expected_upload = [upload_seconds(sizes[p], 1e6, 10.0) for p in range(3)] * 2  # the bytes really received
    assert log["upload_s"].tolist() == pytest.approx(expected_upload, rel=1e-12)
    assert log["time_s"].iloc[0] == pytest.approx(phone)
    assert metrics["energy_j"].iloc[1] == pytest.approx(log[log["round"] == 1]["energy_j"].sum())
    users = pd.read_csv(run / report.NETWORK_USERS)
    assert users["included"].tolist() == [0, 2, 2] and users["late"].tolist() == [2, 0, 0]
    assert users["device"].tolist() == ["phone"] + ["edge-server"] * 2


def test_the_mobility_trace_follows_log_distance_path_loss_and_loads_as_a_trace(tmp_path):
    assert path_loss_snr_db(np.array([100.0, 1000.0, 10.0]), 20.0, 100.0, 3.0).tolist() == [20.0, -10.0, 50.0]
    still = walk_distances(4, 3, seed=1, speed_mps=0.0, round_s=60.0, radius_m=500.0, min_m=20.0)
    assert (still == still[0]).all() and ((still >= 20.0) & (still <= 500.0)).all()  # nobody moves
    moving = walk_distances(4, 3, seed=1, speed_mps=1.5, round_s=60.0, radius_m=500.0, min_m=20.0)
    steps = np.abs(np.diff(moving, axis=0))
    np.testing.assert_array_equal(moving[0], still[0])  # the same start from the seed
    assert (steps > 0).all() and (steps <= 90.0 + 1e-9).all()  # at most 1.5 m/s x 60 s nearer or farther a round
    path = tmp_path / "trace.csv"
    trace_table(moving, 20.0, 100.0, 3.0).to_csv(path, index=False)
    loaded = load_snr_trace(str(path), clients=4)
    assert len(loaded) == 12 and loaded[(2, 3)] == pytest.approx(20.0 - 30.0 * np.log10(moving[1, 3] / 100.0), abs=1e-3)
