"""ServerApp side of seed 003's text task (task = text): maps nodes to devices, federates the text codec
with KeyedFedAvg (judged replies, the simulated network when client-devices is set), scores it after every
round, then runs the energy auction on the final codec's curves and writes the run's tables and plots."""

from __future__ import annotations

import logging
import time

from flwr.app import ArrayRecord, ConfigRecord, MetricRecord
from flwr.serverapp import Grid

from semfed import run_directory as rd
from semfed.config import SemfedConfig
from semfed.retrieval.report import write_network
from semfed.text import report
from semfed.text.data import TextData, load_text_data, shard, text_encoder
from semfed.text.energy_auction import compare_auctions
from semfed.text.evaluation import evaluate_codec
from semfed.text.metrics import SentenceSimilarity
from semfed.text.training import build_codec
from semfed.tracking import Tracking
from server.nodes import discover_partitions
from strategies.keyed_fedavg import KeyedFedAvg, judged_options, record_nbytes

log = logging.getLogger("semfed.server")


class TextRecorder:
    """Server-side evaluate_fn: every output dimension x eval SNR on the test sentences, long rows in
    text_metrics.csv (with the round's mean train loss and bytes), the checkpoint, one log line per round."""

    def __init__(self, cfg: SemfedConfig, run_dir, data: TextData, strategy: KeyedFedAvg, tracking: Tracking):
        self.cfg, self.run_dir, self.data, self.strategy, self.tracking = cfg, run_dir, data, strategy, tracking
        self.codec = build_codec(cfg, data).to(cfg.torch_device)
        self.similarity = SentenceSimilarity(text_encoder(cfg.text_encoder, cfg.text_words))
        self.table = None
        self.last_time = time.perf_counter()

    def __call__(self, server_round: int, arrays: ArrayRecord) -> MetricRecord:
        state = arrays.to_torch_state_dict()
        self.codec.load_state_dict(state)
        rows = evaluate_codec(self.codec, self.data.test, self.data.vocabulary, self.similarity, self.cfg.text_dims,
                              self.cfg.text_eval_snr_values, (self.cfg.text_channel,), self.cfg.seed, self.cfg.torch_device)
        stats = self.strategy.round_stats.get(server_round, {})
        losses = [m["train_loss"] for m in self.strategy.client_metrics.get(server_round, {}).values() if "train_loss" in m]
        for row in rows:
            row.update({"round": server_round, "train_loss": sum(losses) / len(losses) if losses else float("nan"),
                        "bytes_sent": stats.get("bytes_sent", 0), "bytes_received": stats.get("bytes_received", 0)})
        self.table = report.append_rows(self.run_dir, self.table, rows)
        self.tracking.log({"round": server_round, **{f"{metric}[d{r['dim']}/{r['snr']:g}dB]": r[metric]
                                                     for r in rows for metric in ("bleu4", "similarity")}})
        report.save_checkpoint(self.run_dir, {k: v.cpu() for k, v in state.items()}, server_round, self.cfg.to_run_config())
        now, seconds = time.perf_counter(), time.perf_counter() - self.last_time
        self.last_time = now
        top = max(self.cfg.text_eval_snr_values)
        scores = "  ".join(f"d={r['dim']} {r['bleu4']:.3f}/{r['similarity']:.3f}" for r in rows if r["snr"] == top)
        log.info("round %d/%d  clients %d  bytes %d sent, %d received  BLEU-4/similarity at %g dB: %s  %.1f s",
                 server_round, self.cfg.num_server_rounds, len(losses), stats.get("bytes_sent", 0),
                 stats.get("bytes_received", 0), top, scores, seconds)
        last = [r for r in rows if r["dim"] == max(self.cfg.text_dims) and r["snr"] == top][0]
        return MetricRecord({"bleu4": last["bleu4"], "similarity": last["similarity"]})


def run_text(grid: Grid, cfg: SemfedConfig) -> None:
    """The text run: node discovery, FedAvg rounds of the codec, the final score table and plot, then the
    second-price and learned auctions on the devices' values from those scores."""
    run_dir = rd.create_run_dir(cfg)  # refuses a directory that already holds text_metrics.csv
    handlers = rd.attach_log(run_dir)
    tracking = Tracking(cfg.tracking_sinks, run_dir, run_dir.relative_to(cfg.root / "runs").as_posix(),
                        cfg.to_run_config(), cfg.root)
    try:
        log.info("run directory %s; text codec, output dimensions %s, %d devices", run_dir, cfg.text_dims, cfg.text_devices)
        data = load_text_data(cfg)
        log.info("%d training / %d test sentences, vocabulary %d word pieces", len(data.train.ids), len(data.test.ids),
                 len(data.vocabulary))
        nodes = discover_partitions(grid, cfg.text_devices, cfg.round_timeout_s, "text-devices", "devices (one per client)")
        examples = {pid: cfg.text_steps_per_round * cfg.text_batch_size for pid in nodes}
        initial = ArrayRecord({k: v.cpu() for k, v in build_codec(cfg, data).state_dict().items()})
        strategy = KeyedFedAvg(nodes=nodes, fraction_train=cfg.fraction_train, fraction_evaluate=0.0,
                               min_train_nodes=cfg.min_replies, min_replies=cfg.min_replies,
                               **judged_options(cfg, examples), network=cfg.network(examples),
                               upload_bytes={pid: record_nbytes(initial) for pid in nodes})
        log.info("device shares: %s sentences", [len(shard(cfg, data.train, pid)) for pid in sorted(nodes)])
        recorder = TextRecorder(cfg, run_dir, data, strategy, tracking)
        strategy.start(grid=grid, initial_arrays=initial, num_rounds=cfg.num_server_rounds,
                       timeout=cfg.round_timeout_s, train_config=ConfigRecord({}), evaluate_fn=recorder)
        scores = report.write_scores(run_dir, recorder.table)
        report.plot_scores(run_dir, recorder.table, f"text codec, round {cfg.num_server_rounds}, seed {cfg.seed}")
        log.info("final scores per output dimension and SNR (%s):\n%s", report.SCORES, scores.to_string(index=False))
        auctions = compare_auctions(cfg, recorder.table)
        auctions.to_csv(run_dir / report.AUCTION, index=False)
        report.plot_auction(run_dir, auctions, f"energy auction ({cfg.auction_value}), seed {cfg.seed}")
        log.info("revenue of the access point per bidder count (%s):\n%s", report.AUCTION, auctions.to_string(index=False))
        if strategy.network is not None:
            write_network(run_dir, strategy.network_log)
        log.info("done: %s", run_dir)
    finally:
        tracking.close()
        rd.detach_log(handlers)
