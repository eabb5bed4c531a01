"""An offline card-transaction simulator: the embedded default of the fraud task.

Customers spend at merchants in the categories they prefer, mostly by day, in amounts
around their own habits. Fraud is injected as four patterns a card issuer sees:

- ``card_testing``: a burst of tiny online charges on one card within minutes, at the
  few merchants fraudsters use to check that stolen numbers work;
- ``account_takeover``: a few large charges, far above the customer's usual amount, in
  a category the customer never buys, often online and across a border;
- ``merchant_collusion``: round-amount swipe charges at a handful of colluding merchants
  (which also have honest traffic, so the merchant alone does not give them away);
- ``night_spike``: charges between 1 and 4 a.m. at online electronics/gaming merchants.

Honest look-alikes (night owls, big purchases, travel) keep the problem from being
trivial. Each row carries what an authorization feed has, plus the per-card velocity
features processors compute (seconds since the card's last charge, charges in the last
hour, amount relative to the card's past average, first visit to the merchant).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dlsuite.errors import DlsuiteError

CATEGORIES = (
    "grocery", "fuel", "restaurant", "clothing", "pharmacy",
    "travel", "electronics", "jewelry", "online_services", "gaming",
)
# Typical charge per category, relative to the customer's own scale.
CATEGORY_SCALE = dict(zip(CATEGORIES, (1.0, 1.2, 0.8, 1.8, 0.6, 6.0, 4.0, 5.0, 0.5, 0.7)))
ONLINE_CATEGORIES = ("online_services", "gaming", "electronics", "travel")
CHANNELS = ("chip", "contactless", "swipe", "online")
PATTERNS = ("card_testing", "account_takeover", "merchant_collusion", "night_spike")
PATTERN_SHARE = (0.35, 0.25, 0.2, 0.2)
COLLUDING_MERCHANTS = 3
START = pd.Timestamp("2026-01-01")
# Columns that are not transaction features: the card id and the ground-truth pattern.
ID_COLUMNS = ("card_id", "pattern")


def simulate(
    n_transactions: int = 30_000,
    fraud_rate: float = 0.01,
    *,
    n_customers: int = 1_500,
    n_merchants: int = 80,
    days: int = 60,
    seed: int = 0,
) -> pd.DataFrame:
    """Simulate a transaction log.

    Args:
        n_transactions: rows in the log.
        fraud_rate: share of fraudulent rows (exact up to rounding), in ``(0, 0.5)``.
        n_customers: cards in the population.
        n_merchants: merchants (the first ``COLLUDING_MERCHANTS`` collude).
        days: span of the log.
        seed: random seed; the same seed gives the same log.

    Returns:
        A DataFrame sorted by ``timestamp`` with columns ``timestamp``, ``card_id``,
        ``amount``, ``hour``, ``merchant_id``, ``merchant_category``, ``channel``,
        ``cross_border``, ``seconds_since_last``, ``txn_count_1h``, ``amount_to_avg``,
        ``new_merchant``, ``is_fraud`` (0/1) and ``pattern`` (``"none"`` or one of ``PATTERNS``).
    """
    if not 0.0 < fraud_rate < 0.5:
        raise DlsuiteError(f"the simulator's fraud_rate must be in (0, 0.5), got {fraud_rate}.")
    if n_transactions < 200:
        raise DlsuiteError(f"the simulator needs at least 200 transactions, got {n_transactions}.")
    if n_merchants < 2 * len(CATEGORIES):
        raise DlsuiteError(f"the simulator needs at least {2 * len(CATEGORIES)} merchants, got {n_merchants}.")
    rng = np.random.default_rng(seed)
    merchants = _merchants(n_merchants, rng)
    customers = _customers(n_customers, rng)
    n_fraud = max(1, int(round(n_transactions * fraud_rate)))
    legit = _legit(n_transactions - n_fraud, customers, merchants, days, rng)
    fraud = _fraud(n_fraud, customers, merchants, days, rng)
    log = pd.concat([legit, fraud], ignore_index=True)
    log = log.sort_values(["seconds", "card"], kind="stable").reset_index(drop=True)
    return _finish(log, merchants)


def _merchants(n: int, rng: np.random.Generator) -> pd.DataFrame:
    # Every category has at least two merchants; the colluding ones sell electronics and clothing.
    cats = np.concatenate([np.arange(len(CATEGORIES)), np.arange(len(CATEGORIES)),
                           rng.integers(0, len(CATEGORIES), n - 2 * len(CATEGORIES))])
    cats[:COLLUDING_MERCHANTS] = [CATEGORIES.index("electronics"), CATEGORIES.index("clothing"),
                                  CATEGORIES.index("jewelry")][:COLLUDING_MERCHANTS]
    return pd.DataFrame({
        "merchant_id": [f"M{i:03d}" for i in range(n)],
        "category": cats,
        "popularity": rng.lognormal(0.0, 0.8, n),
    })


def _customers(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    prefs = rng.dirichlet(np.full(len(CATEGORIES), 0.4), n)
    prefs[:, CATEGORIES.index("grocery")] += 0.3  # everybody buys food
    prefs /= prefs.sum(1, keepdims=True)
    return {
        "scale": rng.lognormal(3.0, 0.6, n),          # typical charge, in currency units
        "activity": rng.lognormal(0.0, 0.7, n),
        "night_owl": rng.random(n) < 0.05,
        "traveller": rng.random(n) < 0.08,
        "prefs": prefs,
    }


def _rows(card, seconds, merchant, amount, channel, cross_border, fraud, pattern) -> pd.DataFrame:
    n = len(card)
    return pd.DataFrame({
        "card": np.asarray(card, np.int64), "seconds": np.asarray(seconds, np.float64),
        "merchant": np.asarray(merchant, np.int64), "amount": np.round(np.asarray(amount, np.float64), 2),
        "channel": np.asarray(channel, object), "cross_border": np.asarray(cross_border, bool),
        "is_fraud": np.full(n, fraud, np.int64), "pattern": np.full(n, pattern, object),
    })


def _merchant_in(category: np.ndarray, merchants: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(len(category), np.int64)
    for c in np.unique(category):
        pool = np.flatnonzero(merchants["category"].to_numpy() == c)
        weights = merchants["popularity"].to_numpy()[pool]
        idx = np.flatnonzero(category == c)
        out[idx] = rng.choice(pool, len(idx), p=weights / weights.sum())
    return out


def _channel(category: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    online_share = np.where(np.isin(category, [CATEGORIES.index(c) for c in ONLINE_CATEGORIES]), 0.6, 0.05)
    online = rng.random(len(category)) < online_share
    in_store = rng.choice(["chip", "contactless", "swipe"], len(category), p=[0.5, 0.4, 0.1])
    return np.where(online, "online", in_store)


def _day_seconds(n: int, night: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Seconds after midnight: daytime around 1 p.m., or late night for night owls."""
    day = np.clip(rng.normal(13.5, 3.5, n), 6.0, 23.9)
    late = (rng.normal(0.5, 2.0, n)) % 24
    return np.where(night, late, day) * 3600.0


def _legit(n: int, cust: dict[str, np.ndarray], merchants: pd.DataFrame, days: int, rng: np.random.Generator) -> pd.DataFrame:
    card = rng.choice(len(cust["scale"]), n, p=cust["activity"] / cust["activity"].sum())
    cum = cust["prefs"][card].cumsum(1)
    category = (rng.random((n, 1)) > cum).sum(1)
    night = cust["night_owl"][card] & (rng.random(n) < 0.6)
    seconds = rng.integers(0, days, n) * 86400.0 + _day_seconds(n, night, rng)
    scale = cust["scale"][card] * np.array([CATEGORY_SCALE[c] for c in CATEGORIES])[category]
    amount = scale * rng.lognormal(0.0, 0.5, n)
    big = rng.random(n) < 0.01  # the occasional honest splurge
    amount = np.where(big, amount * rng.uniform(4, 12, n), amount)
    cross = rng.random(n) < np.where(cust["traveller"][card], 0.3, 0.01)
    return _rows(card, seconds, _merchant_in(category, merchants, rng), amount, _channel(category, rng), cross, 0, "none")


def _fraud(n: int, cust: dict[str, np.ndarray], merchants: pd.DataFrame, days: int, rng: np.random.Generator) -> pd.DataFrame:
    n_cards = len(cust["scale"])
    cat_of = merchants["category"].to_numpy()
    testing_merchants = np.flatnonzero(np.isin(cat_of, [CATEGORIES.index("online_services"), CATEGORIES.index("gaming")]))[:4]
    frames, made = [], 0
    counts = rng.multinomial(n, PATTERN_SHARE)
    for pattern, target in zip(PATTERNS, counts):
        done = 0
        while done < target:
            card = int(rng.integers(n_cards))
            start = rng.integers(0, days) * 86400.0 + _day_seconds(1, np.array([rng.random() < 0.3]), rng)[0]
            if pattern == "card_testing":
                k = min(int(rng.integers(5, 16)), target - done)
                seconds = start + np.sort(rng.uniform(0, 600, k))
                merchant = rng.choice(testing_merchants, k)
                amount = rng.uniform(0.5, 3.0, k)
                frame = _rows(np.full(k, card), seconds, merchant, amount, np.full(k, "online"), rng.random(k) < 0.5, 1, pattern)
            elif pattern == "account_takeover":
                k = min(int(rng.integers(1, 5)), target - done)
                seconds = start + np.sort(rng.uniform(0, 4 * 3600, k))
                usual = cust["prefs"][card]
                category = rng.choice([CATEGORIES.index(c) for c in ("electronics", "jewelry", "travel")], k)
                category = np.where(usual[category] > 0.15, CATEGORIES.index("jewelry"), category)
                amount = cust["scale"][card] * rng.uniform(5, 20, k) * rng.lognormal(0, 0.3, k)
                channel = np.where(rng.random(k) < 0.7, "online", "swipe")
                frame = _rows(np.full(k, card), seconds, _merchant_in(category, merchants, rng), amount, channel,
                              rng.random(k) < 0.5, 1, pattern)
            elif pattern == "merchant_collusion":
                k = min(int(rng.integers(1, 4)), target - done)
                cards = rng.integers(n_cards, size=k)
                seconds = start + rng.uniform(0, 86400, k)
                amount = rng.choice([50.0, 100.0, 150.0, 200.0, 300.0, 500.0], k)
                frame = _rows(cards, seconds, rng.integers(0, COLLUDING_MERCHANTS, k), amount, np.full(k, "swipe"),
                              np.zeros(k, bool), 1, pattern)
            else:  # night_spike
                k = min(int(rng.integers(1, 4)), target - done)
                cards = rng.integers(n_cards, size=k)
                seconds = np.floor(start / 86400.0) * 86400.0 + rng.uniform(1, 4, k) * 3600.0
                category = rng.choice([CATEGORIES.index(c) for c in ("electronics", "gaming")], k)
                amount = cust["scale"][cards] * rng.uniform(2, 8, k)
                frame = _rows(cards, seconds, _merchant_in(category, merchants, rng), amount, np.full(k, "online"),
                              rng.random(k) < 0.3, 1, pattern)
            frames.append(frame)
            done += len(frame)
        made += done
    return pd.concat(frames, ignore_index=True)


def _finish(log: pd.DataFrame, merchants: pd.DataFrame) -> pd.DataFrame:
    """Named columns and the per-card velocity features, computed in time order."""
    by_card = log.groupby("card", sort=False)
    since = by_card["seconds"].diff().fillna(7 * 86400.0).to_numpy()
    count_1h = np.ones(len(log), np.int64)
    for _, idx in by_card.indices.items():
        t = log["seconds"].to_numpy()[idx]
        count_1h[idx] = np.arange(len(t)) - np.searchsorted(t, t - 3600.0, side="left") + 1
    past_sum = by_card["amount"].cumsum() - log["amount"]
    past_n = by_card.cumcount()
    past_avg = (past_sum / past_n.replace(0, np.nan)).to_numpy()
    amount = log["amount"].to_numpy()
    to_avg = np.where(np.isnan(past_avg), 1.0, amount / np.maximum(past_avg, 0.01))
    new_merchant = log.groupby(["card", "merchant"], sort=False).cumcount().to_numpy() == 0
    return pd.DataFrame({
        "timestamp": START + pd.to_timedelta(log["seconds"], unit="s"),
        "card_id": [f"C{c:05d}" for c in log["card"]],
        "amount": amount,
        "hour": (log["seconds"].to_numpy() // 3600 % 24).astype(np.int64),
        "merchant_id": merchants["merchant_id"].to_numpy()[log["merchant"].to_numpy()],
        "merchant_category": np.array(CATEGORIES, object)[merchants["category"].to_numpy()[log["merchant"].to_numpy()]],
        "channel": log["channel"].to_numpy(),
        "cross_border": np.where(log["cross_border"].to_numpy(), "yes", "no"),
        "seconds_since_last": np.round(since, 1),
        "txn_count_1h": count_1h,
        "amount_to_avg": np.round(to_avg, 4),
        "new_merchant": np.where(new_merchant, "yes", "no"),
        "is_fraud": log["is_fraud"].to_numpy(),
        "pattern": log["pattern"].to_numpy(),
    })
