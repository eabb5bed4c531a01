"""Speech benchmark: every dlsuite speech network against MFCC statistics + SVC on FSDD.

    .venv/bin/python benchmarks/speech.py --write-results

The Free Spoken Digit Dataset (``../shared/datasets/fsdd/recordings``, 3,000 clips,
6 speakers) is split two ways: the dataset's own split (take index 0-4 of every
digit and speaker is test, 300 clips) and a speaker-independent split (one whole
speaker, picked by seed 0, is test; no test speaker is heard in training). For
each architecture of the ``speech`` task this trains the task's default
configuration on both splits through ``runner.run`` and reports test accuracy,
macro F1, epochs run and training time; on the own split it also exports the
model and times the exported ``serving_default`` on one one-second clip.

The baseline computes 13 MFCCs with the same front-end layer, summarizes each clip
by the mean and standard deviation of every coefficient and of its frame-to-frame
delta (52 features), standardizes them and fits ``SVC(C=10)`` on the networks'
train+validation clips of the same split, tested on the same test clips.

Options:
    --data DIR                   FSDD recordings (default ../shared/datasets/fsdd/recordings)
    --architectures cnn,gru      a subset (default: all of the task's architectures)
    --epochs N                   cap on training epochs (default: the task's default)
    --out DIR                    keep runs and exports in DIR (default: a temporary directory)
    --repeats N                  timed calls per latency figure (default 50)
    --write-results              rewrite the speech section of benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import common

TASK = "speech"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "fsdd" / "recordings"
SPLITS = ("own", "speaker")
SVC_C = 10.0
COLUMNS = ["model", "own acc", "own F1", "speaker acc", "speaker F1", "epochs", "train s", "params", "latency 1 clip ms"]

log = logging.getLogger("bench")


def resolve(architecture: str, split: str, args: argparse.Namespace, out: Path) -> tuple[Any, dict[str, Any]]:
    from dlsuite.tasks import runner

    overrides = [f"architecture={architecture}", f"data.split={split}", "seed=0", "train.verbose=0"]
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    return runner.resolve_config(
        TASK, overrides=overrides,
        values={"data.path": str(args.data), "export.root": str(out / "saved_models"), "run.root": str(out / "runs")},
    )


def split_arrays(ds: Any) -> tuple[np.ndarray, np.ndarray]:
    pairs = list(ds.as_numpy_iterator())
    return np.stack([x for x, _ in pairs]), np.array([y for _, y in pairs])


def export_latency(export_dir: str, test_x: np.ndarray, test_y: np.ndarray, repeats: int) -> float:
    """Median ms of the export's ``serving_default`` on one one-second clip; logs its test accuracy."""
    import tensorflow as tf

    loaded = tf.saved_model.load(export_dir)
    serve = loaded.signatures["serving_default"]
    served = serve(waveforms=tf.constant(test_x))["label_id"].numpy()
    log.info("export serves test accuracy %.4f", float(np.mean(served == test_y)))
    clip = tf.constant(test_x[:1])
    ms = common.median_ms(lambda: serve(waveforms=clip)["label_id"].numpy(), repeats)
    del loaded
    return ms


def mfcc_statistics(waveforms: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean and std of 13 MFCCs and of their deltas, per clip."""
    from dlsuite.data.spectrogram import LogMelSpectrogram

    frontend = LogMelSpectrogram(sample_rate=sample_rate, frame_ms=30.0, step_ms=10.0, num_mel_bins=40, num_mfcc=13)
    feats = []
    for start in range(0, len(waveforms), 256):
        mfcc = np.asarray(frontend(waveforms[start:start + 256]))
        delta = np.diff(mfcc, axis=1)
        feats.append(np.concatenate([mfcc.mean(1), mfcc.std(1), delta.mean(1), delta.std(1)], axis=1))
    return np.concatenate(feats)


def run_svc(splits: Any, sample_rate: int) -> dict[str, float]:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from dlsuite import reporting

    train_x, train_y = split_arrays(splits.train.concatenate(splits.val))
    test_x, test_y = split_arrays(splits.test)
    model = make_pipeline(StandardScaler(), SVC(C=SVC_C))
    started = time.perf_counter()
    model.fit(mfcc_statistics(train_x, sample_rate), train_y)
    seconds = time.perf_counter() - started
    metrics = reporting.classification_metrics(test_y, model.predict(mfcc_statistics(test_x, sample_rate)), splits.class_names)
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "train_seconds": seconds}


def benchmark(args: argparse.Namespace, out: Path) -> tuple[list[dict[str, str]], dict[str, Any]]:
    from dlsuite.tasks import runner

    rows: dict[str, dict[str, Any]] = {}
    facts: dict[str, Any] = {}
    for split in SPLITS:
        task, cfg = resolve(args.architectures[0], split, args, out)
        splits = task.load(cfg)
        facts[split] = splits.metadata
        log.info("%s split: %s examples, test speakers %s", split, splits.metadata["num_examples"],
                 splits.metadata.get("speakers", {}).get("test"))
        test_x, test_y = split_arrays(splits.test)
        svc = run_svc(splits, splits.metadata["sample_rate"])
        log.info("SVC on %s split: %.4f", split, svc["accuracy"])
        rows.setdefault("svc", {"model": f"MFCC stats + SVC(C={SVC_C:g})", "params": "-", "latency": None})
        rows["svc"][split] = svc
        for arch in args.architectures:
            task, cfg = resolve(arch, split, args, out)
            export = split == "own"
            log.info("training %s on the %s split", arch, split)
            result = runner.run(task, cfg, out / "runs" / f"{arch}-{split}", splits=splits, do_export=export)
            m = result.metrics
            log.info("%s/%s: accuracy %.4f, %d epochs, %.1f s", arch, split, m["accuracy"], m["epochs_run"], m["train_seconds"])
            row = rows.setdefault(arch, {"model": arch, "params": f"{result.model.count_params():,}", "latency": None})
            row[split] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "train_seconds": m["train_seconds"],
                          "epochs": m["epochs_run"]}
            if export:
                row["latency"] = export_latency(result.export_dir, test_x, test_y, args.repeats)
    table = []
    for key, row in rows.items():
        own, spk = row["own"], row["speaker"]
        table.append({
            "model": row["model"],
            "own acc": f"{100 * own['accuracy']:.2f}%",
            "own F1": f"{own['macro_f1']:.4f}",
            "speaker acc": f"{100 * spk['accuracy']:.2f}%",
            "speaker F1": f"{spk['macro_f1']:.4f}",
            "epochs": f"{own['epochs']}/{spk['epochs']}" if "epochs" in own else "-",
            "train s": f"{own['train_seconds']:.1f}/{spk['train_seconds']:.1f}",
            "params": row["params"],
            "latency 1 clip ms": "-" if row["latency"] is None else f"{row['latency']:.2f}",
            "_own": own["accuracy"], "_speaker": spk["accuracy"], "_key": key,
        })
    return table, facts


def verdict(table: Sequence[dict[str, Any]]) -> list[str]:
    svc = next(r for r in table if r["_key"] == "svc")
    nets = [r for r in table if r["_key"] != "svc"]
    lines = []
    for split, key in (("own", "_own"), ("speaker-independent", "_speaker")):
        best = max(nets, key=lambda r: r[key])
        delta = best[key] - svc[key]
        outcome = "beats" if delta > 1e-9 else "does NOT beat"
        lines.append(
            f"{split} split: best network **{best['model']}** {100 * best[key]:.2f}% {outcome} the SVC baseline "
            f"({100 * svc[key]:.2f}%), {100 * delta:+.2f} points."
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    started, load_at_start = time.perf_counter(), common.load_average()
    from dlsuite import reporting, tasks

    offered = tasks.get(TASK).architectures
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="FSDD recordings folder")
    parser.add_argument("--architectures", default=",".join(offered), help=f"subset of {','.join(offered)}")
    parser.add_argument("--epochs", type=int, default=None, help="cap on training epochs")
    parser.add_argument("--out", type=Path, help="keep runs and exports here (default: a temp dir)")
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per latency figure")
    parser.add_argument("--write-results", action="store_true", help="rewrite the speech section of RESULTS.md")
    args = parser.parse_args(argv)
    args.architectures = [a.strip() for a in args.architectures.split(",") if a.strip()]
    if not args.architectures or set(args.architectures) - set(offered):
        parser.error(f"--architectures takes names from {', '.join(offered)}")
    if not args.data.is_dir():
        parser.error(f"{args.data} does not exist; pass --data with the FSDD recordings folder")
    command = shlex.join(["python", "benchmarks/speech.py", *(sys.argv[1:] if argv is None else argv)])
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        table, facts = benchmark(args, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="dlsuite-bench-") as tmp:
            table, facts = benchmark(args, Path(tmp))
    body = reporting.format_table(table, COLUMNS)
    lines = verdict(table)
    total = time.perf_counter() - started
    print(body)
    print()
    print("\n".join(lines))
    if args.write_results:
        own, spk = facts["own"], facts["speaker"]
        text = common.section(
            TASK, "Speech recognition (Free Spoken Digit Dataset)", command, total,
            (load_at_start, common.load_average()),
            [
                f"FSDD, 3,000 clips of 6 speakers at {own['sample_rate']} Hz, padded/cropped to "
                f"{own['num_samples'] / own['sample_rate']:g} s. Own split: the dataset's (take index 0-4 is test, "
                f"{own['num_examples']['test']} clips). Speaker-independent split: speaker(s) "
                f"{', '.join(spk['speakers']['test'])} held out ({spk['num_examples']['test']} test clips), trained on "
                f"{', '.join(spk['speakers']['train'])}. Networks: the task's default config (log-mel front-end, "
                "validation = 10% of the training clips, early stopping on validation loss); `epochs` and `train s` "
                "are own/speaker. Latency: median of "
                f"{args.repeats} calls of the exported SavedModel's `serving_default` on one 1-s clip after "
                f"{common.WARMUP_CALLS} warm-up calls. Baseline: mean/std of 13 MFCCs and their deltas, "
                "StandardScaler + SVC, trained on the same train+validation clips.",
                "",
                body,
                "",
                *lines,
            ],
        )
        common.write_results(TASK, text)
        log.info("wrote %s", common.RESULTS_FILE)
    log.info("total runtime %.1f min", total / 60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
