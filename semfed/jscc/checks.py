"""What only a D-JSCC run checks in its config (the jscc task's checks, semfed.tasks): the names against
the registries, the two-stage rounds and latent size, and that the crops fit the images. ValueError naming
the key; the config turns it into a ConfigError."""

from __future__ import annotations

from typing import Any

from semfed.channels import CHANNELS
from semfed.data.image_folder import HOLDOUT_LAYOUTS, held_out_rows, held_out_tile_count, image_sizes
from semfed.jscc.decoders import check_decoder_specs
from semfed.jscc.encoder import latent_channels
from semfed.jscc.framework_registry import FRAMEWORKS
from semfed.scheduling import SCHEDULERS


def check_jscc(cfg: Any) -> None:
    """The channel, framework and decoder families are registered; a two-stage framework has its stage-1
    rounds; the bandwidth ratio gives whole latent channels, which the prompts divide; no simulated network
    (retrieval's only)."""
    for key, value, registry in (("jscc-channel", cfg.jscc_channel, CHANNELS),
                                 ("jscc-framework", cfg.jscc_framework, FRAMEWORKS),
                                 ("jscc-holdout-layout", cfg.jscc_holdout_layout, HOLDOUT_LAYOUTS)):
        if value not in registry:
            raise ValueError(f"{key}: {value!r} is not one of {tuple(registry)}")
    check_decoder_specs(cfg.decoder_specs)
    if cfg.client_devices:
        raise ValueError("client-devices: the simulated network covers retrieval runs only; set it to ''")
    if SCHEDULERS[cfg.scheduling].auction:
        raise ValueError("scheduling: the auction schedules retrieval users only; set it to 'uniform'")
    if cfg.churn:
        raise ValueError("churn: users joining and leaving cover retrieval runs only; set it to ''")
    if cfg.compression.active:
        raise ValueError("update-compression: compressed updates cover retrieval runs only; set it to 'none'")
    if FRAMEWORKS[cfg.jscc_framework].two_stage and cfg.jscc_stage1_rounds > cfg.num_server_rounds:
        raise ValueError(f"jscc-stage1-rounds: {cfg.jscc_stage1_rounds} stage-1 rounds exceed "
                         f"num-server-rounds = {cfg.num_server_rounds}")

    try:
        channels = latent_channels(cfg.jscc_bandwidth_ratio)
    except ValueError as error:
        raise ValueError(f"jscc-bandwidth-ratio: {error}") from None
    if cfg.jscc_prompts and channels % cfg.jscc_prompts:
        raise ValueError(f"jscc-prompts: {cfg.jscc_prompts} prompts do not divide the {channels} latent channels "
                         f"of jscc-bandwidth-ratio = {cfg.jscc_bandwidth_ratio:g}")


def check_jscc_images(cfg: Any) -> None:
    """jscc-crop-size fits at least one training and one evaluation image (smaller images are skipped); with
    jscc-holdout, the training images' kept rows and the evaluation images' held-out bands, or with the 'tiles'
    layout at least one held-out tile among the evaluation images."""
    holdout = cfg.jscc_holdout
    if holdout and cfg.jscc_holdout_layout == "tiles":
        folder, size = cfg.jscc_eval_images or cfg.jscc_images, cfg.jscc_crop_size
        try:
            held = held_out_tile_count(image_sizes(folder), holdout, size)
        except ValueError as error:
            raise ValueError(f"jscc-eval-images: {error}") from None
        if not held:
            raise ValueError(f"jscc-holdout: {holdout:g} of the fewest {size} px tiles of an image of jscc-eval-images "
                             f"({folder or 'the bundled default'}) rounds to no tile")
        holdout = 0  # what is left to check: the crops fit the training images
    parts = {"jscc-images": (cfg.jscc_images, lambda h: h - held_out_rows(h, holdout), "rows not held out"),
             "jscc-eval-images": (cfg.jscc_eval_images or cfg.jscc_images,
                                  lambda h: held_out_rows(h, holdout) if holdout else h, "held-out bands")}
    for key, (folder, rows, part) in parts.items():
        if key == "jscc-eval-images" and not holdout and folder == cfg.jscc_images:
            continue  # the training images, checked above
        try:
            largest = max(min(rows(height), width) for height, width in image_sizes(folder))
        except ValueError as error:
            raise ValueError(f"{key}: {error}") from None
        if cfg.jscc_crop_size > largest:
            what = f"the {part} (jscc-holdout = {holdout:g}) of" if holdout else "no image of"
            raise ValueError(f"jscc-crop-size: {cfg.jscc_crop_size} px crops fit {what} {key} "
                             f"({folder or 'the bundled default'}): the largest shorter side is {largest} px")
