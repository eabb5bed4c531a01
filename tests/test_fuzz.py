"""Fuzzed bad input (hypothesis): the configuration and every task's data sources.

Each generated case must end in a :class:`~dlsuite.errors.DlsuiteError` (the CLI's one line,
exit 2) or in data the pipeline can use: splits that iterate without an error, hold no
infinite feature and only known class ids. Nothing here trains a network. The export
signatures are fuzzed over HTTP in ``test_fuzz_serving.py``.

Every test is derandomized with a small ``max_examples``, so a run is quick and the same
each time; ``pytest -s`` prints how many cases each surface tried.
"""

from __future__ import annotations

import collections
import csv
import io
import math
import os
import struct
import tempfile
import wave
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dlsuite import architectures, config
from dlsuite.errors import DlsuiteError
from dlsuite.tasks import runner

TASKS = ("image_classification", "sentiment", "speech", "anomaly", "fraud")
FUZZ = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                   HealthCheck.function_scoped_fixture])
CASES: collections.Counter = collections.Counter()  # surface -> cases tried


@pytest.fixture(scope="module", autouse=True)
def report_cases():
    """Print the number of cases each surface tried (visible with ``pytest -s``)."""
    yield
    for surface, count in sorted(CASES.items()):
        print(f"\nfuzz cases: {surface}: {count}")


# -- configuration ------------------------------------------------------------------------------
# YAML scalars a user may type after `--set key=`: every type, out-of-range numbers, YAML's odd
# forms (1.1 booleans, sexagesimal, hex, anchors), bad syntax and a tag that would build an object.
YAML_VALUES = st.one_of(
    st.integers(-10**20, 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from([
        "", "null", "~", "true", "false", "yes", "off", "[]", "{}", "[1, 2]", "[32, 32]", "{a: 1}", "[unclosed",
        "{a: ", "'quoted'", '""', "0x10", "0o17", "1_000", "12:30", "2026-12-08", ".nan", ".inf", "-.inf", "1e999",
        "-1e999", "1e-4", "-0", "&a [*a]", "*undefined", "!!python/object/apply:os.system ['true']",
        "!!binary aGk=", "- a\n- b", "a: b: c", "\x00", "%TAG", "mlp", "adam", "own",
    ]),
    st.text(max_size=12),
)


def _known_keys(task_name: str) -> list[str]:
    task = runner.get_task(task_name)
    cfg = task.default_config()
    hparams = architectures.get(cfg["architecture"]).hparams()
    return sorted(config.flatten(cfg)) + [f"model.{k}" for k in hparams] + ["model", "train", "data"]


def _keys(task_name: str) -> st.SearchStrategy[str]:
    known = _known_keys(task_name)
    return st.one_of(
        st.sampled_from(known),
        st.sampled_from(known).map(lambda k: k + ".extra"),  # a leaf taken for a section
        st.sampled_from(known).map(lambda k: k[:-1]),  # a typo
        st.text(alphabet="abcdeilmnoprst._ ", max_size=14),  # unknown keys, empty parts
    )


def _without(message: str, items: list[str]) -> str:
    for item in items:
        message = message.replace(item, "")
    return message


def _last_part(item: str) -> str:
    return item.partition("=")[0].strip().split(".")[-1]


@pytest.mark.parametrize("task_name", TASKS)
def test_set_overrides_end_in_a_clear_error_or_a_well_typed_config(task_name):
    """``--set key=value``: a DlsuiteError naming the key, or a config whose values keep their types."""
    defaults = config.flatten(runner.get_task(task_name).default_config())

    @settings(max_examples=60, **FUZZ)
    @given(st.lists(st.tuples(_keys(task_name), YAML_VALUES).map("=".join), min_size=1, max_size=3))
    @example(["train.epochs=-1"])
    @example(["train.learning_rate=.nan"])
    @example(["train.warmup_fraction=-.inf"])
    @example(["train.steps_per_execution.extra=0"])
    @example(["train.weight_decay=abc"])
    @example(["data.val_fraction=.inf"])
    @example(["model=5"])
    @example(["=3"])
    @example(["train.epochs=!!python/object/apply:os.system ['true']"])
    def check(items: list[str]) -> None:
        CASES["config --set"] += 1
        try:
            _, cfg = runner.resolve_config(task_name, overrides=items)
        except DlsuiteError as e:
            message = str(e)
            assert "\n" not in _without(message, items), message  # one line, but for the user's own text
            assert any(_last_part(item) in message for item in items), (items, message)
            return
        for key, value in config.flatten(cfg).items():
            default = defaults.get(key)
            if isinstance(value, float):
                assert math.isfinite(value), (items, key, value)
            if key in defaults and default is not None and value is not None and not key.startswith("model"):
                assert isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, float)), (
                    items, key, value)

    check()


@pytest.mark.parametrize("task_name, item", [
    ("speech", "data.duration=.nan"), ("speech", "features.frame_ms=-.inf"), ("anomaly", "threshold.contamination=.inf"),
    ("fraud", "cost.false_negative=.nan"), ("image_classification", "train.label_smoothing=.nan"),
])
def test_a_float_setting_must_be_finite(task_name, item):
    """A NaN or infinite float setting is refused: it would reach training as a NaN loss or a NaN threshold."""
    with pytest.raises(DlsuiteError, match="must be a finite number"):
        runner.resolve_config(task_name, overrides=[item])


CONFIG_FILES = st.one_of(
    st.binary(max_size=64),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)),
        lambda inner: st.one_of(st.lists(inner, max_size=3),
                                st.dictionaries(st.sampled_from(["train", "data", "model", "epochs", "x"]), inner,
                                                max_size=3)),
        max_leaves=8,
    ).map(lambda doc: __import__("yaml").safe_dump(doc).encode()),
)


@settings(max_examples=40, **FUZZ)
@given(content=CONFIG_FILES, task_name=st.sampled_from(TASKS))
@example(content=b"!!python/object/apply:os.system ['true']", task_name="fraud")
@example(content=b"\xff\xfe\x00bad", task_name="sentiment")
def test_config_files_end_in_a_clear_error_or_a_config(tmp_path, content, task_name):
    """``--config FILE.yaml`` holding anything: a DlsuiteError naming the file, or a config."""
    CASES["config --config FILE"] += 1
    path = tmp_path / "cfg.yaml"
    path.write_bytes(content)
    try:
        runner.resolve_config(task_name, config_file=path)
    except DlsuiteError as e:
        assert "\n" not in str(e)


# -- data sources --------------------------------------------------------------------------------
def fresh(tmp_path: Path) -> Path:
    """A new empty folder for one example (hypothesis reuses the test's ``tmp_path``)."""
    return Path(tempfile.mkdtemp(dir=tmp_path))


def _load(task_name: str, path: Path, **settings_: Any):
    """``task.load(cfg)`` with ``data.path`` and data settings; None when it refused with a DlsuiteError."""
    overrides = [f"data.{k}={'null' if v is None else v}" for k, v in settings_.items()]
    task, cfg = runner.resolve_config(task_name, overrides=overrides, values={"data.path": str(path)})
    try:
        splits = task.load(cfg)
    except DlsuiteError as e:
        assert "\n" not in str(e).strip(), str(e)
        if os.environ.get("FUZZ_SHOW_REFUSALS"):
            print(f"refused ({task_name}): {e}")
        return None
    _check_splits(splits)
    CASES[f"data: {task_name}: loaded (the rest refused)"] += 1
    return splits


def _check_splits(splits) -> None:
    """Every split iterates; float features are finite or NaN (missing); class ids are known."""
    classes = splits.metadata.get("class_names")
    for name in ("train", "val", "test"):
        for features, label in getattr(splits, name):
            for value in tf.nest.flatten(features):
                array = np.asarray(value.numpy())
                if array.dtype.kind == "f":
                    assert not np.isinf(array).any(), f"{name} split holds an infinite feature"
            if classes:
                ids = np.asarray(label).ravel()
                assert ((ids >= 0) & (ids < len(classes))).all(), (ids, classes)


COLUMN_NAMES = ["text", "label", "amount", "kind", "when", "Days:Policy", ""]
LABEL_CELLS = st.one_of(st.sampled_from(["0", "1", "yes", "no", "legit", "fraud", "pos", "neg"]), st.integers(0, 1))
NUMBER_CELLS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.integers(-1000, 1000))
TEXT_CELLS = st.one_of(st.text(max_size=16), st.binary(max_size=8), st.sampled_from(["?", "n/a", "", "great", "bad"]))
ANY_CELLS = st.one_of(st.none(), LABEL_CELLS, NUMBER_CELLS, TEXT_CELLS)


@st.composite
def tables(draw) -> pd.DataFrame:
    """A usable table (text, label, numeric, categorical and time columns) with a few things broken:
    columns dropped, cells replaced by values of any kind (NaN, inf, bytes, text in numbers), one class only."""
    rows = draw(st.sampled_from([0, 1, 2, 12, 40, 40, 40]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    labels = np.resize([0, 0, 0, 1], rows)
    frame = pd.DataFrame({
        "text": [f"review {i} {'great' if y else 'bad'}" for i, y in enumerate(labels)], "label": labels,
        "amount": rng.normal(100, 30, rows).round(2), "kind": rng.choice(["a", "b", "c"], rows),
        "when": np.arange(rows), "Days:Policy": rng.integers(0, 5, rows),
    }).astype(object)
    for _ in range(draw(st.integers(0, 3))):
        column = draw(st.sampled_from(list(frame.columns) or ["label"]))
        action = draw(st.sampled_from(["drop", "cells", "cells", "one_class", "column"]))
        if action == "drop" and column in frame:
            frame = frame.drop(columns=column)
        elif action == "one_class" and "label" in frame:
            frame["label"] = 1
        elif action == "column":
            frame[column] = draw(st.lists(ANY_CELLS, min_size=rows, max_size=rows))
        elif rows and column in frame:
            for row in draw(st.lists(st.integers(0, rows - 1), max_size=4)):
                frame.loc[row, column] = draw(ANY_CELLS)
    return frame


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")  # written back as the same raw bytes
    return str(value)


def _printable(value: Any) -> Any:
    return value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes) else value


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` in the format of ``path``'s suffix; raw bytes cells stay raw (non-UTF-8) in text files."""
    if path.suffix in (".parquet", ".pq"):
        try:
            frame.to_parquet(path)
        except Exception:  # mixed Python types: pyarrow wants one type per column
            frame.map(lambda v: None if v is None else str(_printable(v))).to_parquet(path)
        return
    if path.suffix == ".jsonl":
        path.write_text(frame.map(_printable).to_json(orient="records", lines=True))
        return
    out = io.StringIO()
    writer = csv.writer(out, delimiter="," if path.suffix == ".csv" else "\t", lineterminator="\n")
    writer.writerow(frame.columns)
    writer.writerows([[_cell(v) for v in row] for row in frame.itertuples(index=False)])
    path.write_text(out.getvalue(), encoding="utf-8", errors="surrogateescape")


TABLE_FILES = st.one_of(
    st.tuples(tables(), st.sampled_from([".csv", ".tsv", ".txt", ".parquet", ".jsonl"])),
    st.tuples(st.binary(max_size=40), st.sampled_from([".csv", ".tsv", ".parquet"])),  # not a table at all
)


def _table_path(tmp_path: Path, case) -> Path:
    content, suffix = case
    path = fresh(tmp_path) / f"table{suffix}"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        write_table(content, path)
    return path


ONE_CLASS = pd.DataFrame({"text": [f"review {i}" for i in range(12)], "label": [1] * 12})
ONE_ROW = pd.DataFrame({"text": ["good"], "label": [1], "amount": [1.0], "when": [3]})
WITH_INF = pd.DataFrame({"amount": [1.0, float("inf"), -float("inf"), 2.0] * 6, "kind": ["a", "b"] * 12,
                         "label": [0, 1, 0, 0] * 6})


@settings(max_examples=40, **FUZZ)
@given(case=TABLE_FILES)
@example(case=(ONE_CLASS, ".csv"))
@example(case=(ONE_ROW, ".parquet"))
@example(case=(b"", ".csv"))
@example(case=(b"text,label\n\xff\xfe,1\n", ".csv"))
def test_sentiment_tables(tmp_path, case):
    CASES["data: sentiment tables"] += 1
    _load("sentiment", _table_path(tmp_path, case))


@settings(max_examples=40, **FUZZ)
@given(case=TABLE_FILES, label=st.sampled_from([None, "label"]), time=st.sampled_from([None, "when"]))
@example(case=(WITH_INF, ".csv"), label="label", time=None)
@example(case=(ONE_ROW, ".csv"), label="label", time="when")
def test_anomaly_tables(tmp_path, case, label, time):
    CASES["data: anomaly tables"] += 1
    _load("anomaly", _table_path(tmp_path, case), label_column=label, time_column=time, window=4)


@settings(max_examples=40, **FUZZ)
@given(case=TABLE_FILES, time=st.sampled_from([None, "when"]))
@example(case=(WITH_INF, ".parquet"), time=None)
@example(case=(ONE_ROW, ".tsv"), time="when")
def test_fraud_tables(tmp_path, case, time):
    CASES["data: fraud tables"] += 1
    _load("fraud", _table_path(tmp_path, case), label_column="label", time_column=time)


@settings(max_examples=25, **FUZZ)
@given(rows=st.integers(0, 60), window=st.integers(-1, 64), stride=st.integers(-1, 5))
@example(rows=40, window=64, stride=1)
@example(rows=40, window=0, stride=1)
@example(rows=40, window=8, stride=0)
def test_series_too_short_for_a_window(tmp_path, rows, window, stride):
    """A time series shorter than the window (or a window/stride below 1): a clear error, or windows in every split."""
    CASES["data: anomaly series windows"] += 1
    t = np.arange(rows)
    frame = pd.DataFrame({"when": t, "a": np.sin(t / 3.0), "b": np.cos(t / 5.0), "label": (t % 17 == 0).astype(int)})
    path = fresh(tmp_path) / "series.csv"
    frame.to_csv(path, index=False)
    splits = _load("anomaly", path, label_column="label", time_column="when", window=window, stride=stride)
    if splits is not None:
        assert all(splits.metadata["num_examples"][k] >= 1 for k in ("train", "val", "test"))


# -- image and audio folders ----------------------------------------------------------------------
def _png(width: int, height: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return tf.io.encode_png(pixels).numpy()


def _huge_png_header() -> bytes:
    """A PNG declaring 40,000 x 40,000 pixels (1.6 gigapixels) with no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def image_file(kind: str, seed: int) -> tuple[str, bytes]:
    """(suffix, content) of one image file of the given kind."""
    good = _png(3 + seed % 9, 2 + seed % 7, seed)
    pixels = np.random.default_rng(seed).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    return {
        "png": (".png", good),
        "jpeg": (".jpg", tf.io.encode_jpeg(pixels).numpy()),
        "gray_png": (".png", tf.io.encode_png(pixels[..., :1]).numpy()),
        "jpeg_named_png": (".png", tf.io.encode_jpeg(pixels).numpy()),
        "zero_bytes": (".png", b""),
        "truncated": (".png", good[: len(good) // 2]),
        "random": (".jpg", np.random.default_rng(seed).bytes(64)),
        "text": (".bmp", b"not an image at all\n"),
        "huge": (".png", _huge_png_header()),
        "not_an_image_suffix": (".txt", b"ignored"),
    }[kind]


IMAGE_KINDS = ["png"] * 12 + ["jpeg", "gray_png", "jpeg_named_png", "zero_bytes", "truncated", "random",
               "text", "huge", "not_an_image_suffix"]


@st.composite
def folders(draw, kinds: list[str]) -> dict[str, list[str]]:
    """class name -> kinds of its files; one or two classes."""
    classes = draw(st.sampled_from([["a"], ["a", "b"], ["a", "b"], ["a", "b", "c"]]))
    return {c: draw(st.lists(st.sampled_from(kinds), min_size=draw(st.sampled_from([0, 6])), max_size=9))
            for c in classes}


def _good_images(n: int) -> dict[str, list[str]]:
    return {"a": ["png"] * n, "b": ["png"] * n}


@settings(max_examples=25, **FUZZ)
@given(layout=folders(IMAGE_KINDS))
@example(layout=_good_images(6))
@example(layout={**_good_images(6), "c": ["huge"]})
@example(layout={**_good_images(6), "c": ["zero_bytes"]})
@example(layout={**_good_images(6), "c": ["truncated"]})
@example(layout={"a": ["jpeg_named_png"] * 6, "b": ["gray_png"] * 6})
def test_image_folders(tmp_path, layout):
    CASES["data: image folders"] += 1
    tmp_path = fresh(tmp_path)
    for c, kinds in layout.items():
        (tmp_path / c).mkdir()
        for i, kind in enumerate(kinds):
            suffix, content = image_file(kind, i)
            (tmp_path / c / f"{i}{suffix}").write_bytes(content)
    _load("image_classification", tmp_path, image_size="[8, 8]")


def _wav(samples: np.ndarray, width: int, channels: int = 1, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        scaled = np.clip(samples, -1, 1)
        if width == 1:
            w.writeframes(((scaled + 1) * 127.5).astype(np.uint8).tobytes())
        else:
            ints = (scaled * (2 ** (8 * width - 1) - 1)).astype("<i4")
            w.writeframes(b"".join(int(v).to_bytes(4, "little", signed=True)[:width] for v in ints.reshape(-1)))
    return out.getvalue()


def audio_file(kind: str, seed: int) -> bytes:
    """The content of one .wav file of the given kind."""
    clip = np.random.default_rng(seed).uniform(-0.5, 0.5, 400 + 37 * seed)
    good = _wav(clip, 2)
    float_header = bytearray(good)
    float_header[20:22] = struct.pack("<H", 3)  # WAVE_FORMAT_IEEE_FLOAT
    declared_huge = bytearray(good)
    declared_huge[40:44] = struct.pack("<I", 2**31)  # the data chunk claims 2 GB
    return {
        "wav16": good,
        "wav8": _wav(clip, 1),
        "wav24": _wav(clip, 3),
        "stereo": _wav(np.repeat(clip, 2), 2, channels=2, rate=22050),
        "one_sample": _wav(clip[:1], 2),
        "zero_bytes": b"",
        "header_only": good[:44],
        "truncated": good[: 44 + 101],
        "random": np.random.default_rng(seed).bytes(100),
        "float_format": bytes(float_header),
        "declared_huge": bytes(declared_huge),
        "png": _png(4, 4, seed),
    }[kind]


AUDIO_KINDS = ["wav16"] * 15 + ["wav8", "wav24", "stereo", "one_sample", "zero_bytes", "header_only",
               "truncated", "random", "float_format", "declared_huge", "png"]


def _good_clips(n: int) -> dict[str, list[str]]:
    return {"a": ["wav16"] * n, "b": ["wav16"] * n}


@settings(max_examples=25, **FUZZ)
@given(layout=folders(AUDIO_KINDS))
@example(layout={"a": ["wav16", "wav8", "wav24", "stereo"] * 2, "b": ["wav16"] * 6})
@example(layout={**_good_clips(6), "c": ["truncated"]})
@example(layout={**_good_clips(6), "c": ["declared_huge"]})
@example(layout={**_good_clips(6), "c": ["one_sample"]})
@example(layout={**_good_clips(6), "c": ["float_format"]})
def test_audio_folders(tmp_path, layout):
    CASES["data: audio folders"] += 1
    tmp_path = fresh(tmp_path)
    for c, kinds in layout.items():
        (tmp_path / c).mkdir()
        for i, kind in enumerate(kinds):
            (tmp_path / c / f"{i}.wav").write_bytes(audio_file(kind, i))
    _load("speech", tmp_path, duration=0.1)
