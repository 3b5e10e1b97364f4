"""One typed, validated configuration object for a semfed run.

Built once from Flower's run config (the flat ``key = value`` table under
``[tool.flwr.app.config]`` in pyproject.toml, plus ``--run-config`` overrides).
Any unknown key or bad value raises :class:`ConfigError` naming the key and what
is allowed, before anything starts. ``from_run_config`` checks only the values (a client
does so once per process); ``check_environment`` checks the machine (the work directory, a
GPU, what the task checks) once, in the ServerApp and before submitting
(scripts/check_config.py). The structured string values are parsed by semfed.config_values,
once per config object; the choices are the keys of their registries (docs/extending.md).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import tempfile
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from semfed.aggregation import AGGREGATIONS
from semfed.churn import Churn, parse_churn
from semfed.compression import Compression, parse_compression
from semfed.config_values import (
    DETECTOR_ADAPTATIONS,
    ClientProfile,
    TEXT_SCORES,
    ConfigError,
    DecoderSpec,
    NOISE_KINDS,
    NoiseGroup,
    REGION_FEATURES,
    REGION_SOURCES,
    check_text_encoder,
    encoder_entry,
    encoder_names,
    parse_client_list,
    parse_client_profiles,
    parse_bidder_counts,
    parse_decoder_specs,
    parse_distance_range,
    parse_even_dims,
    parse_noise_groups,
    parse_poison_kinds,
    parse_snrs,
)
from semfed.label_policies import LABEL_POLICIES, LabelPolicy
from semfed.methods import METHODS, Method
from semfed.network import (ALLOCATIONS, FADINGS, LINK_RATES, STRAGGLER_POLICIES, Network, load_snr_trace, mean_snrs,
                            parse_devices, parse_snr_range)
from semfed.sampling import slots
from semfed.scheduling import SCHEDULERS
from semfed.tasks import TASKS, Task, load
from semfed.tracking import parse_tracking

DATASETS = ("scenes", "flickr30k")
FLICKR30K_LAYOUTS = ("karpathy", "scan")
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
FAIL_MODES = ("raise", "hang")  # test-only failure injection (semfed.fault_injection)
JSCC_MIN_CROP = 16  # crops are multiples of 4 (the encoder downsamples by 4); MS-SSIM takes 3 scales at 16 px
#: Largest seed: every seed derived from it (semfed.seeds: seed * 1_000_003 + ...) stays
#: far below torch.manual_seed's 2**64 - 1, and the seed itself within numpy's legacy 2**32 - 1.
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class SemfedConfig:
    """Every knob of a run. Field names are the run-config keys with '-' -> '_'."""

    seed: int
    num_server_rounds: int
    work_dir: str
    run_name: str
    skb_encoder: str
    scenes_seed: int
    scenes_train: int
    scenes_val: int
    scenes_test: int
    scenes_image_size: int
    dataset: str
    flickr30k_layout: str
    flickr30k_path: str
    flickr30k_images: str
    flickr30k_concepts: int
    partitioning: str
    dirichlet_alpha: float
    clients: str
    frcnn_r50_weights: str
    frcnn_mnv3_weights: str
    detector_adaptation: str
    detector_backbone_epochs: int
    frcnn_r50_input_size: int
    frcnn_mnv3_input_size: int
    max_regions: int
    region_source: str
    region_features: str
    max_tokens: int
    adapter_width: int
    gnn_layers: int
    intra_top_k: int
    kernel_sigma: float
    skb_top_k: int
    attention_scale: float
    skb_temperature: float
    triplet_margin: float
    skb_reg_weight: float
    batch_size: int
    learning_rate: float
    fraction_train: float
    supernode_pool: int
    device: str
    label_noise: str
    label_noise_kind: str
    label_handling: str
    label_confidence_threshold: float
    label_warmup_rounds: int
    label_prune_rounds: int
    label_prune_precision: float
    label_diagnostics: bool
    task: str
    method: str
    eval_every: int
    personal_finetune_epochs: int
    jscc_framework: str
    jscc_decoders: str
    jscc_images: str
    jscc_eval_images: str
    jscc_crop_size: int
    jscc_holdout: float
    jscc_holdout_layout: str
    jscc_batch_size: int
    jscc_steps_per_round: int
    jscc_stage1_rounds: int
    jscc_plateau_rounds: int
    jscc_plateau_db: float
    jscc_plateau_smoothing: int
    jscc_bandwidth_ratio: float
    jscc_channel: str
    jscc_snr_set: str
    jscc_eval_snrs: str
    jscc_encoder_width: int
    jscc_learning_rate: float
    jscc_prompts: int
    jscc_prior_kl_weight: float
    text_devices: int
    text_corpus: str
    text_encoder: str
    text_train_sentences: int
    text_eval_sentences: int
    text_words: int
    text_output_dims: str
    text_channel: str
    text_snr_set: str
    text_eval_snrs: str
    text_batch_size: int
    text_steps_per_round: int
    text_learning_rate: float
    text_feature_bits: int
    hap_power_w: float
    hap_distance_m: str
    auction_bidders: str
    auction_value: str
    auction_train_steps: int
    min_replies: int
    round_timeout_s: float
    fail_fraction: float
    fail_mode: str
    poison_clients: str
    poison_kind: str
    aggregation: str
    fairness_q: float
    trim_fraction: float
    krum_byzantine: int
    max_client_examples: float
    update_norm_multiple: float
    ledger_dir: str
    client_devices: str
    uplink_bandwidth_mhz: float
    uplink_snr_db: str
    uplink_snr_trace: str
    uplink_rate: str
    uplink_allocation: str
    uplink_fading: str
    round_deadline_s: float
    straggler_policy: str
    stale_weight: float
    churn: str
    scheduling: str
    update_compression: str
    error_feedback: bool
    tracking: str
    resume: bool
    stop_after_round: int

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> "SemfedConfig":
        """Validate a flat run config (keys with '-') into a SemfedConfig."""
        known = {f.name.replace("_", "-"): f for f in fields(cls)}
        for key in run_config:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(sorted(known))}"
                raise ConfigError(f"unknown config key {key!r}; {hint}")
        missing = sorted(set(known) - set(run_config))
        if missing:
            raise ConfigError(f"missing config key(s): {', '.join(missing)}")
        values = {}
        for key, f in known.items():
            values[f.name] = _coerce(key, run_config[key], f.type)
            if isinstance(values[f.name], float) and not math.isfinite(values[f.name]):
                raise ConfigError(f"{key}: must be a finite number, got {values[f.name]}")
        config = cls(**values)
        config._check_ranges()
        return config

    def _check_ranges(self) -> None:
        positive = ["num_server_rounds", "eval_every", "scenes_train", "scenes_val", "scenes_test", "max_regions",
                    "max_tokens", "detector_backbone_epochs", "adapter_width", "gnn_layers", "intra_top_k",
                    "skb_top_k", "batch_size"]
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{_key(name)}: must be an integer >= 1, got {getattr(self, name)}")
        for name in ["dirichlet_alpha", "kernel_sigma", "attention_scale", "skb_temperature", "learning_rate"]:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{_key(name)}: must be > 0, got {getattr(self, name)}")
        for name in ["triplet_margin", "skb_reg_weight"]:
            if getattr(self, name) < 0:
                raise ConfigError(f"{_key(name)}: must be >= 0, got {getattr(self, name)}")
        if not 0 < self.fraction_train <= 1:
            raise ConfigError(f"fraction-train: must be in (0, 1], got {self.fraction_train}")
        if self.scenes_image_size < 32:
            raise ConfigError(f"scenes-image-size: must be >= 32 pixels, got {self.scenes_image_size}")
        for name in ["frcnn_r50_input_size", "frcnn_mnv3_input_size"]:
            if getattr(self, name) < 32:
                raise ConfigError(f"{_key(name)}: must be >= 32 pixels, got {getattr(self, name)}")
        choices = {"partitioning": ("iid", "dirichlet"), "region_source": REGION_SOURCES,
                   "region_features": tuple(REGION_FEATURES), "detector_adaptation": tuple(DETECTOR_ADAPTATIONS),
                   "device": ("auto", "cpu", "cuda"), "label_noise_kind": NOISE_KINDS,
                   "label_handling": tuple(LABEL_POLICIES), "method": tuple(METHODS), "task": tuple(TASKS)}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{_key(name)}: {getattr(self, name)!r} is not one of {allowed}")
        if not Path(self.work_dir).expanduser().is_absolute():
            raise ConfigError(f"work-dir: must be an absolute path (or start with ~), got {self.work_dir!r}")
        for name in ["frcnn_r50_weights", "frcnn_mnv3_weights"]:
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ConfigError(f"{_key(name)}: weights file {path!r} does not exist")
        check_text_encoder("skb-encoder", self.skb_encoder)
        if encoder_entry(self.skb_encoder).ground_truth:
            raise ConfigError(f"skb-encoder: {self.skb_encoder!r} has no sentence embedding for the SKB's concepts; "
                              "use a language model ('minilm' or hf@/abs/dir)")
        for text_encoder in sorted({p.text_encoder for p in self.client_profiles} - {None}):
            check_text_encoder("clients", text_encoder)
        if self.scenes_seed < 0:
            raise ConfigError(f"scenes-seed: must be >= 0, got {self.scenes_seed}")
        if not 0 < self.label_confidence_threshold < 1:
            raise ConfigError(f"label-confidence-threshold: must be in (0, 1), got {self.label_confidence_threshold}")
        if self.label_warmup_rounds < 0:
            raise ConfigError(f"label-warmup-rounds: must be >= 0, got {self.label_warmup_rounds}")
        if self.label_prune_rounds < 1:
            raise ConfigError(f"label-prune-rounds: must be >= 1, got {self.label_prune_rounds}")
        if not 0 < self.label_prune_precision <= 1:
            raise ConfigError(f"label-prune-precision: must be in (0, 1], got {self.label_prune_precision}")
        _ = self.noise_groups  # parsed here, once: a bad label-noise is refused now
        if self.label_policy.uses_consensus and not self.training_method.aggregates:
            raise ConfigError(f"label-handling: {self.label_handling!r} needs a federation's consensus; method "
                              f"{self.method!r} has none (use one of "
                              f"{[n for n, p in LABEL_POLICIES.items() if not p.uses_consensus]})")
        if self.training_method.pooled and self.label_policy.scores:
            raise ConfigError(f"label-handling: the {self.method} bound trains on every label; use one that does not "
                              f"score labels ({[n for n, p in LABEL_POLICIES.items() if not p.scores]})")
        if self.personal_finetune_epochs < 0:
            raise ConfigError(f"personal-finetune-epochs: must be an integer >= 0, got {self.personal_finetune_epochs}")
        if self.personal_finetune_epochs and not self.training_method.aggregates:
            raise ConfigError(f"personal-finetune-epochs: method {self.method!r} has no global adapter for users to "
                              "personalise; use a method that aggregates")
        if self.resume and not self.training_method.resumable:
            raise ConfigError(f"resume: method {self.method!r} cannot resume (its per-client or pooled state is not "
                              "checkpointed); start it again")
        self._check_pool()
        self._check_dataset()
        self._check_robustness()
        self._check_jscc()
        self._check_text()
        self._check_network()
        self._run_task_check(self.job.check)

    def _check_pool(self) -> None:
        """supernode-pool: P SuperNodes that play the round's sampled users (retrieval, aggregating methods)."""
        if not self.supernode_pool:
            return
        users = len(self.client_profiles)
        if not self.job.takes_pool or self.training_method.pooled:
            raise ConfigError(f"supernode-pool: only retrieval runs whose users train on SuperNodes take a pool "
                              f"(task {self.task!r}, method {self.method!r})")
        if not 0 < self.supernode_pool <= users:
            raise ConfigError(f"supernode-pool: must be 0 (one SuperNode per user) or 1..{users} (the users), "
                              f"got {self.supernode_pool}")
        if (sampled := slots(users, self.fraction_train, self.min_replies)) > self.supernode_pool:
            raise ConfigError(f"supernode-pool: {self.supernode_pool} SuperNodes cannot play the {sampled} users "
                              f"sampled per round (fraction-train {self.fraction_train} of {users}, min-replies "
                              f"{self.min_replies}); raise the pool or lower fraction-train")
        if self.personal_finetune_epochs or self.compression.active:
            raise ConfigError("supernode-pool: personalisation (every user at once) and update-compression (error "
                              "feedback kept on the node) need one SuperNode per user")

    def _check_dataset(self) -> None:
        """The dataset keys, and that every client's image encoder can read the dataset."""
        choices = {"dataset": DATASETS, "flickr30k_layout": FLICKR30K_LAYOUTS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{_key(name)}: {getattr(self, name)!r} is not one of {allowed}")
        if self.flickr30k_concepts < 1:
            raise ConfigError(f"flickr30k-concepts: must be an integer >= 1, got {self.flickr30k_concepts}")
        image_encoders = {p.image_encoder for p in self.client_profiles} - {None}
        scan = self.dataset == "flickr30k" and self.flickr30k_layout == "scan"
        precomputed = encoder_names(lambda e: e.precomputed)
        reading_images = sorted(e for e in image_encoders if not encoder_entry(e).precomputed)
        if scan and reading_images:
            raise ConfigError(f"clients: image encoder(s) {reading_images} need images, but flickr30k-layout='scan' "
                              f"has precomputed region features only: use {' or '.join(map(repr, precomputed))}")
        misplaced = sorted(image_encoders & set(precomputed))
        if misplaced and not scan:
            raise ConfigError(f"clients: image encoder {misplaced[0]!r} reads precomputed features, which only "
                              "dataset='flickr30k' with flickr30k-layout='scan' has")
        clients = len(self.client_profiles)
        needed = clients if self.partitioning == "iid" else 2 * clients  # dirichlet: at least 2 images each
        if self.dataset == "scenes" and self.scenes_train < needed:
            raise ConfigError(f"clients: {clients} clients need at least {needed} training images under "
                              f"partitioning={self.partitioning!r}, and scenes-train is {self.scenes_train}: some client "
                              "would get no data")
        oracles = sorted({e for p in self.client_profiles for e in p.encoders if encoder_entry(e).ground_truth})
        if oracles and self.dataset != "scenes":
            raise ConfigError(f"clients: {oracles} read the ground truth of the generated scenes; "
                              f"dataset={self.dataset!r} has none")
        detectors = [e for e in image_encoders if encoder_entry(e).is_detector]
        if detectors and self.dataset != "scenes" and DETECTOR_ADAPTATIONS[self.detector_adaptation].needs_attributes:
            raise ConfigError(f"detector-adaptation: {self.detector_adaptation!r} trains on the generated scenes' objects "
                              f"and attributes; dataset={self.dataset!r} has none (use 'batchnorm' or 'none')")
        if detectors and REGION_FEATURES[self.region_features].predictions and self.dataset != "scenes":
            raise ConfigError(f"region-features: {self.region_features!r} holds the detector's object and attribute "
                              "classes, whose heads are fitted on the generated scenes' labelled objects: it needs "
                              f"dataset='scenes', not {self.dataset!r} (set region-features='box-head')")
        if self.dataset != "flickr30k":
            return
        for name in ["flickr30k_path", "flickr30k_images"]:
            folder = getattr(self, name)
            if (folder or name == "flickr30k_path") and not (Path(folder).expanduser().is_absolute()
                                                              and Path(folder).expanduser().is_dir()):
                raise ConfigError(f"{_key(name)}: {folder!r} is not an absolute path to an existing folder")
        if not scan and image_encoders and self.region_source != "proposals":
            raise ConfigError("region-source: flickr30k-layout='karpathy' has no boxes; set region-source='proposals' "
                              "(the detector's RPN proposals)")

    def _check_robustness(self) -> None:
        """The run name, seed, failure, poisoning and resume keys (README "Failures, bad updates and resume")."""
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"seed: must be >= 0 and <= {MAX_SEED} (2**32 - 1), got {self.seed}")
        parts = self.run_name.split("/")
        if self.run_name and (any(p in ("", ".", "..") for p in parts) or any(c in self.run_name for c in "\\\0")):
            raise ConfigError(f"run-name: {self.run_name!r} must be a relative folder name under runs/ ('/' for "
                              "sub-folders, no empty, '.' or '..' parts)")
        if not 1 <= self.min_replies <= self.supernodes:
            raise ConfigError(f"min-replies: must be in 1..{self.supernodes} (the number of clients), got {self.min_replies}")
        if not self.round_timeout_s > 0:
            raise ConfigError(f"round-timeout-s: must be > 0, got {self.round_timeout_s}")
        if not 0 <= self.fail_fraction < 1:
            raise ConfigError(f"fail-fraction: must be in [0, 1), got {self.fail_fraction}")
        try:
            _ = self.tracking_sinks  # parsed here, once
        except ValueError as error:
            raise ConfigError(f"tracking: {error}") from None
        if self.ledger_dir and not Path(self.ledger_dir).expanduser().is_absolute():
            raise ConfigError(f"ledger-dir: must be an absolute path (or start with ~), got {self.ledger_dir!r}")
        if self.fail_mode not in FAIL_MODES:
            raise ConfigError(f"fail-mode: {self.fail_mode!r} is not one of {FAIL_MODES}")
        _ = self.poison_kinds, self.poisoned_clients  # parsed here, once: bad values are refused now
        if not 0 <= self.stop_after_round <= self.num_server_rounds:
            raise ConfigError(f"stop-after-round: must be in 0..{self.num_server_rounds} (0 = never; at most "
                              f"num-server-rounds), got {self.stop_after_round}")
        self._check_judging()
        if self.resume and not self.run_name:
            raise ConfigError("resume: needs a run-name (the run directory to continue)")
        if self.resume and not self.job.resumable:
            resumable = " or ".join(f"task={name!r}" for name, task in TASKS.items() if task.resumable)
            raise ConfigError(f"resume: only {resumable} runs can resume, not task={self.task!r}")

    def _check_judging(self) -> None:
        """The aggregation and update-judging keys (README "Aggregation and update judging")."""
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation: {self.aggregation!r} is not one of {tuple(AGGREGATIONS)}")
        if not 0 <= self.trim_fraction < 0.5:
            raise ConfigError(f"trim-fraction: must be in [0, 0.5), got {self.trim_fraction}")
        if not 0 <= self.fairness_q <= 10:
            raise ConfigError(f"fairness-q: must be in [0, 10] (0 = FedAvg's weights), got {self.fairness_q}")
        if self.krum_byzantine < 0:
            raise ConfigError(f"krum-byzantine: must be >= 0, got {self.krum_byzantine}")
        for name in ("max_client_examples", "update_norm_multiple"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ConfigError(f"{_key(name)}: must be a finite number >= 0, got {getattr(self, name)}")
        if 0 < self.update_norm_multiple <= 1:
            raise ConfigError(f"update-norm-multiple: must be 0 (off) or > 1 (the median client itself must pass), "
                              f"got {self.update_norm_multiple}")

    def _check_jscc(self) -> None:
        """The D-JSCC keys, checked for every task (cheap); what only a jscc run needs: semfed.jscc.checks."""
        for name in ["jscc_batch_size", "jscc_steps_per_round", "jscc_stage1_rounds", "jscc_encoder_width"]:
            if getattr(self, name) < 1:
                raise ConfigError(f"{_key(name)}: must be an integer >= 1, got {getattr(self, name)}")
        if not self.jscc_learning_rate > 0:
            raise ConfigError(f"jscc-learning-rate: must be > 0, got {self.jscc_learning_rate}")
        if self.jscc_prompts < 0:
            raise ConfigError(f"jscc-prompts: must be 0 (one prompt per latent channel) or >= 1, got {self.jscc_prompts}")
        if not self.jscc_prior_kl_weight >= 0:
            raise ConfigError(f"jscc-prior-kl-weight: must be >= 0, got {self.jscc_prior_kl_weight}")
        if self.jscc_plateau_rounds < 0:
            raise ConfigError(f"jscc-plateau-rounds: must be 0 (train every round) or >= 1, got {self.jscc_plateau_rounds}")
        if not self.jscc_plateau_db >= 0:
            raise ConfigError(f"jscc-plateau-db: must be >= 0 dB, got {self.jscc_plateau_db}")
        if self.jscc_plateau_smoothing < 1:
            raise ConfigError(f"jscc-plateau-smoothing: must be >= 1 (1 = each score as it is), "
                              f"got {self.jscc_plateau_smoothing}")
        if not 0 <= self.jscc_holdout <= 0.5:
            raise ConfigError(f"jscc-holdout: the held-out fraction of each image's rows (or tiles) must be in "
                              f"[0, 0.5], got {self.jscc_holdout}")
        if self.jscc_crop_size < JSCC_MIN_CROP or self.jscc_crop_size % 4:
            raise ConfigError(f"jscc-crop-size: must be a multiple of 4 and >= {JSCC_MIN_CROP} pixels "
                              f"(MS-SSIM needs 3 scales), got {self.jscc_crop_size}")
        for name in ["jscc_images", "jscc_eval_images"]:
            folder = getattr(self, name)
            if folder and not (Path(folder).expanduser().is_absolute() and Path(folder).expanduser().is_dir()):
                raise ConfigError(f"{_key(name)}: {folder!r} is not an absolute path to an existing folder "
                                  "('' = scikit-image's bundled images)")
        _ = self.decoder_specs, self.snr_set, self.eval_snrs  # parsed here, once: bad values are refused now

    def _check_text(self) -> None:
        """The text task's keys (seed 003), checked for every task (cheap); what only a text run needs:
        semfed.text.checks."""
        for name in ["text_devices", "text_train_sentences", "text_eval_sentences", "text_words", "text_batch_size",
                     "text_steps_per_round", "text_feature_bits", "auction_train_steps"]:
            if getattr(self, name) < 1:
                raise ConfigError(f"{_key(name)}: must be an integer >= 1, got {getattr(self, name)}")
        for name in ["text_learning_rate", "hap_power_w"]:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{_key(name)}: must be > 0, got {getattr(self, name)}")
        if self.text_corpus and not (Path(self.text_corpus).expanduser().is_absolute()
                                     and Path(self.text_corpus).expanduser().is_file()):
            raise ConfigError(f"text-corpus: {self.text_corpus!r} is not an absolute path to an existing file "
                              "('' = the scenes' captions)")
        check_text_encoder("text-encoder", self.text_encoder)
        if encoder_entry(self.text_encoder).ground_truth:
            raise ConfigError(f"text-encoder: {self.text_encoder!r} has no features of free text; use a language model "
                              "('minilm' or hf@/abs/dir)")
        if self.auction_value not in TEXT_SCORES:
            raise ConfigError(f"auction-value: {self.auction_value!r} is not one of {TEXT_SCORES}")
        _ = self.text_dims, self.text_snrs, self.text_eval_snr_values, self.auction_bidder_counts, self.hap_distances

    def _check_network(self) -> None:
        """The keys of the simulated network, churn, scheduling and compressed updates (docs/network.md)."""
        if not self.uplink_bandwidth_mhz > 0:
            raise ConfigError(f"uplink-bandwidth-mhz: must be > 0, got {self.uplink_bandwidth_mhz}")
        if self.round_deadline_s < 0:
            raise ConfigError(f"round-deadline-s: must be >= 0 (0 = none), got {self.round_deadline_s}")
        choices = {"uplink_fading": FADINGS, "uplink_rate": LINK_RATES, "uplink_allocation": ALLOCATIONS,
                   "straggler_policy": tuple(STRAGGLER_POLICIES), "scheduling": tuple(SCHEDULERS)}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{_key(name)}: {getattr(self, name)!r} is not one of {allowed}")
        try:  # parsed here, once
            _ = self.client_device_classes, parse_snr_range(self.uplink_snr_db), self.churn_model, self.compression
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if self.round_deadline_s and not self.client_devices:
            raise ConfigError("round-deadline-s: a deadline needs the simulated network (set client-devices)")
        if self.uplink_allocation == "min-time" and self.round_deadline_s:
            raise ConfigError("uplink-allocation: 'min-time' shortens rounds without a deadline; with round-deadline-s "
                              "the round lasts the deadline, and a split that ends everyone together makes them all "
                              "late together when it misses it: use 'equal' or 'deadline'")
        policy = STRAGGLER_POLICIES[self.straggler_policy]
        if self.uplink_allocation == "deadline" and (not self.round_deadline_s or policy.budgets or policy.keeps_late):
            raise ConfigError("uplink-allocation: 'deadline' gives the band to the most users that can make the "
                              "deadline and leaves the rest out; it needs round-deadline-s > 0 and a straggler "
                              f"policy that discards late work (got {self.round_deadline_s} and "
                              f"{self.straggler_policy!r}: partial work and stale updates use the users it would leave out)")
        if self.uplink_allocation == "most-examples" and (not self.round_deadline_s or not policy.budgets):
            raise ConfigError("uplink-allocation: 'most-examples' splits the band so that users train the most examples "
                              "before the deadline; it needs round-deadline-s > 0 and straggler-policy='partial' (got "
                              f"{self.round_deadline_s} and {self.straggler_policy!r})")
        if self.uplink_snr_trace and not self.client_devices:
            raise ConfigError("uplink-snr-trace: a trace needs the simulated network (set client-devices)")
        if self.uplink_snr_trace and not Path(self.uplink_snr_trace).is_absolute():
            raise ConfigError(f"uplink-snr-trace: must be an absolute path to a CSV file, got {self.uplink_snr_trace!r}")
        if not 0 < self.stale_weight <= 1:
            raise ConfigError(f"stale-weight: must be in (0, 1], got {self.stale_weight}")
        if STRAGGLER_POLICIES[self.straggler_policy].keeps_late and not self.training_method.aggregates:
            raise ConfigError(f"straggler-policy: 'stale' aggregates late updates a round later; method {self.method!r} "
                              "does not aggregate")
        if self.client_devices and self.training_method.pooled:
            raise ConfigError(f"client-devices: the {self.method} bound trains in the ServerApp; it has no network")
        if self.churn and self.training_method.pooled:
            raise ConfigError(f"churn: the {self.method} bound trains in the ServerApp; nobody joins or leaves")
        if self.compression.active and (self.poisoned_clients or not self.training_method.aggregates):
            raise ConfigError("update-compression: compresses what an aggregating method's users send; not with "
                              f"method {self.method!r} or the test-only poison-clients")

    @functools.cached_property
    def snr_trace(self) -> dict[tuple[int, int], float]:
        """The uplink SNR trace (semfed.network.load_snr_trace; empty while uplink-snr-trace is '')."""
        return load_snr_trace(self.uplink_snr_trace, self.supernodes) if self.uplink_snr_trace else {}

    @functools.cached_property
    def churn_model(self) -> Churn | None:
        """Who is online in each round (semfed.churn; None: everyone, every round)."""
        return parse_churn(self.churn, self.seed)

    @functools.cached_property
    def compression(self) -> Compression:
        """How users compress their updates (semfed.compression; inactive for 'none')."""
        return parse_compression(self.update_compression)

    @functools.cached_property
    def client_device_classes(self) -> dict[int, str]:
        """Partition id -> its device class (semfed.network.DEVICES); empty while the network is off."""
        if not self.client_devices:
            return {}
        return parse_devices(self.client_devices, self.supernodes, self.seed)

    def network(self, examples: Mapping[int, int]) -> Network | None:
        """The run's simulated network (None while client-devices is ''); `examples`: partition id -> the
        examples it trains in a full round (shard size x local epochs)."""
        if not self.client_devices:
            return None
        return Network(self.client_device_classes, mean_snrs(self.uplink_snr_db, self.supernodes, self.seed),
                       dict(examples), self.uplink_bandwidth_mhz * 1e6, self.uplink_fading, self.round_deadline_s,
                       self.straggler_policy, self.seed, self.stale_weight, self.snr_trace, self.uplink_rate,
                       self.uplink_allocation)

    @functools.cached_property
    def client_profiles(self) -> tuple[ClientProfile, ...]:
        return parse_client_profiles(self.clients)

    @functools.cached_property
    def noise_groups(self) -> tuple[NoiseGroup, ...]:
        return parse_noise_groups(self.label_noise, len(self.client_profiles))

    @property
    def job(self) -> Task:
        """What the task does (semfed.tasks.TASKS entry)."""
        return TASKS[self.task]

    @property
    def training_method(self) -> Method:
        """What the method does (semfed.methods.METHODS entry)."""
        return METHODS[self.method]

    @property
    def label_policy(self) -> LabelPolicy:
        """What the label-handling policy does (semfed.label_policies.LABEL_POLICIES entry)."""
        return LABEL_POLICIES[self.label_handling]

    def noise_rate(self, partition_id: int) -> float:
        """Fraction of this client's labels that are corrupted (0 for clean clients)."""
        return next((g.rate for g in self.noise_groups if partition_id in g.clients), 0.0)

    def label_groups(self) -> dict[str, tuple[int, ...]]:
        """Clients per label-noise group for the metrics: each noise group, 'clean' (if any) and 'all'."""
        groups = {g.name: g.clients for g in self.noise_groups}
        listed = {i for ids in groups.values() for i in ids}
        everyone = tuple(range(len(self.client_profiles)))
        clean = tuple(i for i in everyone if i not in listed)
        if groups and clean:
            groups["clean"] = clean
        return {**groups, "all": everyone}

    @functools.cached_property
    def poisoned_clients(self) -> tuple[int, ...]:
        """Partition ids that send a poisoned update every round (test-only, poison-clients)."""
        return parse_client_list("poison-clients", self.poison_clients, self.supernodes)

    @functools.cached_property
    def tracking_sinks(self) -> tuple[str, ...]:
        """The result sinks asked for (semfed.tracking.SINKS keys)."""
        return parse_tracking(self.tracking)

    def run_ledgers(self, run_name: str) -> Path:
        """The folder of one run's client label ledgers (semfed.retrieval.ledger_files): <ledger-dir>/<run-name>."""
        return (Path(self.ledger_dir).expanduser() if self.ledger_dir else self.root / "ledgers") / run_name

    def poison_kind_in(self, server_round: int) -> str:
        """The attack a poisoned client sends in `server_round` (rounds count from 1): poison-kind's
        items in turn, round r taking item (r - 1) mod their count (test-only)."""
        return self.poison_kinds[(server_round - 1) % len(self.poison_kinds)]

    @functools.cached_property
    def poison_kinds(self) -> tuple[str, ...]:
        """The attacks of poison-kind, in turn (test-only)."""
        return parse_poison_kinds(self.poison_kind)

    @functools.cached_property
    def decoder_specs(self) -> tuple[DecoderSpec, ...]:
        """One D-JSCC decoder per client (client i holds item i of jscc-decoders)."""
        return parse_decoder_specs(self.jscc_decoders)

    @functools.cached_property
    def text_dims(self) -> tuple[int, ...]:
        """The text codec's output dimensions, ascending (each even: pairs of values are complex symbols)."""
        return parse_even_dims("text-output-dims", self.text_output_dims)

    @functools.cached_property
    def text_snrs(self) -> tuple[float, ...]:
        """The text codec's training SNRs in dB (each sentence draws one per step)."""
        return parse_snrs("text-snr-set", self.text_snr_set)

    @functools.cached_property
    def text_eval_snr_values(self) -> tuple[float, ...]:
        """The SNRs (dB) every output dimension of the text codec is scored at, ascending."""
        return tuple(sorted(set(parse_snrs("text-eval-snrs", self.text_eval_snrs))))

    @functools.cached_property
    def auction_bidder_counts(self) -> tuple[int, ...]:
        """Bidder counts of the auction comparison, ascending, each >= 2."""
        return parse_bidder_counts("auction-bidders", self.auction_bidders)

    @functools.cached_property
    def hap_distances(self) -> tuple[float, float]:
        """(nearest, farthest) distance in metres of a device from the access point."""
        return parse_distance_range("hap-distance-m", self.hap_distance_m)

    @property
    def text_device_ids(self) -> tuple[int, ...]:
        """One text-task client per device: 0 .. text-devices - 1."""
        return tuple(range(self.text_devices))

    @functools.cached_property
    def snr_set(self) -> tuple[float, ...]:
        """Training SNRs in dB (each image draws one per step)."""
        return parse_snrs("jscc-snr-set", self.jscc_snr_set)

    @functools.cached_property
    def eval_snrs(self) -> tuple[float, ...]:
        """Evaluation SNRs in dB."""
        return parse_snrs("jscc-eval-snrs", self.jscc_eval_snrs)

    @property
    def root(self) -> Path:
        """Absolute work directory holding data/, features/ and runs/."""
        return Path(self.work_dir).expanduser()

    @property
    def torch_device(self) -> str:
        """'cuda' when asked for or when 'auto' finds a GPU, else 'cpu'."""
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def encoder_weights(self, encoder: str) -> str:
        """Configured local weights file for an image encoder ('' = none)."""
        return getattr(self, encoder.replace("-", "_") + "_weights")

    def encoder_input_size(self, encoder: str) -> int:
        """Side in pixels that an image encoder's transform resizes images to."""
        return getattr(self, encoder.replace("-", "_") + "_input_size")

    def to_run_config(self) -> dict[str, Any]:
        """The flat run-config dict this object was built from (keys with '-')."""
        return {_key(k): v for k, v in dataclasses.asdict(self).items()}

    def replace(self, **changes: Any) -> "SemfedConfig":
        """A validated copy with some fields changed (field names with '_')."""
        return SemfedConfig.from_run_config({**self.to_run_config(), **{_key(k): v for k, v in changes.items()}})

    @property
    def supernodes(self) -> int:
        """SuperNodes the run needs: one per client profile (retrieval), one per D-JSCC decoder (jscc); the
        pool's size when supernode-pool is set."""
        return self.supernode_pool or len(self.job.per_client(self))

    def check_environment(self) -> None:
        """What the values alone cannot tell, checked on this machine once per run (the ServerApp and
        scripts/check_config.py, not every client message): work-dir can be written, device='cuda' finds a
        GPU, and what the task checks (semfed.tasks: D-JSCC crops fit the images). ConfigError naming the key."""
        _check_writable("work-dir", self.root)
        try:
            _ = self.snr_trace
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if self.device == "cuda":
            import torch  # imported here: only a run that asks for CUDA pays for it

            if not torch.cuda.is_available():
                raise ConfigError("device: 'cuda' but torch finds no GPU on this machine; use 'auto' or 'cpu'")
        self._run_task_check(self.job.check_machine)

    def _run_task_check(self, target: str) -> None:
        """The task's check `target` ('module:function', '' = none) on this config; its ValueError, which
        names the key, as a ConfigError."""
        if not target:
            return
        try:
            load(target)(self)
        except ValueError as error:
            raise ConfigError(str(error)) from None


def _key(field_name: str) -> str:
    return field_name.replace("_", "-")


def _check_writable(key: str, folder: Path) -> None:
    """ConfigError naming `key` unless `folder` is, or can be made as, a folder this process writes to.
    Probes with a temporary file in it (or in its nearest existing parent) that leaves nothing behind."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{key}: {str(folder)!r} cannot be a folder: {existing} is a file")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise ConfigError(f"{key}: {str(folder)!r} is not writable ({existing}: {error.strerror})") from None


def _coerce(key: str, value: Any, type_name: Any) -> Any:
    """Check one value against its field's type; ints are accepted where floats are expected."""
    expected = {"int": int, "float": float, "str": str, "bool": bool}[
        type_name if isinstance(type_name, str) else type_name.__name__]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
        raise ConfigError(f"{key}: expected {expected.__name__}, got {value!r} ({type(value).__name__})")
    return value


def default_run_config() -> dict[str, Any]:
    """The defaults from pyproject.toml's [tool.flwr.app.config] table."""
    with open(PYPROJECT, "rb") as f:
        return dict(tomllib.load(f)["tool"]["flwr"]["app"]["config"])


def from_overrides(overrides: Mapping[str, Any]) -> SemfedConfig:
    """The run config Flower builds from `--run-config` overrides (flat keys with '-'): pyproject.toml's
    defaults with the overrides, validated (the values; check_environment checks the machine)."""
    return SemfedConfig.from_run_config({**default_run_config(), **overrides})


def load_config(**overrides: Any) -> SemfedConfig:
    """Defaults from pyproject.toml with overrides (field names with '_'), validated."""
    return SemfedConfig.from_run_config({**default_run_config(), **{_key(k): v for k, v in overrides.items()}})
