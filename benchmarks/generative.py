"""Do the class-conditional GANs generate examples of the class asked for?

1. ``dcgan`` on scikit-learn's 8x8 digits (1,797 real scans, bundled with
   scikit-learn): a logistic regression trained on the real training digits
   reads the generated ones; the score is the share it assigns to the class the
   generator was asked for (chance: 10%).
2. ``tabular`` on two Gaussian blobs in 8-D whose second class is rare (2% and
   0.5% of 5,000 rows), as fraud is: the share of rows generated for the rare
   class whose nearest class centroid is the rare class's, with and without
   ``balance_classes``.

Run from the repository root: ``python benchmarks/generative.py [--write-results]``.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from dlsuite.architectures import InputSpec, build  # noqa: E402

NAME = "generative"


def digits(epochs: int) -> list[str]:
    data = load_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    x_train, x_test, y_train, y_test = train_test_split(
        x, data.target, test_size=0.3, random_state=0, stratify=data.target
    )
    reader = LogisticRegression(max_iter=2000).fit(x_train.reshape(len(x_train), -1), y_train)
    real = reader.score(x_test.reshape(len(x_test), -1), y_test)
    keras.utils.set_random_seed(0)
    gan = build("gan", InputSpec("image", (8, 8, 1)), 10, sample_activation="sigmoid")
    gan.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
    started = time.perf_counter()
    gan.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    seconds = time.perf_counter() - started
    fake = np.concatenate([gan.generate(100, c) for c in range(10)])
    share = reader.score(fake.reshape(len(fake), -1), np.repeat(np.arange(10), 100))
    return [
        "| dcgan, 8x8 digits | epochs | train s | reader on real test digits "
        "| generated digits read as the requested class |",
        "|---|---|---|---|---|",
        f"| default hparams, Adam(1e-3, beta_1=0.5), batch 64 | {epochs} | {seconds:.0f} | {real:.1%} "
        f"| {share:.1%} |",
    ]


def rare_class(epochs: int) -> list[str]:
    rows = [
        "| tabular, 5,000 rows in 8-D | rare rows | balance_classes | train s "
        "| rare-class rows nearest the rare centroid |",
        "|---|---|---|---|---|",
    ]
    centers = np.full((2, 8), -1.0)
    centers[1] = 1.0
    centers[1, ::2] = -1.0
    for rate in (0.02, 0.005):
        rng = np.random.default_rng(0)
        y = (rng.random(5000) < rate).astype("int32")
        x = (centers[y] + 0.5 * rng.normal(size=(5000, 8))).astype("float32")
        for balance in (False, True):
            keras.utils.set_random_seed(0)
            gan = build("gan", InputSpec("tabular", (8,)), 2, balance_classes=balance)
            gan.compile(optimizer=keras.optimizers.Adam(1e-3))
            started = time.perf_counter()
            gan.fit(x, y, epochs=epochs, batch_size=128, verbose=0)
            seconds = time.perf_counter() - started
            fake = gan.generate(1000, 1)
            nearest = np.argmin(((fake[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
            share = np.mean(nearest == 1)
            rows.append(f"| {rate:.1%} | {int(y.sum())} | {balance} | {seconds:.0f} | {share:.1%} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits-epochs", type=int, default=60)
    parser.add_argument("--tabular-epochs", type=int, default=10)
    parser.add_argument(
        "--write-results", action="store_true", help="rewrite the generative section of RESULTS.md"
    )
    args = parser.parse_args()
    load_start, started = common.load_average(), time.perf_counter()
    body = digits(args.digits_epochs) + [""] + rare_class(args.tabular_epochs)
    print("\n".join(body))
    if args.write_results:
        command = (
            f"python benchmarks/generative.py --digits-epochs {args.digits_epochs} "
            f"--tabular-epochs {args.tabular_epochs} --write-results"
        )
        common.write_results(NAME, common.section(
            NAME, "Class-conditional GANs (architectures/gan.py)", command,
            time.perf_counter() - started, (load_start, common.load_average()), body,
        ))


if __name__ == "__main__":
    main()
