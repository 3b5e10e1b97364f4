"""The wireless network a retrieval federation runs over, simulated (seed 000 VI-A): each user's device
(compute speed and power) and uplink (bandwidth, SNR, fading, transmit power) give its simulated time
and energy in a round; a round deadline turns slow users into stragglers, handled by a straggler policy.
Torch-free and Flower-free: the server's strategy asks it (strategies/keyed_fedavg.py)."""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from scipy.optimize import brentq

from semfed.config_values import counted_items
from semfed.seeds import NETWORK_STREAM, round_rng


@dataclass(frozen=True)
class Device:
    """A device class. samples_per_s: training examples it processes per second (one example = one image
    with its captions through the adapter, forward and backward); compute_w: power drawn while training (W);
    transmit_w: uplink transmit power (W). Illustrative figures, in the ratios of a phone, a laptop and an
    edge server; only their ratios and the deadline's size relative to them matter for who straggles."""

    samples_per_s: float
    compute_w: float
    transmit_w: float


DEVICES = {  # the `client-devices` names
    "phone": Device(samples_per_s=40.0, compute_w=3.0, transmit_w=0.2),
    "laptop": Device(samples_per_s=160.0, compute_w=25.0, transmit_w=0.5),
    "edge-server": Device(samples_per_s=800.0, compute_w=150.0, transmit_w=1.0),
}


@dataclass(frozen=True)
class StragglerPolicy:
    """What a round deadline does to a user that cannot make it. budgets: the server tells each user how
    many examples fit before the deadline (its compute and this round's upload time known at the BS), and
    the user trains only those (partial work, weighted by the examples it did); without, every user trains
    in full and an update that arrives after the deadline is late. keeps_late: a late update is aggregated
    in the next round, its change applied to that round's model with its weight times `stale-weight`
    (seed 000 VI-A: a slow user with rich data is not shut out); without, it is discarded."""

    budgets: bool
    keeps_late: bool = False


STRAGGLER_POLICIES = {  # the `straggler-policy` names
    "drop": StragglerPolicy(budgets=False),
    "partial": StragglerPolicy(budgets=True),
    "stale": StragglerPolicy(budgets=False, keeps_late=True),
}
FADINGS = ("none", "rayleigh")  # `uplink-fading`: the SNR is the user's mean SNR, or that times an Exp(1) gain per round


# LTE's 4-bit CQI table (3GPP TS 36.213 Table 7.2.3-1): each entry's spectral efficiency (bit/s/Hz, from the
# standard), with an SNR (dB) from which it is used. The standard leaves the SNR thresholds to the receiver;
# these are illustrative AWGN thresholds for 10% block error, about 2 dB apart, in the range LTE
# system-level simulations use. A link uses the highest entry its SNR reaches.
LTE_CQI = ((-6.7, 0.1523), (-4.7, 0.2344), (-2.3, 0.3770), (0.2, 0.6016), (2.4, 0.8770), (4.3, 1.1758),
           (5.9, 1.4766), (8.1, 1.9141), (10.3, 2.4063), (11.7, 2.7305), (14.1, 3.3223), (16.3, 3.9023),
           (18.7, 4.5234), (21.0, 5.1152), (22.7, 5.5547))
LINK_RATES = ("shannon", "lte-cqi")  # `uplink-rate`
# `uplink-allocation`: how a round's users share the band (Network.bands)
ALLOCATIONS = ("equal", "min-time", "deadline", "most-examples")


def spectral_efficiency(snr_db: float, rate: str = "shannon") -> float:
    """Bits per second per Hz of a link at `snr_db`: Shannon's log2(1 + SNR), or the LTE_CQI entry its SNR
    reaches ('lte-cqi'; under the lowest entry's SNR the lowest entry's rate, an optimistic floor where a
    real link would be in outage)."""
    if rate == "shannon":
        return math.log2(1.0 + 10.0 ** (snr_db / 10.0))
    reached = [efficiency for threshold, efficiency in LTE_CQI if snr_db >= threshold]
    return reached[-1] if reached else LTE_CQI[0][1]


def capacity_bps(bandwidth_hz: float, snr_db: float, rate: str = "shannon") -> float:
    """The link's rate B x spectral_efficiency(SNR), in bits per second."""
    return bandwidth_hz * spectral_efficiency(snr_db, rate)


def upload_seconds(nbytes: int, bandwidth_hz: float, snr_db: float, rate: str = "shannon") -> float:
    """Seconds to send `nbytes` at the link's rate (8 bits per byte)."""
    return 8.0 * nbytes / capacity_bps(bandwidth_hz, snr_db, rate)


def min_time_bands(total_hz: float, compute_s: dict[int, float], work: dict[int, float]) -> dict[int, float]:
    """The split of `total_hz` among users that ends their rounds together, as early as possible: user k
    needs `work[k]` = bits / spectral efficiency (Hz s) of upload after `compute_s[k]` seconds of compute,
    so with band B_k it finishes at c_k + w_k / B_k; the common finish T solves sum_k w_k / (T - c_k) =
    total_hz (one root above the largest c_k: the sum falls from infinity to 0), and B_k = w_k / (T - c_k).
    A user with nothing to send gets 0 Hz; if nobody sends, the band is split equally."""
    senders = [pid for pid in work if work[pid] > 0]
    if not senders:
        return {pid: total_hz / len(work) for pid in work}
    last = max(senders, key=lambda pid: compute_s[pid])
    scale = sum(work[pid] for pid in senders) / total_hz  # at T = c_last + scale the bands sum to <= total_hz

    def excess(finish_s: float) -> float:
        return sum(work[pid] / (finish_s - compute_s[pid]) for pid in senders) - total_hz

    # at T = c_last + w_last / (2 total) the last user's band alone is twice the total
    finish = brentq(excess, compute_s[last] + work[last] / (2 * total_hz), compute_s[last] + scale,
                    xtol=scale * 1e-12, rtol=1e-12)
    bands = {pid: work[pid] / (finish - compute_s[pid]) if pid in senders else 0.0 for pid in work}
    norm = total_hz / sum(bands.values())  # the root's last ulp: the bands sum to the total exactly
    return {pid: band * norm for pid, band in bands.items()}


def most_examples_bands(total_hz: float, deadline_s: float, speed: dict[int, float], full: dict[int, int],
                        work: dict[int, float], value: dict[int, float]) -> dict[int, float]:
    """The split of `total_hz` that trains the most examples before `deadline_s`, each weighted by its user's
    `value` (per example), when users train what fits and then upload (straggler-policy 'partial').

    User k trains at `speed[k]` examples/s and has `full[k]` examples; its upload needs `work[k]` Hz s (bits
    over spectral efficiency, as in min_time_bands), so with band B it trains e_k(B) = speed_k (D - w_k / B)
    examples, at most full_k (reached at F_k = w_k / (D - full_k / speed_k)), and nothing at or under its
    floor L_k = w_k / D. For a set of users the objective sum_k v_k e_k(B_k) is concave, and the optimum
    gives each B_k = sqrt(v_k speed_k w_k / lambda) clipped to [L_k, F_k], with lambda setting the sum to the
    total (water-filling). A user left at its floor trains nothing, so it is left out (0 Hz) and the rest
    split again; while even the floors do not fit, the user whose floor buys the least value (v_k speed_k
    D^2 / w_k, its marginal value there) is left out first. If every user's full work fits, the total is
    shared in proportion to F_k. Returns partition -> Hz (0 for those left out)."""
    bands = {pid: 0.0 for pid in work}
    users = [pid for pid in work if work[pid] > 0 and value[pid] > 0]
    floor = {pid: work[pid] / deadline_s for pid in users}
    ceiling = {pid: work[pid] / (deadline_s - full[pid] / speed[pid]) if full[pid] / speed[pid] < deadline_s
               else math.inf for pid in users}
    while users:
        if sum(floor[pid] for pid in users) >= total_hz:
            users.remove(min(users, key=lambda p: (value[p] * speed[p] * deadline_s ** 2 / work[p], -p)))
            continue
        if sum(ceiling[pid] for pid in users) <= total_hz:
            scale = total_hz / sum(ceiling[pid] for pid in users)
            return {**bands, **{pid: ceiling[pid] * scale for pid in users}}
        # B_k = weight_k r, with r = lambda^(-1/2)
        weight = {pid: math.sqrt(value[pid] * speed[pid] * work[pid]) for pid in users}

        def split(log_r: float) -> dict[int, float]:
            return {pid: min(max(weight[pid] * math.exp(log_r), floor[pid]), ceiling[pid]) for pid in users}

        # at r_low every user sits at its floor (sum under the total), at r_high at its ceiling or over the total
        r_low = min(floor[pid] / weight[pid] for pid in users) / 2
        r_high = max([4 * total_hz / min(weight.values())] +
                     [2 * ceiling[pid] / weight[pid] for pid in users if math.isfinite(ceiling[pid])])
        log_r = brentq(lambda x: sum(split(x).values()) - total_hz, math.log(r_low), math.log(r_high),
                       xtol=1e-12, rtol=1e-12)
        shares = split(log_r)
        starved = [pid for pid in users if shares[pid] <= floor[pid] * (1 + 1e-9)]
        if starved:
            users = [pid for pid in users if pid not in starved]
            continue
        norm = total_hz / sum(shares.values())  # the root's last ulp: the bands sum to the total exactly
        return {**bands, **{pid: band * norm for pid, band in shares.items()}}
    return bands


def in_time_users(total_hz: float, deadline_s: float, compute_s: dict[int, float], work: dict[int, float]) -> list[int]:
    """The most users of `work` whose full rounds can all end by `deadline_s` sharing `total_hz` (ascending ids):
    user k needs at least w_k / (D - c_k) Hz (work and compute as in min_time_bands; none can help one whose
    compute alone reaches D), and taking users in order of that need, the least first, while the needs fit
    in the total admits as many as any choice can."""
    need = {pid: work[pid] / (deadline_s - compute_s[pid]) for pid in work if compute_s[pid] < deadline_s}
    admitted, used = [], 0.0
    for pid in sorted(need, key=lambda p: (need[p], p)):
        if used + need[pid] > total_hz:
            break
        admitted.append(pid)
        used += need[pid]
    return sorted(admitted)


@dataclass(frozen=True)
class ClientRound:
    """One user's simulated round: its SNR (dB), uplink band (Hz), examples trained, compute and upload seconds, their sum,
    energy (J) and status ('in time', 'partial', 'late': the update was discarded, 'stale': it arrived after
    the deadline and is aggregated in the next round, 'no budget': nothing fits before the deadline, the
    user was not asked to train)."""

    partition: int
    device: str
    snr_db: float
    bandwidth_hz: float
    examples: int
    compute_s: float
    upload_s: float
    energy_j: float
    status: str

    @property
    def time_s(self) -> float:
        return self.compute_s + self.upload_s

    @property
    def included(self) -> bool:
        return self.status in INCLUDED

    def row(self) -> dict:
        """The fields and time_s as one network.csv row (plain values: a checkpoint keeps them)."""
        return {**asdict(self), "time_s": self.time_s}


INCLUDED = ("in time", "partial", "stale")  # statuses whose update is aggregated (stale: a round later)
NETWORK_FIELDS = (*(f.name for f in fields(ClientRound)), "time_s")  # network.csv's columns after the round


@dataclass(frozen=True)
class Network:
    """The simulated network of a run. devices: partition id -> DEVICES name; mean_snr_db: partition id -> its
    mean uplink SNR (dB); examples: partition id -> examples it trains in a full round (shard size x local
    epochs); bandwidth_hz: each user's band under the 'equal' allocation, and the round's band per user it
    schedules under 'min-time' and 'deadline' (allocation: one of ALLOCATIONS, Network.bands); fading: one of
    FADINGS; deadline_s: the round deadline in simulated seconds (0 = none); policy: a STRAGGLER_POLICIES name; seed: the run's seed (the fading draws);
    stale_weight: the factor on a late update's weight when the policy keeps it for the next round;
    snr_trace: (round, partition id) -> SNR (dB) where a trace gives it (load_snr_trace), in place of the mean;
    link_rate: one of LINK_RATES, how an SNR becomes bits per second (spectral_efficiency)."""

    devices: dict[int, str]
    mean_snr_db: dict[int, float]
    examples: dict[int, int]
    bandwidth_hz: float
    fading: str
    deadline_s: float
    policy: str
    seed: int
    stale_weight: float = 0.5
    snr_trace: dict[tuple[int, int], float] = field(default_factory=dict)
    link_rate: str = "shannon"
    allocation: str = "equal"

    @property
    def keeps_late(self) -> bool:
        return STRAGGLER_POLICIES[self.policy].keeps_late

    def snr_db(self, server_round: int, partition: int) -> float:
        """User `partition`'s uplink SNR in `server_round` (dB): the trace's value for that round and user, else
        its mean; times a Rayleigh power gain Exp(1) drawn from (seed, round) when fading is 'rayleigh' (the
        same draw however many users are sampled)."""
        snr = self.snr_trace.get((server_round, partition), self.mean_snr_db[partition])
        if self.fading == "none":
            return snr
        gain = _fading_gains(self.seed, server_round, max(self.devices) + 1)[partition]
        return snr + 10.0 * math.log10(max(float(gain), 1e-12))

    def compute_seconds(self, partition: int, examples: int) -> float:
        return examples / DEVICES[self.devices[partition]].samples_per_s

    def bands(self, server_round: int, partitions: list[int], upload_bytes: dict[int, int],
              values: dict[int, float] | None = None) -> dict[int, float]:
        """Each scheduled user's uplink band (Hz) in `server_round`. 'equal': bandwidth_hz each. 'min-time': the
        same total (bandwidth_hz x users) split so that their full rounds (compute, then the upload of
        `upload_bytes`) end together, as early as possible (min_time_bands), from the round's SNRs known at the
        base station. Without a deadline only (the config refuses one): under a deadline the round lasts the
        deadline whatever the split, and a split that ends everyone together puts them all late together.
        'deadline' (with a deadline): the most users that can all end in time (in_time_users) split the total
        as 'min-time' does among themselves; the others get no band and are left out (absent from the dict).
        'most-examples' (with a deadline and partial work): the split that trains the most examples in time,
        each weighted by its user's entry in `values` (1 for all when None; most_examples_bands); a user it
        leaves out gets 0 Hz."""
        if self.allocation == "equal":
            return {pid: self.bandwidth_hz for pid in partitions}
        total = self.bandwidth_hz * len(partitions)
        work = {pid: 8.0 * upload_bytes[pid] / spectral_efficiency(self.snr_db(server_round, pid), self.link_rate)
                for pid in partitions}
        if self.allocation == "most-examples":
            speed = {pid: DEVICES[self.devices[pid]].samples_per_s for pid in partitions}
            return most_examples_bands(total, self.deadline_s, speed, {pid: self.examples[pid] for pid in partitions},
                                       work, {pid: (values or {}).get(pid, 1.0) for pid in partitions})
        compute = {pid: self.compute_seconds(pid, self.examples[pid]) for pid in partitions}
        if self.allocation == "deadline":
            admitted = in_time_users(total, self.deadline_s, compute, work)
            if not admitted:
                return {}
            return min_time_bands(total, {pid: compute[pid] for pid in admitted}, {pid: work[pid] for pid in admitted})
        return min_time_bands(total, compute, work)

    def budget(self, server_round: int, partition: int, upload_bytes: int, bandwidth_hz: float | None = None) -> int:
        """Examples user `partition` can train and still upload `upload_bytes` over `bandwidth_hz` (default:
        bandwidth_hz) before the deadline (all of its examples without a deadline or without a budgeting
        policy); 0 when even the upload does not fit, or without a band."""
        full = self.examples[partition]
        if not self.deadline_s or not STRAGGLER_POLICIES[self.policy].budgets:
            return full
        band = self.bandwidth_hz if bandwidth_hz is None else bandwidth_hz
        if band <= 0:
            return 0
        left = self.deadline_s - upload_seconds(upload_bytes, band, self.snr_db(server_round, partition), self.link_rate)
        if left <= 0:
            return 0
        return min(full, int(left * DEVICES[self.devices[partition]].samples_per_s))

    def client_round(self, server_round: int, partition: int, examples: int, upload_bytes: int,
                     bandwidth_hz: float | None = None) -> ClientRound:
        """User `partition`'s simulated round having trained `examples` and uploaded `upload_bytes` over
        `bandwidth_hz` (default: bandwidth_hz); its status against the deadline (a user that trained fewer
        than all its examples under a budget is 'partial')."""
        device = DEVICES[self.devices[partition]]
        snr = self.snr_db(server_round, partition)
        band = self.bandwidth_hz if bandwidth_hz is None else bandwidth_hz
        compute = self.compute_seconds(partition, examples)
        upload = upload_seconds(upload_bytes, band, snr, self.link_rate) if upload_bytes else 0.0
        late = bool(self.deadline_s) and compute + upload > self.deadline_s
        status = ("stale" if self.keeps_late else "late") if late else (
            "partial" if examples < self.examples[partition] else "in time")
        return ClientRound(partition, self.devices[partition], snr, band, examples, compute, upload,
                           device.compute_w * compute + device.transmit_w * upload, status)

    def round_seconds(self, rounds: list[ClientRound]) -> float:
        """Simulated wall-clock of a synchronous round: the slowest user in time, or the deadline when some
        user was late (the server waited for it until then; a stale update arrives during the next round)."""
        if any(r.status in ("late", "stale") for r in rounds):
            return self.deadline_s
        return max((r.time_s for r in rounds if r.included), default=0.0)


@functools.lru_cache(maxsize=8)
def _fading_gains(seed: int, server_round: int, users: int) -> np.ndarray:
    """Every user's Rayleigh power gain (Exp(1)) in one round, drawn once per round."""
    return round_rng(seed, server_round, NETWORK_STREAM).exponential(1.0, size=users)


def parse_devices(spec: str, clients: int, seed: int) -> dict[int, str]:
    """`client-devices`: '[Nx ]class;...' in client order (counts summing to the number of clients, or one
    class for all), or 'drawn' (each user's class drawn uniformly from DEVICES by `seed`). ValueError naming
    the problem otherwise."""
    if spec.strip() == "drawn":
        names = list(DEVICES)
        draws = np.random.default_rng([seed, NETWORK_STREAM]).integers(len(names), size=clients)
        return {pid: names[int(i)] for pid, i in enumerate(draws)}
    classes = counted_items("client-devices", spec)
    for name in classes:
        if name not in DEVICES:
            raise ValueError(f"client-devices: bad item {name!r}; expected '[Nx ]class' with class one of "
                             f"{list(DEVICES)}, or 'drawn'")
    if len(classes) == 1:
        classes *= clients
    if len(classes) != clients:
        raise ValueError(f"client-devices: lists {len(classes)} devices for {clients} clients")
    return dict(enumerate(classes))


def parse_snr_range(spec: str) -> tuple[float, float]:
    """`uplink-snr-db`: 'x' (every user's mean SNR x dB) or 'lo,hi' (each drawn uniformly in [lo, hi])."""
    try:
        values = [float(v) for v in spec.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(math.isfinite(v) for v in values) or values[0] > values[-1]:
        raise ValueError(f"uplink-snr-db: expected 'x' or 'lo,hi' in dB with lo <= hi, got {spec!r}")
    return values[0], values[-1]


TRACE_COLUMNS = ("round", "partition-id", "snr_db")


def load_snr_trace(path: str, clients: int) -> dict[tuple[int, int], float]:
    """`uplink-snr-trace`: a CSV file with the columns TRACE_COLUMNS, one row per round (from 1) and user it
    covers (e.g. exported from a mobility or channel simulator), as {(round, partition id): SNR dB}.
    ValueError naming the file and the problem (missing columns, a user outside the federation's
    `clients`, a round under 1, a value that is not a finite number, a (round, user) given twice)."""
    import pandas as pd  # only a run with a trace reads one

    try:
        table = pd.read_csv(Path(path))
    except (OSError, ValueError) as error:
        raise ValueError(f"uplink-snr-trace: cannot read {path!r} as a CSV file ({error})") from None
    missing = [c for c in TRACE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"uplink-snr-trace: {path} lacks the column(s) {missing}; expected {list(TRACE_COLUMNS)}")
    values = table[list(TRACE_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    bad = values.index[~np.isfinite(values.to_numpy(float)).all(axis=1)]
    if len(bad):
        raise ValueError(f"uplink-snr-trace: {path} row {int(bad[0]) + 2} holds a value that is not a finite number")
    keys = list(zip(values["round"], values["partition-id"]))
    for (server_round, partition), line in zip(keys, range(2, len(keys) + 2)):
        if server_round != int(server_round) or server_round < 1 or partition != int(partition) or not 0 <= partition < clients:
            raise ValueError(f"uplink-snr-trace: {path} line {line}: round {server_round} and partition-id {partition} must "
                             f"be whole numbers, round from 1 and partition-id in 0..{clients - 1}")
    if len(set(keys)) < len(keys):
        raise ValueError(f"uplink-snr-trace: {path} gives some (round, partition-id) twice")
    return {(int(r), int(p)): float(v) for (r, p), v in zip(keys, values["snr_db"])}


def mean_snrs(spec: str, clients: int, seed: int) -> dict[int, float]:
    """Each user's mean uplink SNR (dB), drawn once per run from `seed` within parse_snr_range(spec)."""
    low, high = parse_snr_range(spec)
    draws = np.random.default_rng([seed, NETWORK_STREAM, 1]).uniform(low, high, size=clients)
    return {pid: float(v) for pid, v in enumerate(draws)}
