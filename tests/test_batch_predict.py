"""Batch prediction: `dlsuite predict --model DIR --input FOLDER|TABLE --output OUT` on every input kind."""

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from dlsuite import cli, export
from dlsuite.batch_predict import CHUNK_ROWS
from dlsuite.tasks.fraud import fields_of, rows_to_fields


def read_csv_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def serve(export_dir, **kwargs):
    """The export's serving_default on NumPy inputs, as NumPy."""
    fn = tf.saved_model.load(export_dir).signatures["serving_default"]
    specs = fn.structured_input_signature[1]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in kwargs.items()}).items()}


def test_an_image_folder_with_a_corrupt_file(task_run, tmp_path, capsys):
    from dlsuite.data import images

    export_dir = task_run("image_classification").export_dir
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    splits = images.digits(val_fraction=0.1, test_fraction=0.2, seed=0)
    paths = []
    for i, (x, _) in enumerate(splits.test.take(70)):  # more than one batch of 64
        path = folder / ("more" if i % 3 == 0 else "") / f"digit{i:02d}.png"
        Image.fromarray(x.numpy()[..., 0].astype(np.uint8)).save(path)
        paths.append(str(path))
    corrupt = folder / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))  # a PNG header, then garbage
    (folder / "notes.txt").write_text("not an image, not an item")
    out = tmp_path / "predictions.csv"

    assert cli.main(["predict", "--model", export_dir, "--input", str(folder), "--output", str(out)]) == 2
    assert "1 of 71 rows failed" in capsys.readouterr().err
    rows = {row["path"]: row for row in read_csv_rows(out)}
    assert set(rows) == set(paths) | {str(corrupt)}
    assert rows[str(corrupt)]["error"] and rows[str(corrupt)]["class_name"] == ""
    assert not [p for p in paths if rows[p]["error"]]
    # Every other row says what `dlsuite predict --model DIR FILE...` says of the same file.
    assert cli.main(["predict", "--model", export_dir, *paths]) == 0
    for line in capsys.readouterr().out.strip().splitlines():
        path, label, probability = line.split("\t")
        row = rows[path]
        assert row["class_name"] == label and row["class_id"] == label  # digits: class names are the ids
        assert max(float(row[f"probabilities_{c}"]) for c in "0123456789") == pytest.approx(float(probability), abs=1e-4)
    assert not list(tmp_path.glob(".*partial"))


def test_a_folder_of_wav_clips_8_and_16_bit_and_one_that_is_no_wav(task_run, tmp_path, capsys):
    import wave

    from dlsuite.data import audio

    export_dir = task_run("speech").export_dir
    t = np.arange(8000) / 8000.0
    clips = {f"tone{i}": (0.5 * np.sin(2 * np.pi * f * t) * np.exp(-3 * t)).astype(np.float32) for i, f in enumerate((220, 660))}
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "tone0.wav").write_bytes(audio.encode_wav(clips["tone0"][:, None], 8000))
    with wave.open(str(tmp_path / "clips" / "tone1.wav"), "wb") as w:  # 8-bit unsigned PCM
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(np.round(clips["tone1"] * 127 + 128).astype(np.uint8).tobytes())
    (tmp_path / "clips" / "noise.wav").write_bytes(b"RIFF" + bytes(100))
    out = tmp_path / "words.csv"
    assert cli.main(["predict", "--model", export_dir, "--input", str(tmp_path / "clips"), "--output", str(out)]) == 2
    rows = {Path(r["path"]).name: r for r in read_csv_rows(out)}
    assert "not a readable PCM WAV file" in rows["noise.wav"]["error"]
    good = [str(tmp_path / "clips" / name) for name in ("tone0.wav", "tone1.wav")]
    capsys.readouterr()
    assert cli.main(["predict", "--model", export_dir, *good]) == 0
    for line in capsys.readouterr().out.strip().splitlines():
        path, label, probability = line.split("\t")
        row = rows[Path(path).name]
        assert row["label"] == label and not row["error"]
        assert max(float(v) for k, v in row.items() if k.startswith("probabilities_")) == pytest.approx(float(probability), abs=1e-4)


@pytest.fixture(scope="module")
def transactions_table(tmp_path_factory):
    """Transactions with an id column, as CSV, Parquet and JSONL (the JSONL with two bad lines)."""
    from dlsuite.data import transactions

    folder = tmp_path_factory.mktemp("transactions")
    df = transactions.simulate(200, 0.05, seed=5)
    df.insert(0, "id", [f"T{i:03d}" for i in range(len(df))])
    df["timestamp"] = df["timestamp"].astype(str)
    df.to_csv(folder / "t.csv", index=False)
    df.to_parquet(folder / "t.parquet")
    lines = [json.dumps(record) for record in df.to_dict("records")]
    lines[3] = lines[3].replace('"amount": ', '"amount": "a lot", "was": ')
    lines.insert(10, "{truncated")
    (folder / "t.jsonl").write_text("\n".join(lines) + "\n")
    return folder, df


def test_fraud_tables_csv_parquet_jsonl(task_run, transactions_table, tmp_path, capsys):
    export_dir = task_run("fraud").export_dir
    folder, df = transactions_table
    expected = serve(export_dir, **rows_to_fields(df, fields_of(export.load_metadata(export_dir))))
    for name in ("t.csv", "t.parquet"):
        out = tmp_path / f"{name}.jsonl"
        assert cli.main(["predict", "--model", export_dir, "--input", str(folder / name), "--output", str(out)]) == 0
        rows = read_jsonl(out)
        assert [r["id"] for r in rows] == list(df["id"])
        np.testing.assert_allclose([r["fraud_probability"] for r in rows], expected["fraud_probability"], atol=1e-6)
        assert [r["is_fraud"] for r in rows] == expected["is_fraud"].tolist()
        assert all(r["error"] is None for r in rows)

    out = tmp_path / "jsonl.csv"
    assert cli.main(["predict", "--model", export_dir, "--input", str(folder / "t.jsonl"), "--output", str(out)]) == 2
    assert "2 of 201 rows failed" in capsys.readouterr().err
    rows = read_csv_rows(out)
    failed = {r["id"]: r["error"] for r in rows if r["error"]}
    # The bad JSON line has no id: its row number (the 11th line) keys it.
    assert failed.keys() == {"T003", "11"}
    assert "'a lot' is not a number" in failed["T003"] and "not valid JSON" in failed["11"]
    good = [r for r in rows if not r["error"]]
    index = [int(r["id"][1:]) for r in good]
    np.testing.assert_allclose([float(r["fraud_probability"]) for r in good], expected["fraud_probability"][index], atol=1e-6)


def test_anomaly_windows_over_a_series_table(task_run, tmp_path, capsys):
    export_dir = task_run("anomaly").export_dir
    meta = export.load_metadata(export_dir)
    window, channels = meta["window"], meta["channels"]
    values = np.random.default_rng(0).normal(size=(window + 20, len(channels))).astype(np.float32)
    df = pd.DataFrame(values, columns=channels).astype(object)
    df.insert(0, "time", range(len(df)))
    df.to_csv(tmp_path / "series.csv", index=False)
    out = tmp_path / "scores.csv"
    assert cli.main(["predict", "--model", export_dir, "--input", str(tmp_path / "series.csv"), "--output", str(out)]) == 0
    rows = read_csv_rows(out)
    # One row per full window, keyed by the row number of its last row.
    assert [r["id"] for r in rows] == [str(n) for n in range(window, len(df) + 1)]
    stacked = np.stack([values[i: i + window] for i in range(len(df) - window + 1)])
    expected = serve(export_dir, window=stacked)
    np.testing.assert_allclose([float(r["score"]) for r in rows], expected["score"], rtol=1e-5)

    df.iloc[window + 4, 2] = "n/a?"  # one bad cell spoils the windows that hold it, and only those
    df.to_csv(tmp_path / "series.csv", index=False)
    assert cli.main(["predict", "--model", export_dir, "--input", str(tmp_path / "series.csv"), "--output", str(out)]) == 2
    failed = [r["id"] for r in read_csv_rows(out) if r["error"]]
    assert failed == [str(n) for n in range(window + 5, len(df) + 1)]
    assert f"holds row {window + 5}: column {channels[1]!r}: 'n/a?' is not a number" in read_csv_rows(out)[-1]["error"]
    assert f"{len(df) - window - 4} of {len(df) - window + 1} rows failed" in capsys.readouterr().err


def test_sentiment_jsonl_streams_in_chunks(task_run, tmp_path):
    export_dir = task_run("sentiment").export_dir
    texts = ["a wonderful, moving film", "dull and far too long", "", "très bien 😀"] * (CHUNK_ROWS // 4 + 10)
    lines = [json.dumps({"id": f"r{i}", "text": t}) for i, t in enumerate(texts)]
    lines.insert(2, json.dumps(["not", "an", "object"]))
    (tmp_path / "reviews.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "sentiment.jsonl"
    code = cli.main(["predict", "--model", export_dir, "--input", str(tmp_path / "reviews.jsonl"),
                     "--output", str(out), "--batch-size", "256"])
    assert code == 2
    rows = read_jsonl(out)
    assert len(rows) == len(texts) + 1 and rows[2] == {
        "id": "3", "label": None, "label_id": None, "probabilities": None, "error": rows[2]["error"]}
    assert "not a JSON object" in rows[2]["error"]
    good = rows[:2] + rows[3:]
    expected = serve(export_dir, text=np.array(texts, dtype=object))
    assert [r["label"] for r in good] == [label.decode() for label in expected["label"]]
    np.testing.assert_allclose([r["probabilities"] for r in good], expected["probabilities"], atol=1e-6)


def test_the_wrong_input_kind_or_output_is_one_clear_error(task_run, tmp_path, capsys):
    image_export, fraud_export = task_run("image_classification").export_dir, task_run("fraud").export_dir
    table = tmp_path / "rows.csv"
    table.write_text("id,amount\n1,3.5\n")
    malformed = tmp_path / "reviews.csv"
    malformed.write_text('id,text\n1,fine\n2,"a, b",c\n')
    sentiment_export = task_run("sentiment").export_dir
    cases = [
        (["--model", image_export, "--input", str(table), "--output", str(tmp_path / "o.csv")], "predicts a folder of images"),
        (["--model", fraud_export, "--input", str(tmp_path), "--output", str(tmp_path / "o.csv")], "predicts the rows of a table"),
        (["--model", fraud_export, "--input", str(table), "--output", str(tmp_path / "o.csv")], "lacks the model's column"),
        (["--model", fraud_export, "--input", str(table), "--output", str(tmp_path / "o.txt")], "must end in .csv or .jsonl"),
        (["--model", fraud_export, "--input", str(table)], "needs both --input"),
        (["--model", fraud_export, str(table), "--input", str(table), "--output", str(tmp_path / "o.csv")], "not both"),
        # A table that turns malformed stops the command, and no partial output is left.
        (["--model", sentiment_export, "--input", str(malformed), "--output", str(tmp_path / "o.csv")],
         "Expected 2 fields in line 3, saw 3"),
    ]
    for args, message in cases:
        assert cli.main(["predict", *args]) == 2, args
        assert message in capsys.readouterr().err, message
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".o.*"))
