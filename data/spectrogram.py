"""Speech front-end and augmentation as Keras layers in TF ops.

:class:`LogMelSpectrogram` turns waveform batches into log-mel (or MFCC)
frames; it runs inside tf.data for training and again inside the exported
model, so serving computes exactly the training features. :class:`SpecAugment`
masks time and frequency bands (Park et al., 2019, "SpecAugment") and mixes
background noise into normalized log-mel batches during training.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import keras
import tensorflow as tf

from dlsuite.errors import DlsuiteError

FEATURE_TYPES = ("log_mel", "mfcc")


@keras.saving.register_keras_serializable(package="dlsuite")
class LogMelSpectrogram(keras.layers.Layer):
    """Waveforms ``[batch, samples]`` -> log-mel power ``[batch, frames, num_mel_bins]`` (or MFCCs).

    Args:
        sample_rate: rate of the input waveforms.
        frame_ms: STFT window length in milliseconds (Hann window).
        step_ms: hop between frames in milliseconds.
        num_mel_bins: mel filters.
        fmin: lowest filter edge in Hz.
        fmax: highest filter edge in Hz (``None``: Nyquist).
        num_mfcc: when above 0, return the first ``num_mfcc`` MFCCs of the log-mel frames.
        log_offset: added to mel power before the log (silence floor).
    """

    def __init__(
        self,
        sample_rate: int = 8000,
        frame_ms: float = 25.0,
        step_ms: float = 10.0,
        num_mel_bins: int = 40,
        fmin: float = 20.0,
        fmax: float | None = None,
        num_mfcc: int = 0,
        log_offset: float = 1e-6,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if num_mfcc > num_mel_bins:
            raise DlsuiteError(f"features.num_mfcc ({num_mfcc}) cannot exceed features.num_mel_bins ({num_mel_bins}).")
        self.sample_rate = int(sample_rate)
        self.frame_ms = float(frame_ms)
        self.step_ms = float(step_ms)
        self.num_mel_bins = int(num_mel_bins)
        self.fmin = float(fmin)
        self.fmax = float(fmax) if fmax else None
        self.num_mfcc = int(num_mfcc)
        self.log_offset = float(log_offset)
        self.frame_length = int(round(self.sample_rate * self.frame_ms / 1000))
        self.frame_step = int(round(self.sample_rate * self.step_ms / 1000))
        self.fft_length = 2 ** math.ceil(math.log2(self.frame_length))
        upper = self.fmax or self.sample_rate / 2
        if not 0 <= self.fmin < upper <= self.sample_rate / 2:
            raise DlsuiteError(f"mel range [{self.fmin}, {upper}] Hz must lie within [0, {self.sample_rate / 2}] Hz.")
        self.mel_matrix = tf.signal.linear_to_mel_weight_matrix(
            self.num_mel_bins, self.fft_length // 2 + 1, self.sample_rate, self.fmin, upper
        )

    def num_frames(self, num_samples: int) -> int:
        if num_samples < self.frame_length:
            raise DlsuiteError(f"clips of {num_samples} samples are shorter than one {self.frame_ms} ms frame.")
        return 1 + (num_samples - self.frame_length) // self.frame_step

    def call(self, waveforms: tf.Tensor) -> tf.Tensor:
        stft = tf.signal.stft(
            tf.cast(waveforms, tf.float32), self.frame_length, self.frame_step, self.fft_length,
            window_fn=tf.signal.hann_window, pad_end=False,
        )
        power = tf.math.square(tf.abs(stft))
        log_mel = tf.math.log(tf.tensordot(power, self.mel_matrix, 1) + self.log_offset)
        if self.num_mfcc:
            return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., : self.num_mfcc]
        return log_mel

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        frames = None if input_shape[-1] is None else self.num_frames(input_shape[-1])
        return (input_shape[0], frames, self.num_mfcc or self.num_mel_bins)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "sample_rate": self.sample_rate,
            "frame_ms": self.frame_ms,
            "step_ms": self.step_ms,
            "num_mel_bins": self.num_mel_bins,
            "fmin": self.fmin,
            "fmax": self.fmax,
            "num_mfcc": self.num_mfcc,
            "log_offset": self.log_offset,
        }


@keras.saving.register_keras_serializable(package="dlsuite")
class SpecAugment(keras.layers.Layer):
    """Training-time masking of time/frequency bands and background-noise mixing.

    Works on normalized log-mel batches ``[batch, frames, bins]``; masked cells
    become 0 (the training mean). Noise mixing undoes the normalization with
    ``feature_mean``/``feature_std``, adds noise power at a random SNR (white to
    brown-ish, by a random spectral tilt) to the mel power, and normalizes again.
    Outside training it is the identity.

    Args:
        time_masks: number of time bands masked per clip.
        time_mask_frames: widest time band (frames).
        freq_masks: number of frequency bands masked per clip.
        freq_mask_bins: widest frequency band (bins).
        noise_probability: share of clips that get noise (0 disables noise mixing).
        snr_db: (lowest, highest) signal-to-noise ratio of the mixed noise, in dB.
        feature_mean: per-bin mean of the log-mel features (needed for noise).
        feature_std: per-bin standard deviation of the log-mel features (needed for noise).
        seed: op-level seed of the random draws.
    """

    def __init__(
        self,
        time_masks: int = 2,
        time_mask_frames: int = 10,
        freq_masks: int = 2,
        freq_mask_bins: int = 5,
        noise_probability: float = 0.0,
        snr_db: Sequence[float] = (5.0, 30.0),
        feature_mean: Sequence[float] | None = None,
        feature_std: Sequence[float] | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if noise_probability and (feature_mean is None or feature_std is None):
            raise DlsuiteError("noise mixing needs the log-mel feature_mean and feature_std (features.type=log_mel).")
        self.time_masks = int(time_masks)
        self.time_mask_frames = int(time_mask_frames)
        self.freq_masks = int(freq_masks)
        self.freq_mask_bins = int(freq_mask_bins)
        self.noise_probability = float(noise_probability)
        self.snr_db = [float(v) for v in snr_db]
        self.feature_mean = None if feature_mean is None else [float(v) for v in feature_mean]
        self.feature_std = None if feature_std is None else [float(v) for v in feature_std]
        self.seed = seed

    def _masks(self, shape: tf.Tensor, axis: int, count: int, widest: int) -> tf.Tensor:
        """``[batch, length]`` booleans, true inside ``count`` random bands of up to ``widest`` cells."""
        batch, length = shape[0], shape[axis]
        positions = tf.range(length)[tf.newaxis, :]
        masked = tf.zeros((batch, length), tf.bool)
        for _ in range(count):
            width = tf.random.uniform((batch, 1), 0, widest + 1, tf.int32, seed=self.seed)
            room = tf.cast(tf.maximum(1, length - width + 1), tf.float32)
            start = tf.cast(tf.random.uniform((batch, 1), seed=self.seed) * room, tf.int32)
            masked |= (positions >= start) & (positions < start + width)
        return masked

    def _mix_noise(self, x: tf.Tensor) -> tf.Tensor:
        mean, std = tf.constant(self.feature_mean), tf.constant(self.feature_std)
        power = tf.exp(x * std + mean)  # mel power (+ the log offset, negligible)
        batch, bins = tf.shape(x)[0], tf.shape(x)[2]
        snr = tf.random.uniform((batch, 1, 1), self.snr_db[0], self.snr_db[1], seed=self.seed)
        level = tf.reduce_mean(power, axis=[1, 2], keepdims=True) * tf.pow(10.0, -snr / 10.0)
        # A random spectral tilt (-1: brown-ish, 0: white, +1: hiss) normalized to mean 1 over the bins.
        tilt = tf.random.uniform((batch, 1, 1), -1.0, 1.0, seed=self.seed)
        freq = tf.cast(tf.range(1, bins + 1), tf.float32)[tf.newaxis, tf.newaxis, :] / tf.cast(bins, tf.float32)
        shape = tf.pow(freq, tilt)
        shape /= tf.reduce_mean(shape, axis=-1, keepdims=True)
        # Periodogram cells of Gaussian noise are exponentially distributed around their mean.
        cells = -tf.math.log(tf.random.uniform(tf.shape(x), 1e-6, 1.0, seed=self.seed))
        noisy = (tf.math.log(power + level * shape * cells) - mean) / std
        chosen = tf.random.uniform((batch, 1, 1), seed=self.seed) < self.noise_probability
        return tf.where(chosen, noisy, x)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if not training:
            return x
        x = tf.convert_to_tensor(x)
        if self.noise_probability:
            x = self._mix_noise(x)
        shape = tf.shape(x)
        if self.time_masks and self.time_mask_frames:
            x = tf.where(self._masks(shape, 1, self.time_masks, self.time_mask_frames)[:, :, tf.newaxis], 0.0, x)
        if self.freq_masks and self.freq_mask_bins:
            x = tf.where(self._masks(shape, 2, self.freq_masks, self.freq_mask_bins)[:, tf.newaxis, :], 0.0, x)
        return x

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> Sequence[int | None]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "time_masks": self.time_masks,
            "time_mask_frames": self.time_mask_frames,
            "freq_masks": self.freq_masks,
            "freq_mask_bins": self.freq_mask_bins,
            "noise_probability": self.noise_probability,
            "snr_db": list(self.snr_db),
            "feature_mean": self.feature_mean,
            "feature_std": self.feature_std,
            "seed": self.seed,
        }
