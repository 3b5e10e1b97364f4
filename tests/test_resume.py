"""Resume without Flower running: what a checkpoint holds and how it is loaded (weights_only), the
exact round trip of RNG states and the metrics table, and the clients' label ledger files."""

import os
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import Array, ArrayRecord

from semfed import run_directory as rd
from semfed.config import load_config
from semfed.retrieval import report
from semfed.retrieval.labels import HISTOGRAM_BINS, LabelLedger
from semfed.retrieval.ledger_files import discard_after, ledger_folder, ledger_rounds, load_ledger, save_ledger
from semfed.retrieval.resume import restore_rng, table_from_state, table_state
from semfed.tracking import Tracking
from server.retrieval import RoundRecorder
from server.resume import resumable, resume_state
from strategies.keyed_fedavg import KeyedFedAvg


def _table() -> pd.DataFrame:
    """A metrics table with the column kinds a run writes: ints, floats that need all 17 digits, NaN."""
    return pd.DataFrame({"round": [0, 1, 2], "rsum": [0.1 + 0.2, float("nan"), 1 / 3],
                         "bytes_sent": [0, 2**40 + 1, 7], "noise_mean": [float("nan"), 0.4, 0.45]})


def test_checkpoint_round_trip_restores_rng_and_table_exactly(tmp_path):
    cfg = load_config(work_dir=str(tmp_path), run_name="r")
    strategy = resumable(KeyedFedAvg)()
    strategy.round_stats = {1: {"clients_failed": 1, "train_loss": np.float64(0.25)}}
    strategy.client_metrics = {1: {0: {"partition-id": 0, "label-pruned": 3}}}
    random.random(), np.random.randn()  # an odd number of Gaussian draws: NumPy holds a cached one
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    report.save_checkpoint(tmp_path, state, 3, "skb1", cfg, resume_state(strategy, _table(), {0: 12.5, 1: 30.0}))
    draws = random.random(), np.random.randn(3), np.random.rand(2), torch.rand(3)

    loaded = report.load_checkpoint(tmp_path)  # weights_only=True
    assert torch.equal(loaded["adapter"]["w"], state["w"]) and loaded["round"] == 3 and loaded["skb_version"] == "skb1"
    assert loaded["config"] == cfg.to_run_config() and loaded["client_rsum"] == {0: 12.5, 1: 30.0}
    assert loaded["strategy"] == {"round_stats": {1: {"clients_failed": 1, "train_loss": 0.25}},
                                  "client_metrics": {1: {0: {"partition-id": 0, "label-pruned": 3}}},
                                  "network_log": {}, "stale_updates": []}  # the simulated network's (off here)
    pd.testing.assert_frame_equal(table_from_state(loaded["metrics"]), _table(), check_exact=True)
    restore_rng(loaded["rng"])
    assert random.random() == draws[0] and np.array_equal(np.random.randn(3), draws[1])
    assert np.array_equal(np.random.rand(2), draws[2]) and torch.equal(torch.rand(3), draws[3])
    assert [p.name for p in tmp_path.iterdir()] == [report.CHECKPOINT]  # no temporary file left behind


def test_table_state_keeps_dtypes_and_values_exactly():
    table = _table().assign(skipped=[False, True, False])
    back = table_from_state(table_state(table))
    pd.testing.assert_frame_equal(back, table, check_exact=True)
    assert back["rsum"].iloc[0] == 0.30000000000000004 and back["bytes_sent"].dtype == np.int64
    assert len(table_state(table)["blocks"]) == 3  # one tensor per dtype: float64, int64, bool
    per_column = {name: torch.from_numpy(column.to_numpy().copy()) for name, column in table.items()}
    pd.testing.assert_frame_equal(table_from_state(per_column), table, check_exact=True)  # an older checkpoint's


def test_a_truncated_checkpoint_and_a_crafted_pickle_are_refused(tmp_path):
    cfg = load_config(work_dir=str(tmp_path), run_name="r")
    report.save_checkpoint(tmp_path, {"w": torch.zeros(2)}, 1, "skb1", cfg)
    data = (tmp_path / report.CHECKPOINT).read_bytes()
    for name, content in [("truncated.pt", data[: len(data) // 2]), ("empty.pt", b""), ("garbage.pt", b"x" * 100)]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(rd.CheckpointError, match=f"checkpoint {tmp_path / name} is truncated or corrupt"):
            rd.load_checkpoint(tmp_path / name, report.CHECKPOINT_KEYS)
    torch.save({"round": 1}, tmp_path / "other.pt")
    with pytest.raises(rd.CheckpointError, match=r"other.pt is not a semfed checkpoint: it lacks \['adapter'"):
        rd.load_checkpoint(tmp_path / "other.pt", report.CHECKPOINT_KEYS)

    marker = tmp_path / "ran"

    class Payload:  # unpickled without weights_only, this would run a shell command
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    torch.save({"adapter": {}, "round": 1, "skb_version": "s", "config": {}, "x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(rd.CheckpointError, match=r"evil.pt holds a pickled posix.system, not only tensors .* refused"):
        rd.load_checkpoint(tmp_path / "evil.pt", report.CHECKPOINT_KEYS)
    torch.save({"adapter": {}, "round": 1, "skb_version": "s", "config": {}, "metrics": _table()}, tmp_path / "df.pt")
    with pytest.raises(rd.CheckpointError, match=r"df.pt holds a pickled pandas.*DataFrame"):
        rd.load_checkpoint(tmp_path / "df.pt", report.CHECKPOINT_KEYS)
    assert not marker.exists()


def test_the_checkpoint_of_an_unscored_round_holds_that_round_s_arrays(tmp_path):
    cfg = load_config(work_dir=str(tmp_path), run_name="r", eval_every=3, num_server_rounds=6, scenes_train=30,
                      scenes_val=2, scenes_test=6, scenes_image_size=64, frcnn_mnv3_input_size=64, max_regions=3,
                      clients="frcnn-mnv3+minilm:1;minilm:1", partitioning="iid")
    recorder = RoundRecorder(cfg, tmp_path, resumable(KeyedFedAvg)(), "skb1", Tracking((), tmp_path, "r", {}, tmp_path))
    initial = {k: v.clone() for k, v in recorder.model.state_dict().items()}
    # round 1's global model: every value differs from the initial model's
    arrays = {k: (v.float() + 1 + torch.arange(v.numel()).reshape(v.shape)).to(v.dtype) for k, v in initial.items()}
    metrics = recorder(1, ArrayRecord({k: Array(v.numpy()) for k, v in arrays.items()}))
    assert np.isnan(metrics["rsum"])  # round 1 is not scored with eval-every=3
    saved = report.load_checkpoint(tmp_path)
    assert saved["round"] == 1 and saved["adapter"].keys() == arrays.keys()
    assert all(torch.equal(saved["adapter"][k], arrays[k]) for k in arrays)


def _ledger(n: int, rounds: int, seed: int) -> LabelLedger:
    rng = np.random.default_rng(seed)
    ledger = LabelLedger.empty(n)
    for _ in range(rounds):
        ledger.update(rng.random(n).astype(np.float32), np.ones(HISTOGRAM_BINS), 0.8, prune_rounds=1)
    return ledger


def _same(a: LabelLedger, b: LabelLedger) -> bool:
    return all(np.array_equal(x, y) and x.dtype == y.dtype for x, y in zip(a.to_arrays().values(), b.to_arrays().values()))


def test_ledger_files_round_trip_and_a_client_keeps_the_round_it_loaded(tmp_path):
    folder = ledger_folder(tmp_path, 2)
    assert folder == tmp_path / "partition-2"
    empty, loaded_from = load_ledger(folder, 1, 5)
    assert loaded_from is None and _same(empty, LabelLedger.empty(5))
    first, second = _ledger(5, 1, 0), _ledger(5, 2, 1)
    assert first.pruned.any() and second.pruned.any()
    save_ledger(folder, 1, first, keep=None)
    save_ledger(folder, 3, second, keep=1)  # the client skipped round 2
    ledger, loaded_from = load_ledger(folder, 3, 5)  # a rerun of round 3 gets round 1's ledger, not its own
    assert loaded_from == 1 and _same(ledger, first)
    ledger, loaded_from = load_ledger(folder, 4, 5)
    assert loaded_from == 3 and _same(ledger, second)
    save_ledger(folder, 4, _ledger(5, 3, 2), keep=3)
    assert ledger_rounds(folder) == [3, 4]  # round 1's file is gone: only the loaded round and the new one
    with pytest.raises(ValueError, match="partition-2/round-4.npz holds 5 labels, this client's shard 6"):
        load_ledger(folder, 5, 6)


def test_a_ledger_write_that_fails_midway_leaves_the_previous_file(tmp_path, monkeypatch):
    folder = ledger_folder(tmp_path, 0)
    before = _ledger(4, 1, 3)
    save_ledger(folder, 1, before, keep=None)

    def crash(file, **arrays):
        file.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        save_ledger(folder, 2, _ledger(4, 2, 4), keep=1)
    assert ledger_rounds(folder) == [1]
    ledger, loaded_from = load_ledger(folder, 3, 4)
    assert loaded_from == 1 and _same(ledger, before)


def test_resume_discards_the_ledgers_of_rounds_after_the_checkpoint(tmp_path):
    for pid, rounds in [(0, (1, 2)), (1, (2, 3)), (2, (3,))]:
        for r in rounds:
            save_ledger(ledger_folder(tmp_path, pid), r, _ledger(3, r, r), keep=rounds[0])
    discard_after(tmp_path, 2)  # the checkpoint holds round 2: round 3 was trained, never checkpointed
    assert [ledger_rounds(ledger_folder(tmp_path, p)) for p in range(3)] == [[1, 2], [2], []]
    discard_after(tmp_path, 0)  # a fresh run of the same name starts with no ledger
    assert [ledger_rounds(ledger_folder(tmp_path, p)) for p in range(3)] == [[], [], []]


def test_a_runs_ledgers_live_under_ledger_dir_or_the_work_dir(tmp_path):
    assert load_config(work_dir=str(tmp_path)).run_ledgers("sweep/p1") == tmp_path / "ledgers" / "sweep" / "p1"
    assert load_config(ledger_dir="/ledgers").run_ledgers("r") == Path("/ledgers/r")


def test_appended_rows_write_the_text_the_whole_table_would(tmp_path, monkeypatch):
    rows = [{"round": 0, "rsum": 1.5, "n": 3, "ok": True, "name": "a", "x": np.float64(0.1)},
            {"round": 1, "rsum": float("nan"), "n": 4, "ok": False, "name": "b", "x": np.float64(0.2)},  # appended
            {"round": 2, "rsum": 2.25, "n": 5, "ok": True, "name": "c", "x": np.float64(0.3), "new": 7},  # a new column
            {"round": 3, "rsum": 3.0, "n": 6.5, "ok": True, "name": "d", "x": np.float64(0.4), "new": 8},  # n to float
            {"round": 4, "rsum": 3.5, "n": 7.0, "ok": True, "name": "e", "x": np.float64(0.5), "new": 9}]  # appended,
    # its int 9 written as the float column's 9.0
    for row in rows:
        pd.testing.assert_frame_equal(rd.row_frame(row), pd.DataFrame([row]), check_exact=True)
    modes, to_csv = [], pd.DataFrame.to_csv
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda self, path, **kw: modes.append(kw.get("mode", "w")) or to_csv(self, path, **kw))
    file, table = tmp_path / "metrics.csv", None
    for k, row in enumerate(rows):
        table = rd.append_rows(file, table, [row])
        monkeypatch.setattr(pd.DataFrame, "to_csv", to_csv)
        pd.DataFrame(rows[:k + 1]).to_csv(tmp_path / "whole.csv", index=False)
        monkeypatch.setattr(pd.DataFrame, "to_csv", lambda self, path, **kw: modes.append(kw.get("mode", "w")) or to_csv(self, path, **kw))
        assert file.read_text() == (tmp_path / "whole.csv").read_text(), k
    assert modes == ["w", "a", "w", "w", "a"]
