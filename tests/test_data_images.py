"""Image sources: digits, folders, TFDS (mocked, and offline), arrays; the batching pipeline."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from dlsuite import DlsuiteError
from dlsuite.data import images, tfds_source
from dlsuite.data.pipeline import batched
from dlsuite.data.splits import split_indices
from dlsuite.tasks import runner


def labels_of(ds):
    return np.array([int(y) for _, y in ds])


def test_digits_splits_are_seeded_disjoint_and_stratified():
    a = images.digits(val_fraction=0.1, test_fraction=0.2, seed=0)
    b = images.digits(val_fraction=0.1, test_fraction=0.2, seed=0)
    assert a.metadata["num_examples"] == {"train": 1293, "val": 144, "test": 360}
    assert a.metadata["input_shape"] == [8, 8, 1] and a.metadata["input_dtype"] == "uint8"
    ya, yb = labels_of(a.test), labels_of(b.test)
    np.testing.assert_array_equal(ya, yb)
    counts = np.bincount(ya, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # 10 classes, 360 examples: stratified
    x = next(iter(a.train.batch(2000)))[0].numpy()
    assert x.dtype == np.uint8 and x.max() == 255


def test_split_indices_partition_the_data():
    y = np.repeat(np.arange(3), 20)
    tr, va, te = split_indices(y, 0.25, 0.2, seed=1)
    assert len(set(tr) | set(va) | set(te)) == 60 and len(tr) + len(va) + len(te) == 60
    assert np.bincount(y[te]).tolist() == [4, 4, 4]


def write_folder(root, classes=("cat", "dog"), per_class=6, size=(12, 10)):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    return root


def test_folder_source(tmp_path):
    root = write_folder(tmp_path / "imgs")
    splits = images.folder(root, image_size=[16, 16], color_mode="rgb", val_fraction=0.25, test_fraction=1 / 3, seed=0)
    assert splits.class_names == ["cat", "dog"]
    assert splits.metadata["input_shape"] == [16, 16, 3]
    n = splits.metadata["num_examples"]
    assert n["train"] + n["val"] + n["test"] == 12
    assert sorted(labels_of(splits.test).tolist()) == [0, 0, 1, 1]  # stratified
    x, _ = next(iter(splits.train))
    assert x.shape == (16, 16, 3)


def test_folder_without_images(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DlsuiteError, match=r"holds no images.*<class name>/<image file>"):
        images.folder(tmp_path / "empty", image_size=None, color_mode="rgb", val_fraction=0.1, test_fraction=0.2, seed=0)


def test_folder_with_one_class(tmp_path):
    root = write_folder(tmp_path / "one", classes=("only",), per_class=12)
    with pytest.raises(DlsuiteError, match=r"single class \('only'\)"):
        images.folder(root, image_size=None, color_mode="rgb", val_fraction=0.1, test_fraction=0.2, seed=0)


def test_unreadable_image_is_named(tmp_path):
    root = write_folder(tmp_path / "bad")
    (root / "dog" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DlsuiteError, match=r"cannot read image .*broken\.png"):
        images.folder(root, image_size=None, color_mode="rgb", val_fraction=0.1, test_fraction=0.2, seed=0)


def test_missing_folder(tmp_path):
    with pytest.raises(DlsuiteError, match="does not exist"):
        images.folder(tmp_path / "nope", image_size=None, color_mode="rgb", val_fraction=0.1, test_fraction=0.2, seed=0)


def test_tfds_real_load_path_with_mock_data(monkeypatch, tmp_path):
    import tensorflow_datasets as tfds

    # As if online: TFDS then calls download_and_prepare, which mock_data replaces.
    monkeypatch.setattr(tfds_source, "can_reach_download_host", lambda: True)
    with tfds.testing.mock_data(num_examples=40):
        splits = images.tfds_images("mnist", data_dir=str(tmp_path), image_size=None, val_fraction=0.1)
        assert splits.class_names == [str(i) for i in range(10)]
        assert splits.metadata["input_shape"] == [28, 28, 1]
        x, y = next(iter(splits.train))
        assert x.shape == (28, 28, 1) and x.dtype == tf.uint8
        resized = images.tfds_images("mnist", data_dir=str(tmp_path), image_size=[14, 14], val_fraction=0.1)
        assert next(iter(resized.test))[0].shape == (14, 14, 1)


def test_tfds_not_prepared_and_no_download_is_clear(tmp_path):
    with pytest.raises(DlsuiteError, match=r"'mnist' is not prepared in .*download_and_prepare\(\).*--data-dir"):
        images.tfds_images("mnist", data_dir=str(tmp_path), image_size=None, val_fraction=0.1, download=False)


def test_tfds_offline_fails_fast_with_instructions(tmp_path):
    if tfds_source.can_reach_download_host(timeout=2):
        pytest.skip("this machine is online; the offline message cannot be seen here")
    with pytest.raises(DlsuiteError, match=r"cannot be downloaded from here \(offline\)"):
        images.tfds_images("mnist", data_dir=str(tmp_path), image_size=None, val_fraction=0.1)


def test_unknown_dataset_name():
    task, cfg = runner.resolve_config("image_classification", values={"data.dataset": "digitz"})
    with pytest.raises(DlsuiteError, match=r"'digitz' is neither a dlsuite embedded dataset nor a TensorFlow Datasets name"):
        task.load(cfg)


def test_arrays_source_accepts_grayscale():
    x = np.random.default_rng(0).integers(0, 255, (40, 6, 6), dtype=np.uint8)
    y = np.arange(40) % 2
    splits = images.image_arrays(x, y, ["a", "b"], val_fraction=0.2, test_fraction=0.2, seed=0)
    assert splits.metadata["input_shape"] == [6, 6, 1]
    with pytest.raises(DlsuiteError, match="must have shape"):
        images.image_arrays(x[:, 0], y, ["a", "b"], val_fraction=0.2, test_fraction=0.2, seed=0)


def test_pipeline_batches_by_global_batch_and_drops_remainder_on_request():
    ds = tf.data.Dataset.from_tensor_slices((np.arange(10, dtype=np.float32), np.zeros(10)))
    sizes = [int(x.shape[0]) for x, _ in batched(ds, 4, training=False, seed=0)]
    assert sizes == [4, 4, 2]
    sizes = [int(x.shape[0]) for x, _ in batched(ds, 4, training=True, seed=0, drop_remainder=True)]
    assert sizes == [4, 4]
    first = [x.numpy().tolist() for x, _ in batched(ds, 10, training=True, seed=3)]
    again = [x.numpy().tolist() for x, _ in batched(ds, 10, training=True, seed=3)]
    assert first == again and first[0] != list(range(10))  # shuffled, reproducibly


def test_augmentation_switch_changes_training_batches_only():
    task, cfg = runner.resolve_config("image_classification", overrides=["data.augment=true"])
    splits = images.digits(val_fraction=0.1, test_fraction=0.2, seed=0)
    normalize = task.preprocessor(splits, cfg)
    aug = task.augmenter(splits, cfg, normalize)
    assert aug is not None
    x = normalize(tf.cast(next(iter(splits.train.batch(8)))[0], tf.float32))
    shifted = np.asarray(aug(x, training=True))
    assert not np.allclose(shifted, x)
    assert np.allclose(aug(x, training=False), x)
    _, plain = runner.resolve_config("image_classification", overrides=["data.augment=false"])
    assert task.augmenter(splits, plain, normalize) is None
