"""Embedded offline anomaly data: realistic normal behaviour with labeled injected anomalies.

``sensor_series``: a multivariate machine-sensor series (temperature, load, power, vibration)
with a daily cycle, autocorrelated noise and physical couplings (power follows load, temperature
lags load). Injected, labeled anomalies of four kinds, spread evenly over time so that every
chronological split holds some: spikes (1-3 points), level shifts (one channel offset for
30-70 points), changed correlation (power decoupled from load) and noise bursts.

``machine_rows``: independent rows of the same kind of machine, with a categorical
``machine_type`` that sets the normal operating range; anomalies are out-of-range values,
broken couplings between features, and rows whose values fit another machine type.

Both are generated from a seed, so runs and tests are reproducible without any download.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PERIOD = 96  # points per daily cycle (15-minute samples)
SERIES_CHANNELS = ["temperature", "load", "power", "vibration"]
ANOMALY_KINDS = ("spike", "level_shift", "correlation", "noise_burst")


def _ar1(rng: np.random.Generator, n: int, phi: float, scale: float) -> np.ndarray:
    """Autocorrelated noise with stationary standard deviation ``scale``."""
    eps = rng.normal(0.0, scale * np.sqrt(1 - phi**2), n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, scale)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + eps[i]
    return out


def sensor_normal(num_points: int, rng: np.random.Generator) -> np.ndarray:
    """Normal behaviour: ``[num_points, 4]`` float64 in ``SERIES_CHANNELS`` order."""
    t = np.arange(num_points)
    day = 2 * np.pi * t / PERIOD
    weekly = 1.0 + 0.15 * np.sin(2 * np.pi * t / (7 * PERIOD))
    load = 50 + 18 * weekly * np.sin(day - 0.6) + 4 * np.sin(3 * day) + _ar1(rng, num_points, 0.9, 2.5)
    power = 12 + 0.8 * load + _ar1(rng, num_points, 0.7, 1.2)
    lagged = np.concatenate([np.full(4, load[0]), load[:-4]])
    temperature = 18 + 0.12 * lagged + 2 * np.sin(day) + _ar1(rng, num_points, 0.95, 0.4)
    vibration = 1.0 + 0.015 * load + np.abs(_ar1(rng, num_points, 0.5, 0.08))
    return np.stack([temperature, load, power, vibration], axis=1)


def sensor_series(
    num_points: int = 6000, num_events: int = 16, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """The embedded multivariate series with injected anomalies.

    Args:
        num_points: length of the series.
        num_events: anomalies injected, cycling through ``ANOMALY_KINDS``.
        seed: generator seed.

    Returns:
        (values ``[num_points, 4]`` float32, point labels ``[num_points]`` int64 (1 = anomalous),
        channel names, the kind of each event in time order).
    """
    rng = np.random.default_rng(seed)
    values = sensor_normal(num_points, rng)
    std = values.std(axis=0)
    labels = np.zeros(num_points, np.int64)
    kinds = [ANOMALY_KINDS[i % len(ANOMALY_KINDS)] for i in rng.permutation(num_events)]
    slot = num_points // num_events
    for i, kind in enumerate(kinds):
        length = {
            "spike": int(rng.integers(1, 4)),
            "level_shift": int(rng.integers(30, 71)),
            "correlation": int(rng.integers(40, 81)),
            "noise_burst": int(rng.integers(20, 41)),
        }[kind]
        start = i * slot + int(rng.integers(slot // 4, max(slot // 4 + 1, slot - length - slot // 4)))
        span = slice(start, start + length)
        channel = int(rng.integers(0, values.shape[1]))
        sign = rng.choice([-1.0, 1.0])
        if kind == "spike":
            values[span, channel] += sign * rng.uniform(5, 8) * std[channel]
        elif kind == "level_shift":
            values[span, channel] += sign * rng.uniform(1.5, 2.5) * std[channel]
        elif kind == "correlation":
            # power stops following load: it keeps its level but mirrors load's swings
            mean_load = values[span, 1].mean()
            values[span, 2] = 12 + 0.8 * (2 * mean_load - values[span, 1]) + rng.normal(0, 1.2, length)
        else:
            values[span, channel] += rng.normal(0, 1.5 * std[channel], length)
        labels[span] = 1
    return values.astype(np.float32), labels, list(SERIES_CHANNELS), kinds


MACHINE_TYPES = {"pump": (40.0, 1.0), "fan": (25.0, 0.6), "compressor": (70.0, 1.6)}


def machine_rows(
    num_rows: int = 4000, anomaly_fraction: float = 0.05, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray]:
    """The embedded table: one row per machine reading, with a categorical machine type.

    Returns:
        (a DataFrame with columns ``machine_type, load, power, temperature, vibration, rpm``,
        labels ``[num_rows]`` int64, 1 = anomaly).
    """
    rng = np.random.default_rng(seed)
    types = rng.choice(list(MACHINE_TYPES), size=num_rows, p=[0.5, 0.3, 0.2])
    base = np.array([MACHINE_TYPES[t][0] for t in types])
    scale = np.array([MACHINE_TYPES[t][1] for t in types])
    load = base * rng.uniform(0.6, 1.2, num_rows)
    power = 5 + 0.8 * load * scale + rng.normal(0, 1.5, num_rows)
    temperature = 20 + 0.25 * load + rng.normal(0, 1.0, num_rows)
    vibration = 0.5 + 0.02 * load * scale + np.abs(rng.normal(0, 0.05, num_rows))
    rpm = 1000 * scale + 8 * load + rng.normal(0, 30, num_rows)
    X = np.stack([load, power, temperature, vibration, rpm], axis=1)
    labels = np.zeros(num_rows, np.int64)
    idx = rng.choice(num_rows, int(round(anomaly_fraction * num_rows)), replace=False)
    labels[idx] = 1
    stds = X.std(axis=0)
    for n, i in enumerate(idx):
        kind = n % 3
        if kind == 0:  # one feature far out of range
            j = int(rng.integers(0, X.shape[1]))
            X[i, j] += rng.choice([-1, 1]) * rng.uniform(3, 5) * stds[j]
        elif kind == 1:  # power no longer follows load
            X[i, 1] = (
                5
                + 0.8 * (2 * base[i] * 0.9 - load[i]) * scale[i] * rng.uniform(0.5, 0.8)
                + rng.normal(0, 1.5)
            )
            X[i, 3] *= rng.uniform(1.6, 2.2)
        else:  # readings of another machine type under this type's label
            other = rng.choice([t for t in MACHINE_TYPES if t != types[i]])
            s = MACHINE_TYPES[other][1]
            X[i, 1] = 5 + 0.8 * load[i] * s + rng.normal(0, 1.5)
            X[i, 4] = 1000 * s + 8 * load[i] + rng.normal(0, 30)
    df = pd.DataFrame(X, columns=["load", "power", "temperature", "vibration", "rpm"])
    df.insert(0, "machine_type", types)
    return df, labels
