"""The jobs a federation can do (`task`): the one table of task names. An entry names the functions
the ServerApp and the ClientApp run for it as 'module:function' strings, imported on first use, so a
run imports only its own task's models and semfed itself never imports Flower. Torch-free: the config
reads it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any


@dataclass(frozen=True)
class Task:
    """server: 'module:function', called as function(grid, cfg) by server.app (the whole run).
    client: 'module:function', called as function(msg, context, cfg) -> Message by clients.app's train.
    client_evaluate: the same for clients.app's evaluate ('' = the task sends no EVALUATE messages).
    per_client: cfg -> the parsed per-client items (one SuperNode each).
    check: 'module:function', function(cfg) raises ValueError naming the key for values only this task
    cannot run with ('' = none). check_machine: the same for what only this machine can tell (once per run).
    resumable: a run can continue from its checkpoint (resume = true). takes_pool: its server samples users by
    partition id each round, so a pool of SuperNodes can play them (supernode-pool).
    rounds_table, final_table: the run directory's per-round table (a row per round at least) and the
    table written when the run ends (a sweep counts a point finished when both are complete).
    sweep_report: 'module:function', called as function(sweep, runs, out) -> (table, summary text) by
    experiments.sweep on a sweep of this task's runs (it writes its plots into `out`)."""

    server: str
    client: str
    client_evaluate: str
    per_client: Callable[[Any], tuple]
    check: str
    check_machine: str
    resumable: bool
    takes_pool: bool
    rounds_table: str
    final_table: str
    sweep_report: str


def load(target: str) -> Callable:
    """The function (or class) a 'module:name' string names, imported now."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def check_retrieval(cfg: Any) -> None:
    """Retrieval matches images with captions: some client must hold an image and some a text encoder."""
    image = any(p.image_encoder for p in cfg.client_profiles)
    text = any(p.text_encoder for p in cfg.client_profiles)
    if not (image and text):
        raise ValueError(f"clients: no client has a {'image' if not image else 'text'} encoder; retrieval matches "
                         "images with captions, so the federation needs both among its clients")


TASKS = {
    # seed 000: heterogeneous users federate a graph adapter aligned to the SKB; retrieval RSUM
    "retrieval": Task(server="server.retrieval:run_retrieval", client="clients.retrieval:train",
                      client_evaluate="clients.retrieval:personalise", per_client=attrgetter("client_profiles"), check="semfed.tasks:check_retrieval",
                      check_machine="", resumable=True, takes_pool=True, rounds_table="metrics.csv", final_table="groups.csv",
                      sweep_report="experiments.sweep_results:report"),
    # seed 001: one BS encoder, one decoder per user, over AWGN / Rayleigh channels; PSNR and MS-SSIM
    "jscc": Task(server="server.jscc:run_jscc", client="clients.jscc:train", client_evaluate="",
                 per_client=attrgetter("decoder_specs"),
                 check="semfed.jscc.checks:check_jscc", check_machine="semfed.jscc.checks:check_jscc_images",
                 resumable=False, takes_pool=False, rounds_table="jscc_metrics.csv", final_table="jscc_table.csv",
                 sweep_report="experiments.jscc_results:report"),
    # seed 003: wireless-powered devices federate a semantic text codec; BLEU, sentence similarity, energy auction
    "text": Task(server="server.text:run_text", client="clients.text:train", client_evaluate="",
                 per_client=attrgetter("text_device_ids"), check="semfed.text.checks:check_text",
                 check_machine="semfed.text.checks:check_text_corpus", resumable=False, takes_pool=False,
                 rounds_table="text_metrics.csv",
                 final_table="auction.csv", sweep_report="experiments.text_results:report"),
}
