"""Architecture-family benchmark: every dlsuite network family on a real dataset that suits it.

    .venv/bin/python benchmarks/architectures.py --write-results

One row per family, trained directly with ``model.fit`` on a fixed, seeded split
(these are the architectures, not the task pipelines: no augmentation, no early
stopping). Each row reports the family's natural metric on held-out data, its
training time and parameter count, beside the scikit-learn counterpart where one
exists, trained and scored on the same examples:

==============  ======================  ===============================================
family          data                    metric / scikit-learn counterpart
==============  ======================  ===============================================
mlp             digits (64 features)    test accuracy / ``MLPClassifier`` same widths
rbfn            digits                  test accuracy / RBF-kernel ``SVC``
rbm             digits in [0, 1]        test pseudo-log-likelihood / ``BernoulliRBM``
                                        (same hidden units, epochs, batch, rate)
dbn             digits                  test accuracy, greedy pretraining vs random init /
                                        ``BernoulliRBM`` + ``LogisticRegression``
som             digits                  test quantization error (10x10 map) /
                                        ``KMeans`` with 100 centers (no topology)
autoencoder     digits                  test reconstruction MSE (latent 8) / ``PCA(8)``
gan             digits                  accuracy of an SVC trained on real digits on
                                        class-conditional samples (no counterpart)
transfer        digits 0-4 -> 5-9       test accuracy on 5-9 from 25 images per class,
                                        backbone pretrained on 0-4 written as a hub module
                                        (frozen / fine-tuned / no pretraining) / ``SVC``
lstm gru        SST-2 (shared datasets) test accuracy on the 872 GLUE dev sentences after
transformer                             2 epochs on 12,000 training phrases /
                                        TF-IDF + ``LogisticRegression`` on the same phrases
==============  ======================  ===============================================

Families whose module is not (yet) in ``architectures/`` are skipped with a
note; SST-2 rows are skipped when ``../shared/datasets/sst2`` is absent.

Options:
    --families rbfn,som     a subset (default: every family listed above)
    --write-results         rewrite the ``architectures`` section of benchmarks/RESULTS.md

The table goes to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import common  # noqa: E402

from dlsuite import architectures, hubmodule  # noqa: E402
from dlsuite.architectures import InputSpec, build  # noqa: E402

NAME = "architectures"
SEED = 0
TEST_FRACTION = 0.2
SST2_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "sst2"
SST2_TRAIN_ROWS = 12000
SST2_LENGTH = 40
SST2_VOCAB = 10000
COLUMNS = ["family", "data", "metric", "dlsuite", "train s", "params", "scikit-learn", "sklearn value", "sklearn s"]

log = logging.getLogger("bench")


@dataclasses.dataclass
class Row:
    """One line of the table."""

    family: str
    data: str
    metric: str
    value: str
    train_seconds: float
    params: int
    baseline: str = "-"
    baseline_value: str = "-"
    baseline_seconds: float | None = None

    def cells(self) -> list[str]:
        return [
            self.family, self.data, self.metric, self.value, f"{self.train_seconds:.1f}", f"{self.params:,}",
            self.baseline, self.baseline_value,
            "-" if self.baseline_seconds is None else f"{self.baseline_seconds:.1f}",
        ]


# -- data ----------------------------------------------------------------------------------


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits as 64 features in [0, 1], stratified 80/20 split (seed 0)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return tuple(train_test_split(x, y, test_size=TEST_FRACTION, stratify=y, random_state=SEED))


def sst2() -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """The first SST2_TRAIN_ROWS training phrases and the 872 test sentences."""
    import pandas as pd

    read = lambda name: pd.read_csv(SST2_DIR / name, sep="\t", quoting=3)  # noqa: E731 (quoting=3: none)
    train, test = read("train.tsv").iloc[:SST2_TRAIN_ROWS], read("test.tsv")
    return list(train.sentence), train.label.to_numpy(), list(test.sentence), test.label.to_numpy()


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    out = call()
    return out, time.perf_counter() - started


def fit_classifier(model: keras.Model, x: Any, y: np.ndarray, *, epochs: int, lr: float, batch: int = 64) -> float:
    """Compile as the runner does (Adam, sparse cross-entropy), fit, return seconds."""
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    _, seconds = timed(lambda: model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0))
    return seconds


def accuracy(model: keras.Model, x: Any, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(model.predict(x, batch_size=256, verbose=0), axis=1) == y))


def param_count(model: keras.Model) -> int:
    """Trainable and non-trainable weights (some unsupervised models only count once built by fit)."""
    return int(sum(np.prod(v.shape) for v in model.weights))


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


# -- rows ----------------------------------------------------------------------------------


def row_mlp() -> list[Row]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    xtr, xte, ytr, yte = digits()
    keras.utils.set_random_seed(SEED)
    model = build("mlp", InputSpec("tabular", (64,)), 10, hidden_units=(256, 128))
    seconds = fit_classifier(model, xtr, ytr, epochs=40, lr=1e-3)
    with warnings.catch_warnings():  # 40 epochs, as the network: not always converged by sklearn's measure
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk, sk_seconds = timed(lambda: MLPClassifier((256, 128), max_iter=40, random_state=SEED).fit(xtr, ytr))
    return [Row("mlp", "digits", "test accuracy", pct(accuracy(model, xte, yte)), seconds, param_count(model),
                "MLPClassifier(256, 128), 40 epochs", pct(sk.score(xte, yte)), sk_seconds)]


def row_rbfn() -> list[Row]:
    from sklearn.svm import SVC

    xtr, xte, ytr, yte = digits()
    keras.utils.set_random_seed(SEED)
    model = build("rbfn", InputSpec("tabular", (64,)), 10, centers=100)
    seconds = fit_classifier(model, xtr, ytr, epochs=60, lr=1e-2)  # includes the k-means of the centers
    sk, sk_seconds = timed(lambda: SVC(kernel="rbf", C=10, gamma="scale").fit(xtr, ytr))
    return [Row("rbfn", "digits", "test accuracy", pct(accuracy(model, xte, yte)), seconds, param_count(model),
                "SVC(rbf, C=10)", pct(sk.score(xte, yte)), sk_seconds)]


def row_rbm() -> list[Row]:
    from sklearn.neural_network import BernoulliRBM

    xtr, xte, _, _ = digits()
    hidden, epochs, batch, lr = 64, 10, 10, 0.05
    keras.utils.set_random_seed(SEED)
    model = build("rbm", InputSpec("tabular", (64,)), 1, hidden_units=hidden, visible="bernoulli")
    model.compile(optimizer=keras.optimizers.SGD(lr))
    _, seconds = timed(lambda: model.fit(xtr, xtr, epochs=epochs, batch_size=batch, verbose=0))
    ours = float(np.mean(model.pseudo_likelihood(tf.constant(xte), seed=SEED)))
    sk, sk_seconds = timed(
        lambda: BernoulliRBM(n_components=hidden, learning_rate=lr, batch_size=batch, n_iter=epochs,
                             random_state=SEED).fit(xtr)
    )
    return [Row("rbm", "digits [0,1]", "test pseudo-log-lik. (higher better)", f"{ours:.2f}", seconds,
                param_count(model), f"BernoulliRBM({hidden}), same epochs/batch/rate",
                f"{float(np.mean(sk.score_samples(xte))):.2f}", sk_seconds)]


def row_dbn() -> list[Row]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import BernoulliRBM
    from sklearn.pipeline import make_pipeline

    xtr, xte, ytr, yte = digits()
    rows = []
    for pretrain in (True, False):
        keras.utils.set_random_seed(SEED)
        model = build("dbn", InputSpec("tabular", (64,)), 10, hidden_units=(256, 128), visible="bernoulli",
                      pretrain=pretrain)
        seconds = fit_classifier(model, xtr, ytr, epochs=30, lr=1e-3)
        label = "pretrained" if pretrain else "random init"
        rows.append(Row(f"dbn ({label})", "digits", "test accuracy", pct(accuracy(model, xte, yte)), seconds,
                        param_count(model)))
    pipeline = make_pipeline(
        BernoulliRBM(n_components=128, learning_rate=0.05, n_iter=10, random_state=SEED),
        LogisticRegression(C=10, max_iter=500),
    )
    sk, sk_seconds = timed(lambda: pipeline.fit(xtr, ytr))
    rows[0].baseline, rows[0].baseline_value, rows[0].baseline_seconds = (
        "BernoulliRBM(128) + LogisticRegression", pct(sk.score(xte, yte)), sk_seconds)
    return rows


def row_som() -> list[Row]:
    from sklearn.cluster import KMeans

    xtr, xte, _, _ = digits()
    keras.utils.set_random_seed(SEED)
    model = build("som", InputSpec("tabular", (64,)), 1, grid_rows=10, grid_cols=10)
    model.compile()
    _, seconds = timed(lambda: model.fit(xtr, xtr, epochs=30, batch_size=32, verbose=0))
    ours = float(model.quantization_error(tf.constant(xte)))
    km, sk_seconds = timed(lambda: KMeans(100, n_init=3, random_state=SEED).fit(xtr))
    theirs = float(np.mean(np.min(km.transform(xte), axis=1)))
    return [Row("som", "digits [0,1]", "test quantization error (lower better)", f"{ours:.3f}", seconds,
                param_count(model), "KMeans(100) (no grid topology)", f"{theirs:.3f}", sk_seconds)]


def row_autoencoder() -> list[Row]:
    from sklearn.decomposition import PCA

    xtr, xte, _, _ = digits()
    keras.utils.set_random_seed(SEED)
    model = build("autoencoder", InputSpec("tabular", (64,)), 1, latent_dim=8, hidden_units=(64, 32))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    _, seconds = timed(lambda: model.fit(xtr, xtr, epochs=100, batch_size=32, verbose=0))
    ours = float(np.mean(model.anomaly_score(tf.constant(xte))))
    pca, sk_seconds = timed(lambda: PCA(8, random_state=SEED).fit(xtr))
    theirs = float(np.mean((pca.inverse_transform(pca.transform(xte)) - xte) ** 2))
    return [Row("autoencoder", "digits [0,1]", "test reconstruction MSE (latent 8)", f"{ours:.4f}", seconds,
                param_count(model), "PCA(8)", f"{theirs:.4f}", sk_seconds)]


def row_gan() -> list[Row]:
    from sklearn.svm import SVC

    xtr, _, ytr, _ = digits()
    keras.utils.set_random_seed(SEED)
    model = build("gan", InputSpec("tabular", (64,)), 10, sample_activation="sigmoid")
    model.compile(optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5), loss="sparse_categorical_crossentropy")
    _, seconds = timed(lambda: model.fit(xtr, ytr, epochs=60, batch_size=64, verbose=0))
    judge = SVC(C=10, gamma="scale").fit(xtr, ytr)
    per_class = 50
    samples = np.concatenate([model.generate(per_class, c) for c in range(10)])
    agreement = float(np.mean(judge.predict(samples) == np.repeat(np.arange(10), per_class)))
    return [Row("gan", "digits [0,1]", "SVC agrees with the conditioned class", pct(agreement), seconds,
                param_count(model))]


def _digit_images(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1, 8, 8, 1)


def _small_cnn_backbone() -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    features = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, features, name="digits_cnn")


def row_transfer() -> list[Row]:
    from sklearn.svm import SVC

    xtr, xte, ytr, yte = digits()
    source = ytr < 5
    rng = np.random.default_rng(SEED)
    # 25 training images per target class (5-9): the small-data regime transfer is for.
    target = np.concatenate([rng.choice(np.flatnonzero(ytr == c), 25, replace=False) for c in range(5, 10)])
    xt, yt = _digit_images(xtr[target]), ytr[target] - 5
    test = yte >= 5
    xe, ye = _digit_images(xte[test]), yte[test] - 5

    keras.utils.set_random_seed(SEED)
    backbone = _small_cnn_backbone()
    pretrain = keras.Sequential([backbone, keras.layers.Dense(5, activation="softmax")])
    pretrain_seconds = fit_classifier(pretrain, _digit_images(xtr[source]), ytr[source], epochs=20, lr=3e-3)
    log.info("transfer: backbone pretrained on digits 0-4 in %.1f s", pretrain_seconds)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        handle = hubmodule.write_hub_module(backbone, os.path.join(tmp, "digits_cnn"))
        for label, hparams in (
            ("frozen", {"handle": handle, "fine_tune": False}),
            ("fine-tuned", {"handle": handle, "fine_tune": True}),
        ):
            keras.utils.set_random_seed(SEED)
            model = build("transfer", InputSpec("image", (8, 8, 1)), 5, dropout=0.0, **hparams)
            seconds = fit_classifier(model, xt, yt, epochs=40, lr=3e-3, batch=25)
            rows.append(Row(f"transfer ({label})", "digits 0-4 -> 5-9", "test acc, 25 imgs/class",
                            pct(accuracy(model, xe, ye)), seconds, param_count(model)))
    keras.utils.set_random_seed(SEED)
    scratch = keras.Sequential([_small_cnn_backbone(), keras.layers.Dense(5, activation="softmax")])
    seconds = fit_classifier(scratch, xt, yt, epochs=40, lr=3e-3, batch=25)
    rows.append(Row("same CNN, no pretraining", "digits 0-4 -> 5-9", "test acc, 25 imgs/class",
                    pct(accuracy(scratch, xe, ye)), seconds, param_count(scratch)))
    sk, sk_seconds = timed(lambda: SVC(C=10, gamma="scale").fit(xt.reshape(len(xt), -1), yt))
    rows[0].baseline, rows[0].baseline_value, rows[0].baseline_seconds = (
        "SVC(rbf) on the same 125 images", pct(sk.score(xe.reshape(len(xe), -1), ye)), sk_seconds)
    return rows


def _sst2_rows(family: str, hparams: dict[str, Any]) -> list[Row]:
    xtr, ytr, xte, yte = sst2()
    vectorize = keras.layers.TextVectorization(SST2_VOCAB, output_sequence_length=SST2_LENGTH)
    vectorize.adapt(tf.constant(xtr))
    ttr, tte = vectorize(tf.constant(xtr)).numpy(), vectorize(tf.constant(xte)).numpy()
    keras.utils.set_random_seed(SEED)
    spec = InputSpec("tokens", (SST2_LENGTH,), dtype="int32", vocab_size=SST2_VOCAB)
    model = build(family, spec, 2, **hparams)
    seconds = fit_classifier(model, ttr, ytr, epochs=2, lr=2e-3)
    return [Row(family, f"SST-2 ({len(xtr):,} train phrases)", "test accuracy (872 sentences)",
                pct(accuracy(model, tte, yte)), seconds, param_count(model), *_tfidf_baseline(xtr, ytr, xte, yte))]


_TFIDF: dict[str, tuple[str, str, float]] = {}


def _tfidf_baseline(xtr: list[str], ytr: np.ndarray, xte: list[str], yte: np.ndarray) -> tuple[str, str, float]:
    """TF-IDF (1-2 grams) + LogisticRegression, computed once and shown on every SST-2 row."""
    if not _TFIDF:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2), LogisticRegression(max_iter=1000))
        fitted, seconds = timed(lambda: pipeline.fit(xtr, ytr))
        _TFIDF["row"] = ("TF-IDF + LogisticRegression", pct(fitted.score(xte, yte)), seconds)
    return _TFIDF["row"]


ROWS: dict[str, tuple[str, Callable[[], list[Row]]]] = {
    # name -> (architecture module it needs, row function)
    "mlp": ("mlp", row_mlp),
    "rbfn": ("rbfn", row_rbfn),
    "rbm": ("rbm", row_rbm),
    "dbn": ("dbn", row_dbn),
    "som": ("som", row_som),
    "autoencoder": ("autoencoder", row_autoencoder),
    "gan": ("gan", row_gan),
    "transfer": ("transfer", row_transfer),
    "lstm": ("lstm", lambda: _sst2_rows("lstm", {"units": 64})),
    "gru": ("gru", lambda: _sst2_rows("gru", {"units": 64})),
    "transformer": ("transformer", lambda: _sst2_rows("transformer", {"num_layers": 1, "model_dim": 64})),
}
SST2_FAMILIES = ("lstm", "gru", "transformer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", default=",".join(ROWS), help="comma-separated subset")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    wanted = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(wanted) - set(ROWS))
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {', '.join(ROWS)}")

    started, load_start = time.perf_counter(), common.load_average()
    rows: list[Row] = []
    notes: list[str] = []
    available = set(architectures.names())
    for name in wanted:
        arch, row_function = ROWS[name]
        if arch not in available:
            notes.append(f"{name}: skipped, no `{arch}` architecture registered yet")
            continue
        if name in SST2_FAMILIES and not SST2_DIR.is_dir():
            notes.append(f"{name}: skipped, {SST2_DIR} is absent")
            continue
        log.info("== %s", name)
        family_started = time.perf_counter()
        try:
            rows.extend(row_function())
        except Exception as e:  # one family's failure is reported, the others still run
            log.exception("%s failed", name)
            notes.append(f"{name}: failed ({type(e).__name__}: {e})")
        log.info("   %s took %.1f s", name, time.perf_counter() - family_started)
    total = time.perf_counter() - started

    table = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
        *("| " + " | ".join(r.cells()) + " |" for r in rows),
    ]
    print("\n".join(table))
    for note in notes:
        print(f"- {note}")
    if args.write_results:
        command = "python benchmarks/architectures.py --write-results" + (
            f" --families {shlex.quote(args.families)}" if args.families != ",".join(ROWS) else "")
        body = [
            "Each family trained directly with `model.fit` on a fixed seeded split (digits: 80/20 "
            "stratified, seed 0; SST-2: first 12,000 training phrases, 872 test sentences); "
            "`train s` includes tracing and, for rbfn, the k-means of its centers. "
            "See benchmarks/architectures.py for every setting.",
            "",
            *table,
            *([""] + [f"- {n}" for n in notes] if notes else []),
        ]
        common.write_results(
            NAME, common.section(NAME, "Architecture families", command, total, (load_start, common.load_average()), body)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
