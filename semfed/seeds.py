"""Every seed derived from a run's `seed`, in one place: each random choice of a run has its own
stream, and config.MAX_SEED keeps all of them within torch's and NumPy's seed ranges."""

from __future__ import annotations

import numpy as np

FAULT_STREAM = 6  # semfed.fault_injection: which clients fail in a round
SAMPLING_STREAM = 7  # semfed.sampling: which clients train in a round
NETWORK_STREAM = 8  # semfed.network: each user's device class and mean SNR, the fading per round
CHURN_STREAM = 9  # semfed.churn: which users are online in a round
DECOY_STREAM = 10  # semfed.retrieval.training: each label's decoy in a client's round
AUCTION_STREAM = 11  # semfed.text.energy_auction: the devices' distances in each auction


def client_round_seed(seed: int, server_round: int, partition_id: int) -> int:
    """One client's local training in one round (batches, captions, SNR draws)."""
    return seed * 1_000_003 + server_round * 1_009 + partition_id


def decoy_seed(round_seed: int) -> int:
    """The decoys of a client's round (its own stream beside the round's training seed client_round_seed)."""
    return int(np.random.SeedSequence([round_seed, DECOY_STREAM]).generate_state(1)[0])


def label_noise_seed(seed: int, partition_id: int) -> int:
    """Which of a client's labels are corrupted, and with whose annotation."""
    return seed * 7_919 + partition_id


def decoder_init_seed(seed: int, partition_id: int) -> int:
    """A D-JSCC client's decoder initialisation (the BS encoder's is `seed` itself)."""
    return seed * 1_000_003 + partition_id + 1


def round_rng(seed: int, server_round: int, stream: int) -> np.random.Generator:
    """A NumPy generator for one per-round choice of the server (`stream`: FAULT_STREAM, SAMPLING_STREAM,
    NETWORK_STREAM, CHURN_STREAM)."""
    return np.random.default_rng([seed, server_round, stream])


def auction_rng(seed: int, bidders: int) -> np.random.Generator:
    """The devices' draws of the text task's energy auctions with `bidders` bidders."""
    return np.random.default_rng([seed, bidders, AUCTION_STREAM])
