"""Reload a SavedModel with TensorFlow alone and run its signatures.

Run as a script by :func:`dlsuite.export.reload_outputs` in a fresh process:
``python -P reload_check.py EXPORT_DIR INPUTS.npz OUTPUTS.npz``. It must never
import dlsuite: it proves that serving needs nothing but TensorFlow.
"""

import sys

import numpy as np
import tensorflow as tf


def main(export_dir: str, inputs_path: str, outputs_path: str) -> None:
    loaded = tf.saved_model.load(export_dir)
    by_signature: dict = {}
    with np.load(inputs_path, allow_pickle=True) as data:
        for key in data.files:
            sig, arg = key.split("/", 1)
            by_signature.setdefault(sig, {})[arg] = data[key]
    results = {}
    for sig, kwargs in by_signature.items():
        fn = loaded.signatures[sig]
        specs = fn.structured_input_signature[1]
        tensors = {k: tf.constant(v, dtype=specs[k].dtype) for k, v in kwargs.items()}
        for name, value in fn(**tensors).items():
            results[f"{sig}/{name}"] = value.numpy()
    seen = sorted(m for m in sys.modules if m.split(".")[0] in ("dlsuite", "keras", "keras_hub", "tensorflow_text"))
    results["__modules__"] = np.array(seen, dtype=object)
    np.savez(outputs_path, **results)


if __name__ == "__main__":
    main(*sys.argv[1:4])
