"""Speech recognition: spoken words (waveforms or WAV bytes) in, the recognized word out.

One label per utterance (keyword spotting, spoken digits). The front-end
(log-mel or MFCC frames, normalized with statistics of the training split) is
the task's preprocessor, so it runs in tf.data for training and inside the
exported model. Image networks (cnn, resnet, crnn) see the frames as a
``(frames, bins)`` image, sequence networks (lstm, gru, transformer) as a
sequence of frames.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from dlsuite import architectures, reporting
from dlsuite.architectures import InputSpec
from dlsuite.data import audio
from dlsuite.data.spectrogram import FEATURE_TYPES, LogMelSpectrogram, SpecAugment
from dlsuite.data.splits import Splits
from dlsuite.errors import DlsuiteError
from dlsuite.tasks.base import Endpoints, register
from dlsuite.tasks.classification import ClassificationTask

WAV_SIGNATURE = "recognize_wav"
FRONTEND = "frontend"
MISRECOGNIZED_PNG = "misrecognized_spectrograms.png"
MAX_PLOTTED = 6

# Speech defaults per family, under whatever --set model.<key> gives: small spoken-word sets
# (hundreds to thousands of one-second clips) train in seconds per epoch on a CPU with these.
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "cnn": {"filters": 16, "blocks": 3},
    "resnet": {"filters": 16, "depth": 1, "stages": 3},
    "crnn": {"filters": 16, "conv_blocks": 3, "units": 48},
    "lstm": {"units": 64, "bidirectional": False, "pooling": "mean", "mask_padding": False},
    "gru": {"units": 64, "bidirectional": False, "pooling": "mean", "mask_padding": False},
    "transformer": {"num_layers": 2, "model_dim": 64, "ff_dim": 128, "mask_padding": False},
}


@register
class SpeechRecognition(ClassificationTask):
    name = "speech"
    summary = "spoken words -> word label; export takes float32 waveforms or WAV bytes"
    input_kind = "waveform"
    architectures = ("cnn", "resnet", "crnn", "lstm", "gru", "transformer")
    embedded_datasets = audio.EMBEDDED
    output_names = ("probabilities", "label_id", "label")

    def config_overrides(self) -> dict[str, Any]:
        return {
            "data": {
                "sample_rate": 8000,
                "duration": 1.0,
                "label_pattern": None,
                "split": "auto",
                "test_speakers": None,
                "own_test_below": 5,
                # Off by default: on a few thousand clean clips it slows convergence more than it helps.
                "augment": False,
            },
            "features": {
                "type": "log_mel",
                "num_mel_bins": 40,
                "num_mfcc": 13,
                "frame_ms": 30.0,
                "step_ms": 20.0,
                "fmin": 20.0,
                "fmax": None,
            },
            "augment": {
                "spec_mask": True,
                "time_masks": 2,
                "time_mask_frames": 10,
                "freq_masks": 2,
                "freq_mask_bins": 5,
                "noise": True,
                "noise_probability": 0.3,
                "snr_db": [10.0, 30.0],
            },
            "train": {"epochs": 15, "batch_size": 64, "learning_rate": 0.002, "early_stopping_patience": 5},
        }

    def choices(self) -> dict[str, Sequence[Any]]:
        return {**super().choices(), "data.split": audio.SPLIT_MODES, "features.type": FEATURE_TYPES}

    # -- data -------------------------------------------------------------------------
    def load(self, cfg: Mapping[str, Any]) -> Splits:
        data, seed = cfg["data"], cfg["seed"]
        common = dict(sample_rate=int(data["sample_rate"]), duration=float(data["duration"]))
        if common["sample_rate"] < 1000 or common["duration"] <= 0:
            raise DlsuiteError("data.sample_rate must be at least 1000 Hz and data.duration above 0 seconds.")
        files = dict(
            split=data["split"], val_fraction=data["val_fraction"], test_fraction=data["test_fraction"], seed=seed,
            test_speakers=data["test_speakers"], own_test_below=int(data["own_test_below"]), **common,
        )
        if data["path"]:
            return audio.folder(data["path"], label_pattern=data["label_pattern"], **files)
        if data["dataset"] in audio.EMBEDDED:
            return audio.folder(audio.embedded_folder(data["dataset"], data["data_dir"]), **files)
        return audio.tfds_audio(
            data["dataset"], data_dir=data["data_dir"], val_fraction=data["val_fraction"], split=data["split"],
            download=data["download"], **common,
        )

    def raw_input(self, splits: Splits) -> keras.KerasTensor:
        return keras.Input(shape=(splits.metadata["num_samples"],), dtype="float32", name="waveforms")

    def preprocessor(self, splits: Splits, cfg: Mapping[str, Any]) -> keras.layers.Layer:
        f, meta = cfg["features"], splits.metadata
        frontend = LogMelSpectrogram(
            sample_rate=meta["sample_rate"], frame_ms=f["frame_ms"], step_ms=f["step_ms"],
            num_mel_bins=f["num_mel_bins"], fmin=f["fmin"], fmax=f["fmax"],
            num_mfcc=f["num_mfcc"] if f["type"] == "mfcc" else 0, name="log_mel",
        )
        normalize = keras.layers.Normalization(axis=-1, name="normalize")
        normalize.adapt(splits.train.batch(256).map(lambda x, y: frontend(x)))
        frames, bins = frontend.compute_output_shape((None, meta["num_samples"]))[1:]
        # Image families see (frames, bins) as a one-channel image; the others as a frame sequence.
        kinds = architectures.get(cfg["architecture"]).input_kinds
        kind = "image" if "image" in kinds else "sequence"
        meta["network_input"] = {"kind": kind, "shape": [frames, bins]}
        return keras.Sequential([keras.Input((meta["num_samples"],)), frontend, normalize], name=FRONTEND)

    def augmenter(
        self, splits: Splits, cfg: Mapping[str, Any], preprocessor: keras.layers.Layer
    ) -> keras.layers.Layer | None:
        a = cfg["augment"]
        if not cfg["data"]["augment"] or not (a["spec_mask"] or a["noise"]):
            return None
        noise = a["noise"] and cfg["features"]["type"] == "log_mel"
        mean = std = None
        if noise:
            normalize = preprocessor.get_layer("normalize")
            mean = np.reshape(keras.ops.convert_to_numpy(normalize.mean), -1)
            std = np.maximum(np.sqrt(np.reshape(keras.ops.convert_to_numpy(normalize.variance), -1)), keras.config.epsilon())
        masks = a["spec_mask"]
        return SpecAugment(
            time_masks=a["time_masks"] if masks else 0, time_mask_frames=a["time_mask_frames"],
            freq_masks=a["freq_masks"] if masks else 0, freq_mask_bins=a["freq_mask_bins"],
            noise_probability=a["noise_probability"] if noise else 0.0, snr_db=a["snr_db"],
            feature_mean=None if mean is None else mean.tolist(), feature_std=None if std is None else std.tolist(),
            seed=cfg["seed"], name="spec_augment",
        )

    def build_network(self, splits: Splits, cfg: Mapping[str, Any]) -> keras.Model:
        """The configured family with the speech defaults of ``ARCH_DEFAULTS`` under ``cfg["model"]``."""
        num_outputs, activation = self.head(splits)
        hparams = {**ARCH_DEFAULTS.get(cfg["architecture"], {}), **cfg["model"]}
        return architectures.build(cfg["architecture"], self.network_input(splits), num_outputs, activation, **hparams)

    def network_input(self, splits: Splits) -> InputSpec:
        spec = splits.metadata.get("network_input")
        if spec is None:
            raise DlsuiteError("the speech front-end has not been adapted yet; call preprocessor(splits, cfg) first.")
        return InputSpec(spec["kind"], tuple(spec["shape"]))

    # -- evaluation -------------------------------------------------------------------
    def evaluate(self, model: keras.Model, splits: Splits, run_dir: str, batch_size: int) -> dict[str, Any]:
        y_true, probs = self.predict_split(model, splits.test, batch_size)
        predicted = probs.argmax(axis=1)
        metrics = reporting.classification_metrics(y_true, predicted, splits.class_names)
        reporting.plot_confusion_matrix(
            metrics["confusion_matrix"], splits.class_names, os.path.join(run_dir, "confusion_matrix.png")
        )
        wrong = np.flatnonzero(predicted != y_true)
        metrics["misrecognized"] = int(len(wrong))
        shown = set(wrong[:MAX_PLOTTED].tolist())
        if shown:
            clips = [x for i, (x, _) in enumerate(splits.test.as_numpy_iterator()) if i in shown]
            frontend = model.get_layer(FRONTEND).get_layer("log_mel")
            plot_misrecognized(
                np.asarray(frontend(np.stack(clips))), y_true[sorted(shown)], predicted[sorted(shown)],
                splits.class_names, frontend.step_ms, os.path.join(run_dir, MISRECOGNIZED_PNG),
            )
        return metrics

    # -- serving ----------------------------------------------------------------------
    def serving_endpoints(self, model: keras.Model, metadata: Mapping[str, Any]) -> Endpoints:
        sample_rate, num_samples = int(metadata["sample_rate"]), int(metadata["num_samples"])
        class_names = metadata["class_names"]

        def recognize(waveforms: tf.Tensor) -> dict[str, tf.Tensor]:
            clips = audio.fix_length(waveforms, num_samples)
            return self.postprocess(model(clips, training=False), class_names)

        def recognize_wav(wav_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
            clips = tf.map_fn(
                lambda b: audio.decode_wav(b, sample_rate, num_samples),
                wav_bytes,
                fn_output_signature=tf.TensorSpec((num_samples,), tf.float32),
            )
            return self.postprocess(model(clips, training=False), class_names)

        return {
            "serving_default": (recognize, [tf.TensorSpec((None, None), tf.float32, name="waveforms")]),
            WAV_SIGNATURE: (recognize_wav, [tf.TensorSpec((None,), tf.string, name="wav_bytes")]),
        }

    def verification_inputs(self, splits: Splits, metadata: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
        clips = next(iter(splits.test.batch(8)))[0].numpy()
        encoded = np.array([audio.encode_wav(c[:, None], metadata["sample_rate"]) for c in clips], dtype=object)
        return {"serving_default": {"waveforms": clips}, WAV_SIGNATURE: {"wav_bytes": encoded}}

    def serving_batches(
        self, ds: tf.data.Dataset, metadata: Mapping[str, Any], batch_size: int
    ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        for x, y in ds.batch(batch_size):
            yield {"waveforms": x.numpy()}, y.numpy()

    def predict_inputs(self, inputs: Sequence[str], metadata: Mapping[str, Any]) -> tuple[str, dict[str, np.ndarray]]:
        for path in inputs:
            if not os.path.isfile(path):
                raise DlsuiteError(f"audio file {path} does not exist; pass paths of WAV files.")
        encoded = [audio.read_wav_bytes(p) for p in inputs]
        return WAV_SIGNATURE, {"wav_bytes": np.array(encoded, dtype=object)}


def plot_misrecognized(
    spectrograms: np.ndarray,
    true_ids: np.ndarray,
    predicted_ids: np.ndarray,
    class_names: Sequence[str],
    step_ms: float,
    path: str | os.PathLike,
) -> None:
    """Log-mel spectrograms ``[n, frames, bins]`` of misrecognized clips, titled true -> predicted."""
    import matplotlib.pyplot as plt  # reporting selected the Agg backend

    n = len(spectrograms)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, spec, t, p in zip(axes.ravel(), spectrograms, true_ids, predicted_ids):
        seconds = spec.shape[0] * step_ms / 1000
        ax.imshow(spec.T, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, spec.shape[1]))
        ax.set_title(f"said {class_names[t]!r}, heard {class_names[p]!r}", fontsize=9)
        ax.set_xlabel("seconds")
        ax.set_ylabel("mel bin")
    fig.suptitle("misrecognized test clips (log-mel)")
    reporting.save_figure(fig, path, dpi=90)
