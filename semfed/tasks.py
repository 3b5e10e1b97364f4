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
    per_client: cfg -> the parsed per-client items (one SuperNode each).
    check: cfg -> None, raises ValueError naming the key for values only this task cannot run with.
    check_machine: cfg -> None, the same for what only this machine can tell (once per run).
    resumable: a run can continue from its checkpoint (resume = true).
    rounds_table, final_table: the run directory's per-round table (a row per round at least) and the
    table written when the run ends (a sweep counts a point finished when both are complete).
    sweep_report: 'module:function', called as function(sweep, runs, out) -> (table, summary text) by
    experiments.sweep on a sweep of this task's runs (it writes its plots into `out`)."""

    server: str
    client: str
    per_client: Callable[[Any], tuple]
    check: Callable[[Any], None]
    check_machine: Callable[[Any], None]
    resumable: bool
    rounds_table: str
    final_table: str
    sweep_report: str


def load(target: str) -> Callable:
    """The function a 'module:function' string names (imported now)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def check_retrieval(cfg: Any) -> None:
    """Retrieval matches images with captions: some client must hold an image and some a text encoder."""
    image = any(p.image_encoder for p in cfg.client_profiles)
    text = any(p.text_encoder for p in cfg.client_profiles)
    if not (image and text):
        raise ValueError(f"clients: no client has a {'image' if not image else 'text'} encoder; retrieval matches "
                         "images with captions, so the federation needs both among its clients")


def check_jscc(cfg: Any) -> None:
    """The channel, framework and decoder families are registered; a two-stage framework has its stage-1
    rounds; the bandwidth ratio gives whole latent channels."""
    # imported here: the registries and models import torch, which only D-JSCC runs need
    from semfed.channels import CHANNELS
    from semfed.jscc.decoders import check_decoder_specs
    from semfed.jscc.encoder import latent_channels
    from semfed.jscc.framework_registry import FRAMEWORKS

    for key, value, registry in (("jscc-channel", cfg.jscc_channel, CHANNELS),
                                 ("jscc-framework", cfg.jscc_framework, FRAMEWORKS)):
        if value not in registry:
            raise ValueError(f"{key}: {value!r} is not one of {tuple(registry)}")
    check_decoder_specs(cfg.decoder_specs)
    if FRAMEWORKS[cfg.jscc_framework].two_stage and cfg.jscc_stage1_rounds > cfg.num_server_rounds:
        raise ValueError(f"jscc-stage1-rounds: {cfg.jscc_stage1_rounds} stage-1 rounds exceed "
                         f"num-server-rounds = {cfg.num_server_rounds}")

    try:
        latent_channels(cfg.jscc_bandwidth_ratio)
    except ValueError as error:
        raise ValueError(f"jscc-bandwidth-ratio: {error}") from None


def check_jscc_images(cfg: Any) -> None:
    """jscc-crop-size fits at least one training and one evaluation image (smaller images are skipped)."""
    from semfed.data.image_folder import load_images  # imported here: decodes images, imports torch

    for key, folder in {"jscc-images": cfg.jscc_images, "jscc-eval-images": cfg.jscc_eval_images}.items():
        if key == "jscc-eval-images" and folder in ("", cfg.jscc_images):
            continue  # the training images, checked above
        try:
            largest = max(min(image.shape[:2]) for image in load_images(folder))
        except ValueError as error:
            raise ValueError(f"{key}: {error}") from None
        if cfg.jscc_crop_size > largest:
            raise ValueError(f"jscc-crop-size: {cfg.jscc_crop_size} px crops fit no image of {key} "
                             f"({folder or 'the bundled default'}): the largest shorter side is {largest} px")


def nothing(cfg: Any) -> None:
    """No task-specific check."""


TASKS = {
    # seed 000: heterogeneous users federate a graph adapter aligned to the SKB; retrieval RSUM
    "retrieval": Task("server.retrieval:run_retrieval", "clients.retrieval:train", attrgetter("client_profiles"),
                      check_retrieval, nothing, resumable=True, rounds_table="metrics.csv", final_table="groups.csv",
                      sweep_report="experiments.sweep_results:report"),
    # seed 001: one BS encoder, one decoder per user, over AWGN / Rayleigh channels; PSNR and MS-SSIM
    "jscc": Task("server.jscc:run_jscc", "clients.jscc:train", attrgetter("decoder_specs"), check_jscc,
                 check_jscc_images, resumable=False, rounds_table="jscc_metrics.csv", final_table="jscc_table.csv",
                 sweep_report="experiments.jscc_results:report"),
}
