"""NAB's scoring rule (benchmarks/nab_scoring.py) on hand-made series whose scores are computed by hand."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "nab_scoring", Path(__file__).resolve().parents[1] / "benchmarks" / "nab_scoring.py"
)
nab = sys.modules.setdefault("nab_scoring", importlib.util.module_from_spec(_spec))  # dataclasses look it up
_spec.loader.exec_module(nab)

STANDARD = nab.PROFILES["standard"]
N = 100
WINDOW = (40, 49)  # ten points
# 2 / (1 + e^(5y)) - 1 by hand: y = -1 -> 0.986614; y = -0.1 -> 0.244919; y = 1/9 -> -0.270847.
SIG_MINUS_1 = 2 / (1 + math.exp(-5)) - 1


def flags_at(*points: int, n: int = N) -> np.ndarray:
    out = np.zeros(n, bool)
    out[list(points)] = True
    return out


def test_the_scaled_sigmoid_matches_its_hand_values():
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.986614, abs=1e-6)
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(-0.1) == pytest.approx(0.244919, abs=1e-6)
    assert nab.scaled_sigmoid(1 / 9) == pytest.approx(-0.270847, abs=1e-6)
    assert nab.scaled_sigmoid(3.0) == -1.0 and nab.scaled_sigmoid(50.0) == -1.0
    np.testing.assert_allclose(nab.scaled_sigmoid(np.array([-1.0, 0.0, 7.0])), [SIG_MINUS_1, 0.0, -1.0])


def test_the_first_point_of_a_window_scores_perfect_and_nothing_scores_null():
    first = nab.score_series(flags_at(40), [WINDOW], STANDARD, probation=0)
    assert (first.raw, first.null, first.perfect) == pytest.approx((1.0, -1.0, 1.0))
    assert first.normalized == pytest.approx(100.0) and (first.detected, first.missed) == (1, 0)
    none = nab.score_series(np.zeros(N, bool), [WINDOW], STANDARD, probation=0)
    assert none.raw == -1.0 and none.normalized == 0.0 and none.missed == 1


def test_a_late_detection_earns_less_and_only_the_first_flag_in_a_window_counts():
    # y = -(49 - 49 + 1) / 10 = -0.1: 0.244919 / 0.986614 = 0.248242 of the reward.
    late = nab.score_series(flags_at(49), [WINDOW], STANDARD, probation=0)
    assert late.raw == pytest.approx(0.248242, abs=1e-6)
    assert late.normalized == pytest.approx(100 * (0.248242 + 1) / 2, abs=1e-4)
    again = nab.score_series(flags_at(49, 40, 45), [WINDOW], STANDARD, probation=0)
    assert again.raw == pytest.approx(1.0) and again.false_positives == 0


def test_false_positives_cost_by_their_distance_past_the_previous_window():
    before = nab.score_series(flags_at(10), [WINDOW], STANDARD, probation=0)
    assert before.raw == pytest.approx(-0.11 - 1.0) and before.false_positives == 1  # no window before: whole cost
    just_after = nab.score_series(flags_at(40, 50), [WINDOW], STANDARD, probation=0)
    assert just_after.raw == pytest.approx(1.0 + 0.11 * -0.270847, abs=1e-6)  # y = (50 - 49) / (10 - 1)
    far = nab.score_series(flags_at(40, 76), [WINDOW], STANDARD, probation=0)
    assert far.raw == pytest.approx(1.0 - 0.11)  # y = 27 / 9 = 3


def test_profiles_weigh_false_positives_and_misses_differently():
    flags = flags_at(10)  # one false positive, the window missed
    assert nab.score_series(flags, [WINDOW], nab.PROFILES["standard"], probation=0).raw == pytest.approx(-1.11)
    assert nab.score_series(flags, [WINDOW], nab.PROFILES["reward_low_fp"], probation=0).raw == pytest.approx(-1.22)
    low_fn = nab.score_series(flags, [WINDOW], nab.PROFILES["reward_low_fn"], probation=0)
    assert (low_fn.raw, low_fn.null) == pytest.approx((-2.11, -2.0))
    assert low_fn.normalized == pytest.approx(100 * -0.11 / 3)  # perfect 1, null -2


def test_the_probationary_period_is_not_scored():
    assert nab.probation_length(100) == 15 and nab.probation_length(10_000) == 750
    early = nab.score_series(flags_at(5, 40), [WINDOW], STANDARD)  # the flag at 5 is in the first 15 points
    assert early.raw == pytest.approx(1.0) and early.false_positives == 0
    hidden = nab.score_series(flags_at(5), [(2, 8), WINDOW], STANDARD)  # a window inside probation is not counted
    assert (hidden.null, hidden.missed) == (-1.0, 1)


def test_two_windows_add_up_and_normalize_over_a_corpus():
    windows = [(20, 29), (60, 69)]
    one_found = nab.score_series(flags_at(20), windows, STANDARD, probation=0)
    assert (one_found.raw, one_found.null, one_found.perfect) == pytest.approx((0.0, -2.0, 2.0))
    assert one_found.normalized == pytest.approx(50.0)
    other = nab.score_series(flags_at(40), [WINDOW], STANDARD, probation=0)
    assert nab.normalized([one_found, other]) == pytest.approx(100 * (0.0 + 1.0 + 3.0) / (3.0 + 3.0))


def test_window_bounds_come_from_timestamps():
    times = np.arange("2024-01-01T00", "2024-01-01T10", dtype="datetime64[h]")
    bounds = nab.window_bounds(times, [(np.datetime64("2024-01-01T02"), np.datetime64("2024-01-01T04")),
                                       (np.datetime64("2024-01-02T00"), np.datetime64("2024-01-02T05"))])
    assert bounds == [(2, 4)]  # the second window holds no point of the series


def test_bad_windows_are_refused():
    with pytest.raises(ValueError, match="sorted, disjoint"):
        nab.score_series(np.zeros(N, bool), [(40, 49), (45, 60)], STANDARD)
    with pytest.raises(ValueError, match="sorted, disjoint"):
        nab.score_series(np.zeros(N, bool), [(90, 120)], STANDARD)


def test_the_best_threshold_finds_the_early_detection_and_ignores_noise():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, N)
    scores[41] = 5.0  # second point of the window: a strong, early signal
    threshold, value, per_series = nab.best_threshold([scores], [[WINDOW]], STANDARD)
    assert 1.0 < threshold <= 5.0
    assert value == pytest.approx(per_series[0].normalized) and per_series[0].false_positives == 0
    assert value == pytest.approx(100 * (nab.scaled_sigmoid(-0.9) / SIG_MINUS_1 + 1) / 2)
