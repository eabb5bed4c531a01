"""TensorFlow Datasets by name, with a clear message when a dataset is not prepared."""

from __future__ import annotations

import os
import socket
from typing import Any

import tensorflow as tf

from dlsuite.errors import DlsuiteError


# TFDS fetches prepared data from this host first; if it cannot be resolved, no download can work.
DOWNLOAD_PROBE = ("storage.googleapis.com", 443)


def can_reach_download_host(timeout: float = 3.0) -> bool:
    """A quick check before TFDS's own download, which retries for minutes when offline."""
    try:
        with socket.create_connection(DOWNLOAD_PROBE, timeout=timeout):
            return True
    except OSError:
        return False


def default_data_dir() -> str:
    return os.environ.get("TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"), "tensorflow_datasets"))


def load(name: str, data_dir: str | None, val_fraction: float, download: bool = True, as_supervised: bool = True) -> tuple[dict[str, tf.data.Dataset], Any, dict[str, int] | None]:
    """Load a prepared TFDS dataset as supervised ``(features, label)`` train/val/test splits.

    The dataset's own validation and test splits are used where it has them
    (see :func:`standard_splits`).

    Args:
        name: TFDS name, optionally with config and version (``"mnist"``, ``"glue/sst2"``).
        data_dir: where prepared datasets live (``None``: TFDS's default).
        val_fraction: share of ``train`` held out for validation when there is no validation split.
        download: download and prepare the dataset when it is not prepared yet.
        as_supervised: ``(features, label)`` pairs; ``False`` gives feature dicts (for datasets
            without supervised keys, such as GLUE, whose caller picks the features itself).

    Returns:
        (datasets by our split name, the builder's ``DatasetInfo``, examples per split or ``None``).
    """
    import tensorflow_datasets as tfds  # heavy; only runs that use TFDS pay for it

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise DlsuiteError(
            f"{name!r} is neither a dlsuite embedded dataset nor a TensorFlow Datasets name; "
            "`dlsuite list datasets` shows both kinds."
        ) from None
    if not builder.is_prepared():
        where = data_dir or default_data_dir()
        why = "downloads are off (data.download=false)" if not download else "it cannot be downloaded from here (offline)"
        if not download or not can_reach_download_host():
            raise DlsuiteError(
                f"TFDS dataset {name!r} is not prepared in {where} and {why}. On a machine with internet run: "
                f"python -c \"import tensorflow_datasets as tfds; tfds.builder('{name}').download_and_prepare()\" "
                f"then copy ~/tensorflow_datasets/{builder.info.full_name} to {where}/{builder.info.full_name} "
                "(or pass --data-dir to where you put it)."
            )
        builder.download_and_prepare()
    # No split metadata (info not generated, as under tfds.testing.mock_data): ask for train and test.
    available = set(builder.info.splits.keys()) or {"train", "test"}
    if "train" not in available:
        raise DlsuiteError(f"TFDS dataset {name!r} has no 'train' split (it has {', '.join(sorted(available))}).")
    if as_supervised and not builder.info.supervised_keys:
        raise DlsuiteError(f"TFDS dataset {name!r} has no (features, label) supervised keys; pick a labeled dataset.")
    splits = standard_splits(available, val_fraction)
    out = {ours: builder.as_dataset(split=expr, as_supervised=as_supervised, shuffle_files=False) for ours, expr in splits.items()}
    counts = {ours: int(builder.info.splits[expr].num_examples) for ours, expr in splits.items()} if builder.info.splits else None
    return out, builder.info, counts


def standard_splits(available: set[str], val_fraction: float) -> dict[str, str]:
    """Use the dataset's own validation/test splits; carve what is missing out of train."""
    pct = int(round(val_fraction * 100))
    if "validation" in available and "test" in available:
        return {"train": "train", "val": "validation", "test": "test"}
    if "test" in available:
        return {"train": f"train[:{100 - pct}%]", "val": f"train[{100 - pct}%:]", "test": "test"}
    if "validation" in available:
        return {"train": f"train[:{100 - pct}%]", "val": f"train[{100 - pct}%:]", "test": "validation"}
    test_pct = 20
    return {
        "train": f"train[:{100 - test_pct - pct}%]",
        "val": f"train[{100 - test_pct - pct}%:{100 - test_pct}%]",
        "test": f"train[{100 - test_pct}%:]",
    }
