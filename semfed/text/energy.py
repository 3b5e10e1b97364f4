"""Seed 003's wireless-powered devices (its Fig. 5(a)): the hybrid access point (HAP) charges one device
at a time; the device spends what it harvested sending one message of sentences back, and shrinks its
output dimension until the message fits the bits that energy buys. Torch-free.

Path gain g(d) = 10^(-REFERENCE_LOSS_DB / 10) * d^-PATH_LOSS_EXPONENT on both links (reciprocal).
Harvested energy E = HARVEST_EFFICIENCY * P_hap * CHARGE_S * g(d) (J). The device transmits E over
UPLINK_S seconds: power E / UPLINK_S, received SNR = (E / UPLINK_S) g(d) / (N0 B), with N0 the thermal
noise density plus NOISE_FIGURE_DB; it can send B * UPLINK_S * log2(1 + SNR) bits (Shannon). A message of
MESSAGE_SENTENCES sentences at output dimension d is MESSAGE_SENTENCES * W * d * feature_bits bits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

HARVEST_EFFICIENCY = 0.6  # RF-to-DC conversion
REFERENCE_LOSS_DB = 30.0  # path loss at 1 m (about free space at 915 MHz)
PATH_LOSS_EXPONENT = 3.0
CHARGE_S = 1.0  # seconds the HAP charges the winning device
UPLINK_S = 0.01  # seconds the device then transmits
NOISE_DBM_PER_HZ = -174.0  # thermal noise density
NOISE_FIGURE_DB = 10.0  # of the HAP's receiver
MESSAGE_SENTENCES = 10  # sentences a device sends per charge


def path_gain(distance_m: float) -> float:
    """Linear power gain of a link of `distance_m` metres (>= 1 m)."""
    return 10 ** (-REFERENCE_LOSS_DB / 10) * max(distance_m, 1.0) ** -PATH_LOSS_EXPONENT


def harvested_energy(hap_power_w: float, distance_m: float) -> float:
    """Joules a device `distance_m` from the HAP harvests in one charge of CHARGE_S at `hap_power_w` watts."""
    return HARVEST_EFFICIENCY * hap_power_w * CHARGE_S * path_gain(distance_m)


def uplink_snr_db(energy_j: float, distance_m: float, bandwidth_hz: float) -> float:
    """Received SNR (dB) of a device spending `energy_j` over UPLINK_S on a `bandwidth_hz` uplink."""
    noise_w = 10 ** ((NOISE_DBM_PER_HZ + NOISE_FIGURE_DB - 30) / 10) * bandwidth_hz
    return 10 * math.log10(energy_j / UPLINK_S * path_gain(distance_m) / noise_w)


def uplink_bits(snr_db: float, bandwidth_hz: float) -> float:
    """Bits the uplink carries in UPLINK_S at `snr_db`: B * UPLINK_S * log2(1 + SNR)."""
    return bandwidth_hz * UPLINK_S * math.log2(1 + 10 ** (snr_db / 10))


def message_bits(dim: int, words: int, feature_bits: int) -> int:
    """Bits of one message: MESSAGE_SENTENCES sentences of `words` x `dim` features of `feature_bits` bits."""
    return MESSAGE_SENTENCES * words * dim * feature_bits


def fitting_dims(bits: float, dims: Sequence[int], words: int, feature_bits: int) -> list[int]:
    """The output dimensions (of `dims`) whose message fits in `bits`, ascending (empty: none fits)."""
    return sorted(d for d in dims if message_bits(d, words, feature_bits) <= bits)
