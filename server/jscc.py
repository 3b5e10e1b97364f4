"""ServerApp side of D-JSCC (task = jscc): maps nodes to users, runs the configured framework
strategy, evaluates every decoder after every round and writes the run's tables, plot and checkpoint."""

from __future__ import annotations

import logging
import time

from flwr.app import ArrayRecord, ConfigRecord, MetricRecord
from flwr.serverapp import Grid

from semfed import run_directory as rd
from semfed.config import SemfedConfig
from semfed.jscc import report
from semfed.jscc.federation import (
    ENCODER,
    anchor_partition,
    build_encoder,
    build_user_decoder,
    decoder_prefix,
    evaluate_decoders,
    initial_state,
    run_evaluation_crops,
    state_digest,
    unprefixed,
)
from semfed.jscc.framework_registry import FRAMEWORKS
from semfed.jscc.plateau import Plateau, write_phases
from semfed.tasks import load
from semfed.tracking import Tracking
from server.nodes import discover_partitions
from strategies.jscc_fedavg import JSCCFedAvg
from strategies.keyed_fedavg import judged_options

log = logging.getLogger("semfed.server")


def build_strategy(cfg: SemfedConfig, nodes: dict[int, int]) -> JSCCFedAvg:
    """The strategy of cfg.jscc_framework (FRAMEWORKS); a two-stage one also gets the stage-1 rounds and
    the anchor client. A client's num-examples is capped at the crops it trains on."""
    framework = FRAMEWORKS[cfg.jscc_framework]
    options = judged_options(cfg, {pid: cfg.jscc_steps_per_round * cfg.jscc_batch_size for pid in nodes})
    if framework.two_stage:
        options.update(stage1_rounds=cfg.jscc_stage1_rounds, anchor=anchor_partition(cfg))
    return load(framework.strategy)(nodes, **options)


class PlateauReached(Exception):
    """Raised after recording the round at which the run's last phase plateaued: ends strategy.start early."""


class PhaseWatch:
    """The plateau rule (semfed.jscc.plateau, jscc-plateau-rounds > 0) on each phase of the strategy: ends a
    phase that plateaus (strategy.end_phase) and writes every ended phase to the run's PLATEAU file. A phase
    is scored once per cycle (strategy.cycle_rounds: every round, or for iterative once every client has
    had its turn) on the mean of the cycle's round scores, so patience counts cycles."""

    def __init__(self, cfg: SemfedConfig, run_dir, strategy: JSCCFedAvg):
        self.cfg, self.run_dir, self.strategy = cfg, run_dir, strategy
        self.phases: list[dict] = []
        self.name, self.first_round, self.rule, self.cycle = None, 0, None, []

    def after_round(self, server_round: int, rows: list[dict]) -> None:
        """Score server_round (mean PSNR of the phase's decoders over the eval SNRs on the training channel)."""
        name = self.strategy.phase(server_round)
        if name != self.name:
            if self.name is not None:
                self.close(server_round - 1, plateaued=False)  # the previous phase ended at its round cap
            self.name, self.first_round, self.cycle = name, server_round, []
            self.rule = Plateau(self.cfg.jscc_plateau_rounds, self.cfg.jscc_plateau_db, self.cfg.jscc_plateau_smoothing)
        scored = set(self.strategy.scored_partitions(server_round))
        scores = [r["psnr"] for r in rows if r["channel"] == self.cfg.jscc_channel and r["decoder"] in scored]
        self.cycle.append(sum(scores) / len(scores))
        if len(self.cycle) < self.strategy.cycle_rounds():
            return
        score, self.cycle = sum(self.cycle) / len(self.cycle), []
        if self.rule.update(server_round, score):
            self.close(server_round, plateaued=True)
            log.info("round %d: phase %s plateaued (best %.2f dB at round %d)", server_round, self.phases[-1]["name"],
                     self.rule.best, self.rule.best_round)
            if not self.strategy.end_phase(server_round):
                raise PlateauReached(server_round)

    def finish(self, last_round: int) -> None:
        """The run reached its round cap: the phase still open ended there without plateauing."""
        if self.name is not None:
            self.close(last_round, plateaued=False)

    def close(self, last_round: int, plateaued: bool) -> None:
        """Record the phase as ended after last_round; its window: the rounds of its last patience cycles."""
        window = max(self.first_round, last_round - self.rule.patience * self.strategy.cycle_rounds() + 1)
        self.phases.append({"name": self.name, "first_round": self.first_round, "last_round": last_round,
                            "best_psnr": self.rule.best, "best_round": self.rule.best_round, "plateaued": plateaued,
                            "window": [window, last_round]})
        self.name = None
        write_phases(self.run_dir, self.phases)


class JSCCRecorder:
    """Server-side evaluate_fn: every decoder x eval SNR x channel, long rows in jscc_metrics.csv
    (with each client's train loss and encoder/decoder digests), plot and checkpoint per round."""

    def __init__(self, cfg: SemfedConfig, run_dir, strategy: JSCCFedAvg, tracking: Tracking):
        self.cfg, self.run_dir, self.strategy, self.tracking = cfg, run_dir, strategy, tracking
        self.watch = PhaseWatch(cfg, run_dir, strategy) if cfg.jscc_plateau_rounds else None
        self.device = cfg.torch_device
        self.encoder = build_encoder(cfg).to(self.device)
        self.decoders = [build_user_decoder(cfg, pid).to(self.device) for pid in range(len(cfg.decoder_specs))]
        self.images = run_evaluation_crops(cfg).to(self.device)
        self.table = None
        self.last_time = time.perf_counter()

    def __call__(self, server_round: int, arrays: ArrayRecord) -> MetricRecord:
        state = arrays.to_torch_state_dict()
        encoder_state = unprefixed(state, ENCODER)
        decoder_states = {pid: unprefixed(state, decoder_prefix(pid)) for pid in range(len(self.decoders))}
        self.encoder.load_state_dict(encoder_state)
        for pid, decoder in enumerate(self.decoders):
            decoder.load_state_dict(decoder_states[pid])
        rows = evaluate_decoders(self.cfg, self.encoder, self.decoders, self.images)
        clients = self.strategy.client_metrics.get(server_round, {})
        encoder_digest = state_digest(encoder_state)
        digests = {pid: state_digest(s) for pid, s in decoder_states.items()}
        for row in rows:
            row.update({"round": server_round, "train_loss": clients.get(row["decoder"], {}).get("train_loss", float("nan")),
                        "encoder_sha256": encoder_digest, "decoder_sha256": digests[row["decoder"]]})
        columns = ["round", "decoder", "family", "channel", "snr", "psnr", "ms_ssim", "prior_kl", "prompts", "train_loss",
                   "encoder_sha256", "decoder_sha256"]
        self.table = report.append_rows(self.run_dir, self.table, [{c: r[c] for c in columns} for r in rows])
        self.tracking.log({"round": server_round, **{f"{metric}[{r['decoder']}:{r['family']}/{r['channel']}/{r['snr']:g}dB]":
                                                     r[metric] for r in rows for metric in ("psnr", "ms_ssim")}})
        report.save_checkpoint(self.run_dir, encoder_state, decoder_states,
                               [s.family for s in self.cfg.decoder_specs], server_round, self.cfg.to_run_config())
        now, seconds = time.perf_counter(), time.perf_counter() - self.last_time
        self.last_time = now
        self.log_round(server_round, rows, seconds)
        if self.watch is not None and server_round > 0:
            self.watch.after_round(server_round, rows)
        last = self.table[self.table["round"] == server_round]
        return MetricRecord({"psnr": float(last["psnr"].mean()), "ms_ssim": float(last["ms_ssim"].mean())})

    def log_round(self, server_round: int, rows: list[dict], seconds: float) -> None:
        tasks = self.strategy.assignments.get(server_round, [])
        trained = ", ".join(f"{t.partition}:{t.role}" for t in tasks) or "-"
        stats = self.strategy.round_stats.get(server_round, {})
        top, channel = max(self.cfg.eval_snrs), self.cfg.jscc_channel
        scores = "  ".join(f"{r['decoder']}:{r['family']} {r['psnr']:.2f} dB/{r['ms_ssim']:.3f}"
                           for r in rows if r["channel"] == channel and r["snr"] == top)
        log.info("round %d/%d  trained [%s]  bytes %d sent, %d received  %s %g dB PSNR/MS-SSIM: %s  %.1f s",
                 server_round, self.cfg.num_server_rounds, trained, stats.get("bytes_sent", 0),
                 stats.get("bytes_received", 0), channel, top, scores, seconds)


def run_jscc(grid: Grid, cfg: SemfedConfig) -> None:
    """The D-JSCC run: node discovery, the framework's rounds, the final tables and plot."""
    run_dir = rd.create_run_dir(cfg)  # refuses a directory that already holds jscc_metrics.csv
    handlers = rd.attach_log(run_dir)
    tracking = Tracking(cfg.tracking_sinks, run_dir, run_dir.relative_to(cfg.root / "runs").as_posix(),
                        cfg.to_run_config(), cfg.root)
    try:
        log.info("run directory %s; D-JSCC framework %s, decoders %s", run_dir, cfg.jscc_framework, cfg.jscc_decoders)
        nodes = discover_partitions(grid, len(cfg.decoder_specs), cfg.round_timeout_s, "jscc-decoders",
                                    "decoders (one per client)")
        strategy = build_strategy(cfg, nodes)
        recorder = JSCCRecorder(cfg, run_dir, strategy, tracking)
        initial = ArrayRecord(initial_state(cfg))
        try:
            strategy.start(grid=grid, initial_arrays=initial, num_rounds=cfg.num_server_rounds,
                           timeout=cfg.round_timeout_s, train_config=ConfigRecord({}), evaluate_fn=recorder)
        except PlateauReached as stop:
            log.info("stopped after round %s of at most %d: every phase plateaued", stop, cfg.num_server_rounds)
        else:
            if recorder.watch is not None:
                recorder.watch.finish(cfg.num_server_rounds)
        table = report.paper_table(recorder.table, cfg.jscc_framework)
        table.to_csv(run_dir / report.TABLE, index=False)
        report.plot_psnr(run_dir, recorder.table, f"D-JSCC {cfg.jscc_framework}, round {int(recorder.table['round'].max())}")
        log.info("final PSNR / MS-SSIM per decoder and SNR (%s):\n%s", report.TABLE, table.to_string(index=False))
        log.info("done: %s", run_dir)
    finally:
        tracking.close()
        rd.detach_log(handlers)
