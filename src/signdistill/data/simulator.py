"""A deterministic simulator of the ISL study's recordings (the embedded default data).

Shape follows the source study: ``n_signs`` signs performed by ``n_subjects`` subjects
``n_repetitions`` times, ``n_sensors`` wireless sensors each with one sEMG channel (sampled every
900 us) and a tri-axis accelerometer and gyroscope (every 6.7 ms).

How a recording is made:
- IMU (acc and gyro, 6 axes per sensor): each sign is a class-specific smooth trajectory per axis
  (a sum of Gaussian bumps in normalized time), plus gravity on the accelerometer. A subject
  changes it by a per-channel gain, a sensor placement (a small rotation mixing the 3 axes of
  each triad) and timing (speed and offset); a repetition by a smooth random time warp, a gain
  jitter and additive noise.
- EMG: at its own rate, zero-mean Gaussian noise whose amplitude envelope is class- and
  sensor-specific (activation bursts, same timing as the IMU), scaled per subject (electrode
  placement). It is brought to the common IMU rate by its RMS envelope: a moving RMS over
  ``emg_window_s`` then linear interpolation onto the IMU time grid.
- Signs come in families (``n_families``) sharing a base trajectory; ``sign_separation`` sets
  how far a sign departs from its family's base, so signs within a family are easy to confuse,
  like minimal pairs of a real sign language.
- Difficulty knobs: ``sign_separation``, ``noise`` (repetition deviations), ``subject_variability``
  (scales every subject effect), ``time_warp`` (repetition timing).

Every random draw comes from a generator seeded by (seed, sign, subject) or (seed, sign) /
(seed, subject), so the data are bit-identical for a seed whatever the generation order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signdistill.data.cache import cached
from signdistill.data.recordings import Recordings
from signdistill.errors import DataError

AXES = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
N_BUMPS = 3


@dataclass(frozen=True)
class IslSimulator:
    """Simulated ISL-shaped recordings; see the module docstring for the generative story."""

    n_signs: int = 50
    n_subjects: int = 5
    n_repetitions: int = 20
    n_sensors: int = 6
    duration_s: float = 2.0
    imu_rate_hz: float = 149.0  # one IMU sample every 6.7 ms
    emg_rate_hz: float = 1111.0  # one EMG sample every 900 us
    emg_window_s: float = 0.05  # RMS envelope window
    n_families: int = 10
    sign_separation: float = 0.3
    noise: float = 0.8
    sensor_noise: float = 0.2
    subject_variability: float = 1.0
    time_warp: float = 0.04
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse impossible knobs, naming the config key (``data.source.<knob>``)."""
        for name, minimum in (
            ("n_signs", 2),
            ("n_subjects", 1),
            ("n_repetitions", 1),
            ("n_sensors", 1),
        ):
            if getattr(self, name) < minimum:
                raise DataError(f"data.source.{name}={getattr(self, name)}: must be >= {minimum}")
        for name in ("duration_s", "imu_rate_hz", "emg_rate_hz", "emg_window_s"):
            if getattr(self, name) <= 0:
                raise DataError(f"data.source.{name}={getattr(self, name)}: must be > 0")
        if not 1 <= self.n_families <= self.n_signs:
            raise DataError(
                f"data.source.n_families={self.n_families}: must be in 1..data.source.n_signs "
                f"({self.n_signs})"
            )
        for name in (
            "sign_separation",
            "noise",
            "sensor_noise",
            "subject_variability",
            "time_warp",
        ):
            if getattr(self, name) < 0:
                raise DataError(f"data.source.{name}={getattr(self, name)}: must be >= 0")

    @property
    def length(self) -> int:
        return round(self.duration_s * self.imu_rate_hz)

    @property
    def channels(self) -> list[str]:
        return [f"s{s + 1}_{axis}" for s in range(self.n_sensors) for axis in ("emg", *AXES)]

    def load(self, cache_dir: str | Path) -> Recordings:
        """The dataset for this config, from the on-disk cache when it was generated before."""
        return cached(cache_dir, "isl_sim", dataclasses.asdict(self), self.generate)

    def generate(self) -> Recordings:
        """Generate every recording (deterministic from ``seed``)."""
        signs = [self._sign(c) for c in range(self.n_signs)]
        subjects = [self._subject(s) for s in range(self.n_subjects)]
        blocks, labels, groups = [], [], []
        for c, sign in enumerate(signs):
            for s, subject in enumerate(subjects):
                blocks.append(self._block(c, s, sign, subject))
                labels += [c] * self.n_repetitions
                groups += [f"subject_{s + 1}"] * self.n_repetitions
        return Recordings(
            x=np.concatenate(blocks).astype(np.float32, copy=False),
            y=np.array(labels, dtype=np.int64),
            classes=[f"sign_{c:02d}" for c in range(self.n_signs)],
            channels=self.channels,
            groups=np.array(groups),
        )

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, *key]))

    def _sign(self, c: int) -> dict[str, np.ndarray]:
        """Class prototype: its family's base trajectory, changed on two sensors of its own.

        Like minimal pairs, signs of one family differ in a part of the movement only: two
        sensors' bumps are moved by ``sign_separation`` (their amplitudes and EMG bursts).
        """
        base, own = self._rng(0, c % self.n_families), self._rng(3, c)
        n, sep = self.n_sensors, self.sign_separation
        n_imu = n * len(AXES)
        moved = np.zeros(n, dtype=np.float32)
        moved[own.choice(n, size=min(2, n), replace=False)] = 1.0
        imu_mask = np.repeat(moved, len(AXES))[:, None]
        return {
            "mu": base.uniform(0.15, 0.85, (n_imu, N_BUMPS)),
            "sigma": base.uniform(0.05, 0.15, (n_imu, N_BUMPS)),
            "amp": base.normal(0.0, 1.0, (n_imu, N_BUMPS))
            + sep * imu_mask * own.normal(size=(n_imu, N_BUMPS)),
            "emg_mu": base.uniform(0.2, 0.8, (n, 2)),
            "emg_sigma": base.uniform(0.05, 0.2, (n, 2)),
            "emg_amp": base.lognormal(0.0, 0.6, (n, 2))
            * np.exp(sep * moved[:, None] * own.normal(size=(n, 2))),
        }

    def _subject(self, s: int) -> dict[str, np.ndarray]:
        """Subject effects: gains, sensor placement rotations, timing, electrode gains."""
        rng = self._rng(1, s)
        v = self.subject_variability
        axis = rng.normal(size=(self.n_sensors, 3))
        axis /= np.linalg.norm(axis, axis=1, keepdims=True)
        angle = v * rng.normal(0.0, 0.35, self.n_sensors)
        return {
            "gain": np.exp(v * rng.normal(0.0, 0.2, self.n_sensors * len(AXES))),
            "rotation": np.stack(
                [_rotation(a, t) for a, t in zip(axis, angle, strict=True)]
            ).astype(np.float32),
            "speed": 1.0 + v * rng.normal(0.0, 0.08),
            "offset": v * rng.normal(0.0, 0.04),
            "emg_gain": np.exp(v * rng.normal(0.0, 0.3, self.n_sensors)),
        }

    def _block(self, c: int, s: int, sign: dict, subject: dict) -> np.ndarray:
        """All repetitions of sign ``c`` by subject ``s``: (n_repetitions, channels, T)."""
        rng = self._rng(2, c, s)
        r, n = self.n_repetitions, self.n_sensors
        warp = self._warp(rng, subject)
        t = np.linspace(0, 1, self.length)
        imu = _bumps(warp(t), sign["mu"], sign["sigma"], sign["amp"])
        imu += self._deviations(rng, t, n * 6)
        imu *= subject["gain"][None, :, None] * np.exp(0.1 * rng.normal(size=(r, n * 6, 1)))
        imu = imu.reshape(r, n, 2, 3, self.length)
        imu[:, :, 0, 2] += 1.0  # gravity on the accelerometer's z axis, before placement
        imu = np.einsum("sij,rsmjt->rsmit", subject["rotation"], imu)
        imu += self.sensor_noise * rng.standard_normal(imu.shape, dtype=np.float32)
        emg = self._emg(rng, warp, sign, subject)
        return np.concatenate([emg[:, :, None], imu.reshape(r, n, 6, self.length)], axis=2).reshape(
            r, n * 7, self.length
        )

    def _deviations(self, rng: np.random.Generator, t: np.ndarray, channels: int) -> np.ndarray:
        """Smooth random departures of each repetition from its sign: (R, channels, T)."""
        shape = (self.n_repetitions, channels, 2)
        mu = rng.uniform(0, 1, shape)[..., None]
        sigma = rng.uniform(0.05, 0.2, shape)[..., None]
        amp = self.noise * rng.standard_normal(shape)[..., None]
        return _gaussian_sum(t[None, None, None, :], mu, sigma, amp).astype(np.float32)

    def _warp(self, rng: np.random.Generator, subject: dict):
        """A per-repetition smooth time warp u(t) of normalized time t (shared by EMG and IMU)."""
        r = self.n_repetitions
        coef = self.time_warp * rng.normal(size=(r, 3, 1))
        shift = subject["offset"] + self.time_warp * rng.normal(size=(r, 1))
        k = np.arange(1, 4)[None, :, None]

        def warp(t: np.ndarray) -> np.ndarray:
            wiggle = (coef * np.sin(np.pi * k * t[None, None, :])).sum(axis=1)
            return subject["speed"] * (t - 0.5) + 0.5 + shift + wiggle

        return warp

    def _emg(self, rng: np.random.Generator, warp, sign: dict, subject: dict) -> np.ndarray:
        """EMG RMS envelope on the IMU grid: (n_repetitions, n_sensors, T).

        The amplitude envelope is smooth, so it is evaluated on the IMU grid and interpolated to
        the EMG rate; the noise it modulates is drawn at the EMG rate.
        """
        t_imu = np.linspace(0, 1, self.length)
        n_emg = round(self.duration_s * self.emg_rate_hz)
        envelope = 0.1 + _bumps(warp(t_imu), sign["emg_mu"], sign["emg_sigma"], sign["emg_amp"])
        envelope *= subject["emg_gain"][None, :, None]
        raw = _resample(envelope, n_emg) * rng.standard_normal(
            (*envelope.shape[:2], n_emg), dtype=np.float32
        )
        window = max(1, round(self.emg_window_s * self.emg_rate_hz))
        power = np.cumsum(np.pad(raw**2, ((0, 0), (0, 0), (window, 0))), axis=-1)
        rms = np.sqrt(np.maximum(power[..., window:] - power[..., :-window], 0) / window)
        return _resample(rms, self.length)


def _resample(x: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation of (..., T) onto ``n`` evenly spaced points spanning the same time."""
    idx = np.linspace(0, x.shape[-1] - 1, n)
    lo = np.floor(idx).astype(int)
    hi = np.minimum(lo + 1, x.shape[-1] - 1)
    frac = (idx - lo).astype(x.dtype)
    return x[..., lo] * (1 - frac) + x[..., hi] * frac


def _bumps(u: np.ndarray, mu: np.ndarray, sigma: np.ndarray, amp: np.ndarray) -> np.ndarray:
    """Sum of Gaussian bumps per channel at warped times u (R, T): returns (R, channels, T)."""
    u, mu, sigma, amp = (a.astype(np.float32) for a in (u, mu, sigma, amp))
    return _gaussian_sum(
        u[:, None, None, :], mu[None, :, :, None], sigma[None, :, :, None], amp[None, :, :, None]
    )


def _gaussian_sum(u: np.ndarray, mu: np.ndarray, sigma: np.ndarray, amp: np.ndarray) -> np.ndarray:
    """``sum(amp * exp(-((u - mu) / sigma)**2 / 2), axis=2)`` over broadcast 4-d operands.

    Computed in one buffer, in place: this is most of the generation time, and the temporaries of
    the plain expression (hundreds of MB in all) cost more than the arithmetic. Same values bit
    for bit as the plain expression, so cached datasets stay valid.
    """
    d = u - mu
    d /= sigma
    np.square(d, out=d)
    d *= -0.5
    np.exp(d, out=d)
    d *= amp
    return d.sum(axis=2)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation matrix about a unit axis."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)
