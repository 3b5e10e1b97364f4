"""A cross-device federation: 200 clients described by one count-prefixed profile, 5 sampled per round."""

import pandas as pd

from experiments.score_checkpoint import score
from semfed.config_values import format_client_list, parse_client_list
from semfed.retrieval import report
from semfed.sampling import sample_partitions
from tests.flower_runs import in_process

SCALE = ("run-name='scale' num-server-rounds=2 scenes-train=400 scenes-val=4 scenes-test=200 partitioning='iid' "
         "clients='120x oracle-image+oracle-text; 50x oracle-image; 30x oracle-text' fraction-train=0.025 batch-size=4")


def test_200_clients_with_5_sampled_per_round_train_and_are_each_scored(tmp_path):
    run = in_process(tmp_path, SCALE)
    table = pd.read_csv(run / report.METRICS, float_precision="round_trip")  # exact floats, as written
    assert table["round"].tolist() == [0, 1, 2] and (table.loc[1:, "clients_replied"] == 5).all()
    assert (table.loc[1:, ["clients_failed", "updates_rejected", "skipped"]] == 0).all().all()
    assert table.loc[2, "rsum"] != table.loc[0, "rsum"]
    users = [f"user_rsum[{k}]" for k in range(200)]
    assert set(users) <= set(table.columns) and table.loc[2, users].notna().all()  # one test image each at least
    sampled = [sample_partitions(0, r, range(200), 0.025) for r in (1, 2)]
    assert all(len(s) == 5 for s in sampled) and sampled[0] != sampled[1]
    # the final checkpoint, scored again outside the run, gives the run's own last row
    per_pair, rescored, _, server_round = score(run)
    assert server_round == 2 and [rescored[k] for k in range(200)] == table.loc[2, users].tolist()
    assert per_pair["oracle-image+oracle-text"]["rsum"] == table.loc[2, "rsum"]


def test_a_client_list_is_written_in_runs_and_read_back():
    ids = (8, 0, 1, 2, 5, 7, 9)
    assert format_client_list(ids) == "0-2,5,7-9"
    assert parse_client_list("clients", format_client_list(ids), 10) == (0, 1, 2, 5, 7, 8, 9)
    assert format_client_list(range(10_000)) == "0-9999" and format_client_list([]) == ""
