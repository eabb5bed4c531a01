"""Reload a SavedModel with TensorFlow alone and run its signatures.

Run as a script by :func:`dlsuite.export.reload_outputs` in a fresh process:
``python -P reload_check.py EXPORT_DIR INPUTS.npz OUTPUTS.npz``. It must never
import dlsuite: it proves that serving needs nothing but TensorFlow.

Keras is blocked before TensorFlow is imported (TensorFlow imports it eagerly when
present, and ``import tensorflow`` then takes about twice as long): TF Serving runs
no Python, so an export that needs Keras code to load would not serve there either.
"""

import sys

# A None entry makes `import keras` raise ImportError, which TensorFlow's eager Keras import tolerates.
BLOCKED = ("keras", "tf_keras", "keras_hub", "tensorflow_text", "dlsuite")
for _name in BLOCKED:
    sys.modules.setdefault(_name, None)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


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
    seen = sorted(m for m, module in sys.modules.items() if module is not None and m.split(".")[0] in BLOCKED)
    results["__modules__"] = np.array(seen, dtype=object)
    np.savez(outputs_path, **results)


if __name__ == "__main__":
    main(*sys.argv[1:4])
