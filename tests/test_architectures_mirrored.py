"""The standard's MirroredStrategy part: every (family, input kind) trains on two logical CPUs.

The cases, hyperparameters and synthetic problems are those of
``test_architectures_standard.py``. All cases run in one fresh process (logical
devices must be set before TensorFlow initializes); run this file as a script
(``python tests/test_architectures_mirrored.py --mirrored``) for that pass alone.
It is a file of its own so that pytest-xdist runs it beside the XLA part.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from test_architectures_standard import (
    BATCH,
    CASES,
    build_case,
    cases,
    compile_case,
    hooks,
    learnable_problem,
    spec_for,
)


def train_all_mirrored() -> dict[str, dict[str, Any]]:
    """In a fresh process: fit every case under MirroredStrategy over two logical CPUs.

    Returns:
        ``{"name-kind": {"replicas", "losses"} or {"error"}}``.
    """
    import tensorflow as tf

    from dlsuite import distribute

    distribute.split_cpu(2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results: dict[str, dict[str, Any]] = {}
    for name, kind in cases():
        keras.utils.set_random_seed(0)
        try:
            with strategy.scope():
                model = build_case(name, kind)
                compile_case(model, name, jit_compile=False)
            x, y = learnable_problem(spec_for(name, kind))
            # As the runner feeds fit: one repeated dataset, so one distributed iterator serves both epochs.
            batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH, drop_remainder=True).repeat()
            history = model.fit(batches, steps_per_epoch=len(x) // BATCH, epochs=2, verbose=0).history
            losses = [float(v) for v in history[hooks(name).loss_key]]
            results[f"{name}-{kind}"] = {"replicas": strategy.num_replicas_in_sync, "losses": losses}
        except Exception as e:  # reported per case by the parent test
            results[f"{name}-{kind}"] = {"error": f"{type(e).__name__}: {e}"[:2000]}
    return results


@pytest.fixture(scope="module")
def mirrored_results() -> dict[str, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, __file__, "--mirrored"],
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, cwd=Path(__file__).parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("name, kind", CASES)
def test_trains_under_mirrored_strategy_on_two_cpus(name, kind, mirrored_results):
    result = mirrored_results[f"{name}-{kind}"]
    if spec_for(name, kind).dtype == "string" and "AddN" in result.get("error", ""):
        # Keras 3.15's TensorFlowTrainer._maybe_symbolic_build averages the first distributed batch
        # over replicas before building (reduce "MEAN"): raw string inputs cannot be averaged.
        pytest.xfail("Keras 3.15 fit under MirroredStrategy cannot take raw string inputs (upstream)")
    assert "error" not in result, result.get("error")
    assert result["replicas"] == 2
    losses = result["losses"]
    assert np.all(np.isfinite(losses)), losses
    if hooks(name).loss_ratio is not None:
        assert losses[-1] < losses[0], f"{name}/{kind}: loss did not fall under MirroredStrategy: {losses}"


if __name__ == "__main__" and sys.argv[1:] == ["--mirrored"]:
    print(json.dumps(train_all_mirrored()))
