"""Fuzzed requests to every export signature, through ``dlsuite serve``'s code path (hypothesis).

Each task's fast-run export is served on a loopback port (the fixtures of ``test_serving.py``)
and called with wrong dtypes, wrong ranks and shapes, empty batches, NaN and infinite numbers,
oversize strings and corrupt image or WAV bytes, in row and columnar form. Every answer must be
a 4xx with ``{"error": ...}`` or a 200 whose outputs are finite and hold one entry per example:
never a 500, a hang or a NaN prediction.
"""

from __future__ import annotations

import collections
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_serving import TASKS, as_json, example_inputs, model_root, request, server  # noqa: F401  fixtures

from dlsuite.data import audio

FUZZ = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
CASES: collections.Counter = collections.Counter()  # task -> requests sent

MUTATIONS = ("valid", "nan", "inf", "huge_number", "string_for_number", "number_for_string", "null", "bool",
             "extra_rank", "scalar", "empty_batch", "wrong_width", "oversize_string", "corrupt_bytes",
             "truncated_bytes", "empty_bytes", "swapped_bytes")


@pytest.fixture(scope="module", autouse=True)
def report_cases():
    """Print the number of requests sent per task (visible with ``pytest -s``)."""
    yield
    for task, count in sorted(CASES.items()):
        print(f"\nfuzz cases: export signatures: {task}: {count}")


def mutate(values: np.ndarray, name: str, how: str, rng: np.random.Generator) -> Any:
    """One input's batch, made wrong in the way ``how`` names (as the JSON value sent)."""
    numeric = values.dtype != object
    if how == "nan" and values.dtype.kind == "f":
        values = values.copy()
        values.flat[rng.integers(0, values.size, max(1, values.size // 3))] = np.nan
    elif how == "inf" and values.dtype.kind == "f":
        values = values.copy()
        values.flat[rng.integers(0, values.size, max(1, values.size // 3))] = rng.choice([np.inf, -np.inf])
    elif how == "huge_number" and numeric:
        return np.full(values.shape, 3.4e38 if values.dtype.kind == "f" else 2**70).tolist()
    elif how == "string_for_number" and numeric:
        return np.full(values.shape, "1.5").tolist()
    elif how == "number_for_string" and not numeric:
        return [7] * len(values)
    elif how == "null":
        return [None] * len(values)
    elif how == "bool":
        return np.ones(values.shape, bool).tolist()
    elif how == "extra_rank":
        return [as_json(values)]
    elif how == "scalar":
        return as_json(values)[0]
    elif how == "empty_batch":
        return []
    elif how == "wrong_width" and numeric and values.ndim > 1:
        return as_json(values[:, :-1] if values.shape[1] > 1 else np.concatenate([values, values], axis=1))
    elif how == "oversize_string" and not numeric:
        return ["good " * 20000] + [v.decode("latin-1") for v in values.tolist()[1:]]
    elif not numeric and name.endswith("_bytes"):
        corrupt = {
            "corrupt_bytes": lambda v: rng.bytes(len(v)),
            "truncated_bytes": lambda v: v[: len(v) // 2],
            "empty_bytes": lambda v: b"",
            "swapped_bytes": lambda v: audio.encode_wav(np.zeros((10, 1), np.float32), 8000)
            if name == "image_bytes" else v[:8] + b"not a riff",
        }.get(how)
        if corrupt:
            values = np.array([corrupt(v) for v in values.tolist()], dtype=object)
    return as_json(values)


def body(columns: dict[str, Any], row_form: bool, signature: str) -> dict[str, Any]:
    if not row_form:
        inputs = next(iter(columns.values())) if len(columns) == 1 else columns
        return {"signature_name": signature, "inputs": inputs}
    if not all(isinstance(c, list) for c in columns.values()):
        return {"signature_name": signature, "instances": next(iter(columns.values()))}
    size = min(len(c) for c in columns.values())
    if len(columns) == 1:
        return {"signature_name": signature, "instances": next(iter(columns.values()))[:size]}
    return {"signature_name": signature, "instances": [{k: c[i] for k, c in columns.items()} for i in range(size)]}


def check_answer(status: int, answer: dict, sent: dict) -> None:
    """A 4xx with an error message, or a 200 with finite outputs, one per example."""
    if 400 <= status < 500:
        assert isinstance(answer.get("error"), str) and answer["error"], answer
        return
    assert status == 200, (status, answer)
    if "predictions" in answer:
        assert len(answer["predictions"]) == len(sent["instances"])
        outputs = answer["predictions"]
    else:
        outputs = answer["outputs"]
    for value in _numbers(outputs):
        assert math.isfinite(value), f"non-finite output {value} for {json.dumps(sent)[:300]}"


def _numbers(value: Any):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, float):
        yield value


@pytest.mark.parametrize("task", TASKS)
def test_fuzzed_requests_get_a_4xx_or_finite_outputs(server, model_root, task):  # noqa: F811
    servable = server.repository.servable(task)
    metadata = json.loads((Path(servable.path) / "assets.extra" / "dlsuite_metadata.json").read_text())

    @settings(max_examples=40, **FUZZ)
    @given(signature=st.sampled_from(sorted(servable.inputs)), data=st.data(), row_form=st.booleans(),
           batch=st.integers(1, 3), seed=st.integers(0, 2**16))
    def check(signature: str, data, row_form: bool, batch: int, seed: int) -> None:
        CASES[task] += 1
        specs = servable.inputs[signature]
        rng = np.random.default_rng(seed)
        valid = example_inputs(task, specs, metadata, batch=batch)
        columns = {name: mutate(values, name, data.draw(st.sampled_from(MUTATIONS), label=name), rng)
                   for name, values in valid.items()}
        sent = body(columns, row_form, signature)
        status, answer = request(server, "POST", f"/v1/models/{task}:predict", sent)
        check_answer(status, answer, sent)

    check()


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("fill", [float("nan"), float("inf"), -float("inf"), 3.4e38])
def test_non_finite_numbers_get_a_4xx_or_finite_outputs(server, model_root, task, fill):  # noqa: F811
    """Regression: an infinite feature made the anomaly score inf (and the fraud probability NaN)."""
    servable = server.repository.servable(task)
    metadata = json.loads((Path(servable.path) / "assets.extra" / "dlsuite_metadata.json").read_text())
    specs = servable.inputs["serving_default"]
    valid = example_inputs(task, specs, metadata, batch=2)
    columns = {name: (np.full(v.shape, fill, v.dtype) if v.dtype.kind == "f" else v) for name, v in valid.items()}
    sent = body({name: as_json(v) for name, v in columns.items()}, False, "serving_default")
    status, answer = request(server, "POST", f"/v1/models/{task}:predict", sent)
    check_answer(status, answer, sent)
    if task in ("anomaly", "fraud"):  # NaN is a missing value there, an infinite one is extreme: both score
        assert status == 200, answer
