"""Reload a SavedModel with TensorFlow alone and run its signatures.

Run as a script in a process of its own, never importing dlsuite: it proves that
serving needs nothing but TensorFlow. ``python -P reload_check.py EXPORT_DIR
INPUTS.npz OUTPUTS.npz`` checks one export; ``python -P reload_check.py --serve``
is how :func:`dlsuite.export.reload_outputs` runs it: one process that imports
TensorFlow once and then checks the exports named on its stdin, one JSON line
``[export_dir, inputs, outputs]`` each, answering one JSON line ``{"error": ...}``
(``null`` when the outputs were written).

Keras is blocked before TensorFlow is imported (TensorFlow imports it eagerly when
present, and ``import tensorflow`` then takes about twice as long): TF Serving runs
no Python, so an export that needs Keras code to load would not serve there either.
"""

import sys

# A None entry makes `import keras` raise ImportError, which TensorFlow's eager Keras import tolerates.
BLOCKED = ("keras", "tf_keras", "keras_hub", "tensorflow_text", "dlsuite")
for _name in BLOCKED:
    sys.modules.setdefault(_name, None)

import json  # noqa: E402
import os  # noqa: E402
import traceback  # noqa: E402

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


def serve() -> None:
    """Check the exports requested on stdin until it closes (protocol in the module docstring)."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything else written to stdout (a library's print) goes to stderr, not into the replies
    for line in sys.stdin:
        try:
            main(*json.loads(line))
            error = None
        except Exception:  # noqa: BLE001  reported to the parent, which raises it as the check's failure
            error = traceback.format_exc()
        replies.write(json.dumps({"error": error}) + "\n")
        replies.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        main(*sys.argv[1:4])
