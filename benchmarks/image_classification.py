"""Image-classification benchmark: every dlsuite image network against scikit-learn's SVC on digits.

    .venv/bin/python benchmarks/image_classification.py --write-results

For each architecture of the ``image_classification`` task (cnn, resnet, inception,
mlp) this trains the task's default configuration on scikit-learn's digits
(split seed 0, 20% stratified test split) through ``runner.run``, then reports
test accuracy, macro F1, epochs run, training time, parameter count and the
latency of the exported SavedModel (``serving_default`` on uint8 pixels, batch of
1 and of 256 test images, median over ``--repeats`` calls after a warm-up).

The baseline is ``SVC(gamma=0.001, C=10)`` on the original 0-16 features of
``load_digits().data``, trained on all of the remaining 80% (the networks' train
and validation splits) and tested on the very same 360 test images; the script
checks that the two test splits hold the same examples before it reports.

Options:
    --architectures cnn,resnet   a subset (default: the task's architectures but transfer, which
                                 needs a pretrained backbone; benchmarks/architectures.py runs it)
    --seeds 0,1,2                training seeds (network init, shuffling); the data
                                 split stays seed 0 for every run. Default: 0.
    --out DIR                    keep run directories and exports in DIR (default: a
                                 temporary directory, deleted at the end)
    --repeats N                  timed calls per latency figure (default 100)
    --set KEY=VALUE              a config override for every network, repeatable
                                 (e.g. --set train.label_smoothing=0.1)
    --write-results              rewrite the image-classification section of
                                 benchmarks/RESULTS.md (other sections are kept)

The table goes to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import common

TASK = "image_classification"
DATASET = "digits"
SPLIT_SEED = 0
TEST_FRACTION = 0.2
SVC_PARAMS = {"gamma": 0.001, "C": 10}
LATENCY_BATCHES = (1, 256)
COLUMNS = ["architecture", "test acc", "macro F1", "epochs", "train s", "params", "latency b1 ms", "latency b256 ms"]

log = logging.getLogger("bench")


@dataclasses.dataclass
class Row:
    """One line of the results table."""

    name: str
    seed: int | None
    accuracy: float
    macro_f1: float
    epochs: int | None
    train_seconds: float
    params: str
    latency_ms: dict[int, float]

    def cells(self) -> dict[str, str]:
        return {
            "architecture": self.name,
            "seed": "-" if self.seed is None else str(self.seed),
            "test acc": f"{100 * self.accuracy:.2f}%",
            "macro F1": f"{self.macro_f1:.4f}",
            "epochs": "-" if self.epochs is None else str(self.epochs),
            "train s": f"{self.train_seconds:.1f}" if self.train_seconds >= 1 else f"{self.train_seconds:.2f}",
            "params": self.params,
            **{f"latency b{b} ms": f"{ms:.2f}" for b, ms in self.latency_ms.items()},
        }


# -- data ------------------------------------------------------------------------------
def svc_split(val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train+val, test) indices of digits, checked equal to the dlsuite pipeline's split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from dlsuite.data.splits import split_indices

    labels = load_digits().target
    train, val, test = split_indices(labels, val_fraction, TEST_FRACTION, SPLIT_SEED)
    rest, test_sk = train_test_split(
        np.arange(len(labels)), test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )
    if not np.array_equal(test, np.sort(test_sk)):
        raise AssertionError("the pipeline's digits test split differs from train_test_split(stratify=y, random_state=0)")
    if not np.array_equal(np.sort(np.concatenate([train, val])), np.sort(rest)):
        raise AssertionError("the pipeline's train+val split differs from the SVC's training rows")
    return np.sort(rest), test


def check_same_test_images(test_pixels: np.ndarray, test_labels: np.ndarray, test_idx: np.ndarray) -> None:
    """The pipeline's test images, in order, are the SVC's test rows (0-16 features, rescaled to 0-255)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    if not np.array_equal(test_labels, bunch.target[test_idx]):
        raise AssertionError("the pipeline's test labels are not digits' labels at the SVC's test indices")
    features = np.round(test_pixels.reshape(len(test_pixels), -1) * (16.0 / 255.0))
    if not np.array_equal(features, bunch.data[test_idx]):
        raise AssertionError("the pipeline's test images are not digits' images at the SVC's test indices")


def split_arrays(ds: Any) -> tuple[np.ndarray, np.ndarray]:
    """An unbatched ``(features, label)`` dataset as two arrays."""
    pairs = list(ds.as_numpy_iterator())
    return np.stack([x for x, _ in pairs]), np.array([y for _, y in pairs])


# -- timing ----------------------------------------------------------------------------
def batch_of(pixels: np.ndarray, size: int) -> np.ndarray:
    if len(pixels) < size:
        raise ValueError(f"only {len(pixels)} test images for a batch of {size}")
    return pixels[:size]


def export_latency(export_dir: str, test_pixels: np.ndarray, test_labels: np.ndarray, repeats: int) -> dict[int, float]:
    """Latency of the export's ``serving_default`` on uint8 test images; checks its test accuracy too."""
    import tensorflow as tf

    from dlsuite import export

    shape = tuple(export.load_metadata(export_dir)["input_shape"])
    if tuple(test_pixels.shape[1:]) != shape:
        raise AssertionError(f"test images have shape {test_pixels.shape[1:]}, the export takes {shape}")
    loaded = tf.saved_model.load(export_dir)  # keep a reference: the signature needs the loaded object alive
    serve = loaded.signatures["serving_default"]

    def call(batch: tf.Tensor) -> np.ndarray:
        return serve(images=batch)["class_id"].numpy()

    served = call(tf.constant(test_pixels.astype(np.uint8)))
    log.info("export serves test accuracy %.4f", float(np.mean(served == test_labels)))
    latency = {}
    for size in LATENCY_BATCHES:
        batch = tf.constant(batch_of(test_pixels, size).astype(np.uint8))
        latency[size] = common.median_ms(lambda: call(batch), repeats)
    del loaded
    return latency


# -- runs ------------------------------------------------------------------------------
def resolve(architecture: str, seed: int, out: Path, extra: Sequence[str] = ()) -> tuple[Any, dict[str, Any]]:
    from dlsuite.tasks import runner

    return runner.resolve_config(
        TASK,
        overrides=[
            f"architecture={architecture}",
            f"seed={seed}",
            f"data.dataset={DATASET}",
            f"data.test_fraction={TEST_FRACTION}",
            "train.verbose=0",  # stdout carries the table only
            *extra,
        ],
        values={"export.root": str(out / "saved_models"), "run.root": str(out / "runs")},
    )


def run_network(architecture: str, seed: int, splits: Any, out: Path, test: tuple[np.ndarray, np.ndarray],
                repeats: int, extra: Sequence[str] = ()) -> Row:
    """Train, evaluate and export one network on the fixed split; time its export."""
    from dlsuite.tasks import runner

    task, cfg = resolve(architecture, seed, out, extra)
    run_dir = out / "runs" / f"{architecture}-seed{seed}"
    if run_dir.exists():
        raise SystemExit(f"{run_dir} exists already; pass a new --out.")
    log.info("training %s (seed %d) -> %s", architecture, seed, run_dir)
    # The splits were loaded once with the split seed, so cfg["seed"] only seeds training.
    result = runner.run(task, cfg, run_dir, splits=splits)
    metrics = result.metrics
    log.info(
        "%s: test accuracy %.4f, %d epochs, %.1f s", architecture, metrics["accuracy"], metrics["epochs_run"],
        metrics["train_seconds"],
    )
    return Row(
        name=architecture,
        seed=seed,
        accuracy=metrics["accuracy"],
        macro_f1=metrics["macro_f1"],
        epochs=metrics["epochs_run"],
        train_seconds=metrics["train_seconds"],
        params=f"{result.model.count_params():,}",
        latency_ms=export_latency(result.export_dir, *test, repeats),
    )


def run_svc(train_idx: np.ndarray, test_idx: np.ndarray, repeats: int) -> Row:
    """SVC on the 0-16 features of all non-test rows, tested on the same test rows."""
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    from dlsuite import reporting

    bunch = load_digits()
    x, y = bunch.data, bunch.target
    log.info("fitting SVC(%s) on %d rows", ", ".join(f"{k}={v}" for k, v in SVC_PARAMS.items()), len(train_idx))
    svc = SVC(**SVC_PARAMS)
    started = time.perf_counter()
    svc.fit(x[train_idx], y[train_idx])
    fit_seconds = time.perf_counter() - started
    metrics = reporting.classification_metrics(y[test_idx], svc.predict(x[test_idx]), list(map(str, bunch.target_names)))
    test_x = x[test_idx]
    return Row(
        name=f"SVC(gamma={SVC_PARAMS['gamma']}, C={SVC_PARAMS['C']})",
        seed=None,
        accuracy=metrics["accuracy"],
        macro_f1=metrics["macro_f1"],
        epochs=None,
        train_seconds=fit_seconds,
        params=f"{int(svc.n_support_.sum())} SVs",
        latency_ms={b: common.median_ms(lambda b=b: svc.predict(batch_of(test_x, b)), repeats) for b in LATENCY_BATCHES},
    )


# -- report ----------------------------------------------------------------------------
def table(rows: Sequence[Row], with_seed: bool) -> str:
    from dlsuite import reporting

    columns = COLUMNS[:1] + ["seed"] + COLUMNS[1:] if with_seed else COLUMNS
    return reporting.format_table([r.cells() for r in rows], columns)


def verdict(networks: Sequence[Row], svc: Row, num_test: int) -> str:
    """Whether the best network (by mean accuracy over seeds) beats SVC, and which networks do not."""
    by_arch: dict[str, list[float]] = {}
    for row in networks:
        by_arch.setdefault(row.name, []).append(row.accuracy)
    means = {arch: statistics.mean(accs) for arch, accs in by_arch.items()}
    best = max(means, key=means.get)
    seeds = len(next(iter(by_arch.values())))
    what = "test accuracy" if seeds == 1 else f"mean test accuracy over {seeds} seeds"
    delta = means[best] - svc.accuracy
    images = f"{delta * num_test:+.0f}" if seeds == 1 else f"{delta * num_test:+.1f}"
    outcome = "beats" if delta > 1e-9 else "ties with, so does NOT beat," if delta > -1e-9 else "does NOT beat"
    line = (
        f"Best dlsuite network: **{best}**, {what} {100 * means[best]:.2f}% — {outcome} SVC "
        f"({100 * svc.accuracy:.2f}%): {100 * delta:+.2f} points, {images} of {num_test} test images."
    )
    below = [a for a, m in means.items() if m < svc.accuracy]
    if below:
        line += f" Below SVC: {', '.join(below)}."
    return line


def results_section(command: str, body: str, verdict_line: str, total_seconds: float, repeats: int,
                    num_test: int, loads: tuple[str, str]) -> str:
    return "\n".join([
        *common.section_header(TASK, "Image classification (digits)", command, total_seconds, loads),
        "",
        f"scikit-learn digits (1,797 8x8 images), split seed 0, 20% stratified test split ({num_test} images), "
        "the same test images for every row. Networks: the task's default config (72% train / 8% validation for "
        "early stopping on validation loss, best weights kept). SVC: trained on all 80% non-test rows, "
        "original 0-16 features. Latency: median of "
        f"{repeats} calls after {common.WARMUP_CALLS} warm-up calls, in-process — for networks the exported "
        "SavedModel's `serving_default` on uint8 pixels (reloaded with `tf.saved_model.load`), for SVC `predict`. "
        "`train s` is `fit` wall time (SVC: its `fit`); `params` counts the exported model's weights "
        "(SVC: support vectors).",
        "",
        body,
        "",
        verdict_line,
        f"<!-- {TASK}:end -->",
    ])


# -- main ------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None, architectures: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--architectures", default=",".join(architectures),
                        help=f"comma-separated subset of {','.join(architectures)}")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds (the split stays seed 0)")
    parser.add_argument("--out", type=Path, help="keep run directories and exports here (default: a temp dir)")
    parser.add_argument("--repeats", type=int, default=100, help="timed calls per latency figure")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every network (repeatable), e.g. train.label_smoothing=0.1")
    parser.add_argument("--write-results", action="store_true", help=f"rewrite this section of {common.RESULTS_FILE.name}")
    args = parser.parse_args(argv)
    args.architectures = [a.strip() for a in args.architectures.split(",") if a.strip()]
    unknown = sorted(set(args.architectures) - set(architectures))
    if unknown or not args.architectures:
        parser.error(f"--architectures takes names from {', '.join(architectures)}; got {args.architectures}")
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
    if not args.seeds or args.repeats < 1:
        parser.error("--seeds needs at least one seed and --repeats at least 1")
    return args


def benchmark(args: argparse.Namespace, out: Path) -> tuple[list[Row], Row, int]:
    """All networks and the SVC baseline on the one fixed split."""
    task, cfg = resolve(args.architectures[0], SPLIT_SEED, out)
    splits = task.load(cfg)
    train_idx, test_idx = svc_split(cfg["data"]["val_fraction"])
    test = split_arrays(splits.test)
    check_same_test_images(*test, test_idx)
    log.info("split checked: %d train+val rows, the same %d test images for networks and SVC", len(train_idx), len(test_idx))
    svc = run_svc(train_idx, test_idx, args.repeats)
    networks = [
        run_network(arch, seed, splits, out, test, args.repeats, args.set) for arch in args.architectures for seed in args.seeds
    ]
    return networks, svc, len(test_idx)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # its "Assets written" lines twice per export
    started, load_at_start = time.perf_counter(), common.load_average()
    from dlsuite import tasks

    args = parse_args(argv, [a for a in tasks.get(TASK).architectures if a != "transfer"])
    command = shlex.join(["python", "benchmarks/image_classification.py", *(sys.argv[1:] if argv is None else argv)])
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        networks, svc, num_test = benchmark(args, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="dlsuite-bench-") as tmp:
            networks, svc, num_test = benchmark(args, Path(tmp))
    body = table([*networks, svc], with_seed=len(args.seeds) > 1)
    verdict_line = verdict(networks, svc, num_test)
    total = time.perf_counter() - started
    print(body)
    print()
    print(verdict_line)
    log.info("total runtime %.1f min", total / 60)
    if args.write_results:
        loads = (load_at_start, common.load_average())
        common.write_results(TASK, results_section(command, body, verdict_line, total, args.repeats, num_test, loads))
        log.info("wrote %s", common.RESULTS_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
