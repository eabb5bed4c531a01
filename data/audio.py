"""Audio sources: the embedded spoken-digit set, TFDS by name, folders of WAV files, arrays.

Every source yields :class:`~dlsuite.data.splits.Splits` whose features are
float32 mono waveforms in [-1, 1] of ``num_samples = sample_rate * duration``
samples at one ``sample_rate``. Decoding, mono mix-down, resampling and
padding/cropping are TF ops (:func:`decode_wav`, :func:`resample`,
:func:`fix_length`), the same ones the exported model runs on WAV bytes.

Files are checked with Python's ``wave`` module when a folder is loaded: an
empty or corrupt file is a clear error naming it, and 8-, 24- and 32-bit PCM
files are converted to the 16-bit PCM that ``tf.audio.decode_wav`` reads.

Splits: ``speaker`` holds whole speakers out for testing (no speaker in both
train and test), ``own`` is the dataset's own split (TFDS splits; for
FSDD-style names, take indices below ``own_test_below``), ``random`` is a
stratified random split; ``auto`` is ``own`` for TFDS, ``speaker`` when file
names carry speaker ids, else ``random``.
"""

from __future__ import annotations

import io
import os
import re
import wave
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
from sklearn.model_selection import train_test_split

from dlsuite import pretrained
from dlsuite.data import espeak, tfds_source
from dlsuite.data.splits import Splits, check_labels, split_indices
from dlsuite.errors import DlsuiteError

SPLIT_MODES = ("auto", "speaker", "own", "random")
# The Free Spoken Digit Dataset's names: {digit}_{speaker}_{index}.wav.
FSDD_PATTERN = r"^(?P<label>[^_]+)_(?P<speaker>[^_]+)_(?P<index>\d+)\.wav$"
EMBEDDED_VERSION = 2
EMBEDDED = {
    "espeak_digits": "the ten digits spoken by eSpeak NG: 16 voices x 4 takes with random rate, pitch and "
    "background noise (640 clips, generated offline on first use, then cached)",
}
TFDS_SAMPLE_RATES = {"spoken_digit": 8000, "speech_commands": 16000}


# -- TF ops --------------------------------------------------------------------------------
def resample(audio: tf.Tensor, rate_in: tf.Tensor, rate_out: int) -> tf.Tensor:
    """Band-limited resampling of a 1-D waveform by truncating or zero-padding its spectrum.

    Dropping the bins above the new Nyquist frequency is an ideal low-pass
    filter, so downsampling does not alias.

    Args:
        audio: float32 ``[n]``.
        rate_in: its sample rate (scalar, may be a tensor).
        rate_out: the wanted sample rate.

    Returns:
        float32 ``[round(n * rate_out / rate_in)]``.
    """
    audio = tf.convert_to_tensor(audio, tf.float32)
    rate_in = tf.cast(rate_in, tf.int64)

    def convert() -> tf.Tensor:
        n = tf.shape(audio)[0]
        m = tf.cast(tf.math.round(tf.cast(n, tf.float64) * rate_out / tf.cast(rate_in, tf.float64)), tf.int32)
        spectrum = tf.signal.rfft(audio, fft_length=[n])
        keep = m // 2 + 1
        spectrum = spectrum[:keep]
        spectrum = tf.pad(spectrum, [[0, keep - tf.shape(spectrum)[0]]])
        return tf.signal.irfft(spectrum, fft_length=[m]) * (tf.cast(m, tf.float32) / tf.cast(n, tf.float32))

    same = tf.logical_or(tf.equal(rate_in, rate_out), tf.equal(tf.size(audio), 0))
    return tf.cond(same, lambda: audio, convert)


def fix_length(audio: tf.Tensor, num_samples: int) -> tf.Tensor:
    """Center-crop or center-pad (with silence) waveforms ``[..., n]`` to ``[..., num_samples]``."""
    audio = tf.convert_to_tensor(audio, tf.float32)
    n = tf.shape(audio)[-1]
    start = tf.maximum(0, (n - num_samples) // 2)
    audio = audio[..., start: start + num_samples]
    missing = num_samples - tf.shape(audio)[-1]
    paddings = [[0, 0]] * (audio.shape.rank - 1) + [[missing // 2, missing - missing // 2]]
    audio = tf.pad(audio, paddings)
    # A static shape, not tf.ensure_shape: the padding above guarantees it, and EnsureShape has no
    # TFLite kernel (the speech export's serving_default converts to TFLite).
    audio.set_shape([*audio.shape[:-1], num_samples])
    return audio


def to_model_input(audio: tf.Tensor, rate_in: tf.Tensor, sample_rate: int, num_samples: int) -> tf.Tensor:
    """Mono mix-down of ``[n]`` or ``[n, channels]``, resampling and fixing the length."""
    audio = tf.convert_to_tensor(audio, tf.float32)
    if audio.shape.rank == 2:
        audio = tf.reduce_mean(audio, axis=1)
    return fix_length(resample(audio, rate_in, sample_rate), num_samples)


def decode_wav(contents: tf.Tensor, sample_rate: int, num_samples: int) -> tf.Tensor:
    """16-bit PCM WAV bytes (any rate, any channel count) -> float32 ``[num_samples]`` at ``sample_rate``."""
    audio, rate = tf.audio.decode_wav(contents)
    return to_model_input(audio, rate, sample_rate, num_samples)


# -- files ---------------------------------------------------------------------------------
def read_wav_bytes(path: str | os.PathLike) -> bytes:
    """A WAV file as 16-bit PCM WAV bytes (converting 8/24/32-bit PCM), or a clear error naming it.

    Returns:
        The file's bytes when it is 16-bit PCM already, else a re-encoded copy.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DlsuiteError(f"cannot read audio file {path}: {e.strerror}.") from None
    if not data:
        raise DlsuiteError(f"audio file {path} is empty (0 bytes); remove it or replace it with a WAV recording.")
    try:
        with wave.open(io.BytesIO(data)) as w:
            channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(frames)
    except (wave.Error, EOFError) as e:
        raise DlsuiteError(
            f"audio file {path} is not a readable PCM WAV file ({e}); dlsuite reads uncompressed PCM WAV "
            "(convert it, e.g. `ffmpeg -i IN -acodec pcm_s16le OUT.wav`)."
        ) from None
    if frames == 0 or len(raw) < width * channels:
        raise DlsuiteError(f"audio file {path} holds no samples; remove it or replace it with a WAV recording.")
    if len(raw) != frames * width * channels:  # TensorFlow's decoder refuses it later, mid-training
        raise DlsuiteError(
            f"audio file {path} is truncated: its header declares {frames} frames but it holds "
            f"{len(raw) // (width * channels)}; re-export the recording or remove the file."
        )
    if width == 2:
        return data
    return encode_wav(pcm_to_float(raw, width).reshape(-1, channels), rate)


def pcm_to_float(raw: bytes, width: int) -> np.ndarray:
    """Little-endian PCM samples (8-bit unsigned, 16/24/32-bit signed) -> float32 in [-1, 1]."""
    if width == 1:
        return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    if width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return (np.where(value >= 1 << 23, value - (1 << 24), value) / float(1 << 23)).astype(np.float32)
    dtype = {2: np.int16, 4: np.int32}[width]
    return (np.frombuffer(raw, dtype).astype(np.float64) / float(np.iinfo(dtype).max + 1)).astype(np.float32)


def encode_wav(audio: np.ndarray, sample_rate: int) -> bytes:
    """float32 ``[n, channels]`` -> 16-bit PCM WAV bytes."""
    return tf.audio.encode_wav(tf.constant(np.clip(audio, -1.0, 1.0), tf.float32), int(sample_rate)).numpy()


def parse_names(files: Sequence[Path], pattern: str) -> dict[str, list[str | None]]:
    """``label``/``speaker``/``index`` of each file name from a regex (the first group when unnamed).

    Raises:
        DlsuiteError: naming the first file the pattern does not match.
    """
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise DlsuiteError(f"data.label_pattern {pattern!r} is not a valid regular expression: {e}.") from None
    if regex.groups == 0:
        raise DlsuiteError(f"data.label_pattern {pattern!r} has no group; mark the label, e.g. '^(?P<label>\\d+)_'.")
    out: dict[str, list[str | None]] = {"label": [], "speaker": [], "index": []}
    for file in files:
        match = regex.search(file.name)
        if match is None:
            raise DlsuiteError(
                f"file name {file.name!r} (in {file.parent}) does not match data.label_pattern {pattern!r}; "
                "fix the pattern (--label-pattern) or move the file out."
            )
        groups = match.groupdict()
        out["label"].append(groups.get("label") or match.group(1))
        out["speaker"].append(groups.get("speaker"))
        out["index"].append(groups.get("index"))
    return out


# -- splits --------------------------------------------------------------------------------
def split_examples(
    labels: np.ndarray,
    *,
    speakers: Sequence[str | None] | None,
    indices: Sequence[str | None] | None,
    mode: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    test_speakers: Sequence[str] | None = None,
    own_test_below: int = 5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Train/val/test indices for clips with optional speaker ids and take indices.

    Args:
        labels: integer class ids.
        speakers: speaker id per clip (or ``None``s).
        indices: take index per clip (FSDD-style names), for ``own``.
        mode: one of ``SPLIT_MODES``.
        val_fraction: share of the training clips held out for validation
            (random, stratified, from the training speakers).
        test_fraction: share of speakers (``speaker``) or clips (``random``) held out.
        seed: seed of the speaker choice and the random splits.
        test_speakers: the speakers to hold out (``speaker`` mode), instead of a seeded choice.
        own_test_below: ``own`` mode: clips whose index is below this are the test split.

    Returns:
        (train, val, test) index arrays and the mode used.
    """
    if mode not in SPLIT_MODES:
        raise DlsuiteError(f"data.split must be one of {', '.join(SPLIT_MODES)}, got {mode!r}.")
    have_speakers = speakers is not None and all(s is not None for s in speakers)
    if mode == "auto":
        mode = "speaker" if have_speakers and len(set(speakers)) >= 2 else "random"
    if mode == "random":
        train, val, test = split_indices(labels, val_fraction, test_fraction, seed)
        return train, val, test, mode
    if mode == "speaker":
        if not have_speakers:
            raise DlsuiteError(
                "data.split=speaker needs speaker ids: name files with a 'speaker' group in data.label_pattern, "
                "e.g. '^(?P<label>[^_]+)_(?P<speaker>[^_]+)_'."
            )
        ids = np.asarray(speakers)
        unique = sorted(set(speakers))
        if test_speakers:
            unknown = sorted(set(test_speakers) - set(unique))
            if unknown:
                raise DlsuiteError(f"data.test_speakers {unknown} are not among the speakers {unique}.")
            held = sorted(test_speakers)
        else:
            if len(unique) < 2:
                raise DlsuiteError(f"a speaker-independent split needs at least 2 speakers, found {unique}.")
            count = min(len(unique) - 1, max(1, int(round(test_fraction * len(unique)))))
            held = sorted(np.random.default_rng(seed).choice(unique, size=count, replace=False).tolist())
        is_test = np.isin(ids, held)
        if is_test.all():
            raise DlsuiteError("data.test_speakers holds every speaker; leave at least one for training.")
        test, rest = np.flatnonzero(is_test), np.flatnonzero(~is_test)
    else:  # own
        if indices is None or any(i is None for i in indices):
            raise DlsuiteError(
                "data.split=own needs a take index in every file name (an 'index' group in data.label_pattern, "
                "as FSDD's {digit}_{speaker}_{index}.wav) or a TFDS dataset with its own test split."
            )
        is_test = np.asarray([int(i) for i in indices]) < own_test_below
        test, rest = np.flatnonzero(is_test), np.flatnonzero(~is_test)
        if not len(test) or not len(rest):
            raise DlsuiteError(f"data.own_test_below={own_test_below} leaves an empty train or test split.")
    _, counts = np.unique(labels[rest], return_counts=True)
    stratify = labels[rest] if counts.min() >= 2 and val_fraction * len(rest) >= len(counts) else None
    train, val = train_test_split(rest, test_size=val_fraction, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(val), test, mode


# -- sources -------------------------------------------------------------------------------
def _metadata(class_names: Sequence[str], sample_rate: int, num_samples: int, source: str, **extra: Any) -> dict[str, Any]:
    return {
        "class_names": [str(c) for c in class_names],
        "sample_rate": int(sample_rate),
        "num_samples": int(num_samples),
        "input_shape": [int(num_samples)],
        "input_dtype": "float32",
        "source": source,
        **extra,
    }


def _class_names(labels: Sequence[str]) -> list[str]:
    """Sorted label strings; numerically when they are all integers ("2" before "10")."""
    unique = set(labels)
    if all(str(u).lstrip("-").isdigit() for u in unique):
        return sorted(unique, key=int)
    return sorted(unique)


def _encoded_splits(
    encoded: Sequence[bytes],
    labels: np.ndarray,
    class_names: Sequence[str],
    speakers: Sequence[str | None] | None,
    indices: Sequence[str | None] | None,
    *,
    sample_rate: int,
    duration: float,
    split: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    test_speakers: Sequence[str] | None,
    own_test_below: int,
    source: str,
) -> Splits:
    """Splits of in-memory WAV bytes, decoded lazily by :func:`decode_wav` in tf.data."""
    check_labels(labels, class_names, source)
    train, val, test, mode = split_examples(
        labels, speakers=speakers, indices=indices, mode=split, val_fraction=val_fraction,
        test_fraction=test_fraction, seed=seed, test_speakers=test_speakers, own_test_below=own_test_below,
    )
    num_samples = int(round(sample_rate * duration))

    def subset(idx: np.ndarray) -> tf.data.Dataset:
        # tf.constant keeps trailing NUL bytes that a numpy bytes array would strip.
        ds = tf.data.Dataset.from_tensor_slices((tf.constant([encoded[i] for i in idx], tf.string), labels[idx]))
        return ds.map(lambda b, y: (decode_wav(b, sample_rate, num_samples), y), num_parallel_calls=tf.data.AUTOTUNE)

    extra: dict[str, Any] = {"split": mode, "num_examples": {"train": len(train), "val": len(val), "test": len(test)}}
    if speakers is not None and all(s is not None for s in speakers):
        ids = np.asarray(speakers)
        extra["speakers"] = {name: sorted(set(ids[idx].tolist())) for name, idx in (("train", train), ("val", val), ("test", test))}
    return Splits(subset(train), subset(val), subset(test), _metadata(class_names, sample_rate, num_samples, source, **extra))


def folder(
    path: str | os.PathLike,
    *,
    label_pattern: str | None = None,
    sample_rate: int,
    duration: float,
    split: str = "auto",
    val_fraction: float,
    test_fraction: float,
    seed: int,
    test_speakers: Sequence[str] | None = None,
    own_test_below: int = 5,
) -> Splits:
    """WAV files in class subfolders (``path/<word>/<clip>.wav``) or flat with labels in their names.

    A flat folder's names are parsed with ``label_pattern`` (default: FSDD's
    ``{label}_{speaker}_{index}.wav``); its ``speaker`` and ``index`` groups
    enable the ``speaker`` and ``own`` splits. Class subfolders get their class
    names from ``keras.utils.audio_dataset_from_directory`` (alphabetical); the
    files are decoded by :func:`decode_wav`, which also resamples (Keras's
    loader needs tensorflow-io for that and reads 16-bit PCM only).

    Args:
        path: the folder.
        label_pattern: regex with a ``label`` group (or one unnamed group) and
            optional ``speaker`` and ``index`` groups; forces the flat layout.
        sample_rate: rate of the waveforms the splits hold.
        duration: seconds every clip is padded or cropped to.
        split, val_fraction, test_fraction, seed, test_speakers, own_test_below: see :func:`split_examples`.

    Returns:
        :class:`Splits` of float32 waveforms.
    """
    import keras

    root = Path(path)
    if not root.is_dir():
        raise DlsuiteError(f"data folder {root} does not exist or is not a directory.")
    flat = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
    nested = sorted(p for p in root.glob("*/*") if p.is_file() and p.suffix.lower() == ".wav")
    speakers = indices = None
    if flat and (label_pattern or not nested):
        names = parse_names(flat, label_pattern or FSDD_PATTERN)
        class_names = _class_names(names["label"])
        labels = np.array([class_names.index(n) for n in names["label"]], dtype=np.int64)
        speakers, indices, files = names["speaker"], names["index"], flat
    elif nested:
        # Keras's label inference (alphabetical subfolder names); its files are not exposed, so list them here.
        ds = keras.utils.audio_dataset_from_directory(root, batch_size=None, shuffle=False, verbose=False)
        class_names = list(ds.class_names)
        files = [f for f in nested if f.parent.name in class_names]
        labels = np.array([class_names.index(p.parent.name) for p in files], dtype=np.int64)
    else:
        raise DlsuiteError(
            f"{root} holds no .wav files; lay it out as {root}/<word>/<clip>.wav or as {root}/<clip>.wav with "
            "the label in the name (--label-pattern)."
        )
    encoded = [read_wav_bytes(f) for f in files]
    return _encoded_splits(
        encoded, labels, class_names, speakers, indices, sample_rate=sample_rate, duration=duration, split=split,
        val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, test_speakers=test_speakers,
        own_test_below=own_test_below, source=f"folder:{root}",
    )


def cache_dir(data_dir: str | None = None) -> Path:
    """Where generated datasets live: ``data_dir``, else ``$DLSUITE_CACHE``, else ``~/.cache/dlsuite``."""
    return Path(data_dir) if data_dir else pretrained.cache_root()


def embedded_folder(name: str, data_dir: str | None = None) -> Path:
    """The folder of an embedded set, generated (a few seconds) on first use."""
    if name not in EMBEDDED:
        raise DlsuiteError(f"unknown embedded speech dataset {name!r}; embedded: {', '.join(EMBEDDED)}.")
    target = cache_dir(data_dir) / f"{name}-v{EMBEDDED_VERSION}"
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        espeak.generate_words(target, espeak.DIGITS, seed=0)
    return target


def tfds_audio(
    name: str,
    *,
    data_dir: str | None,
    sample_rate: int,
    duration: float,
    val_fraction: float,
    split: str = "auto",
    download: bool = True,
) -> Splits:
    """A TFDS audio classification dataset (``speech_commands``, ``spoken_digit``) with its own splits."""
    if split not in ("auto", "own"):
        raise DlsuiteError(
            f"TFDS dataset {name!r} comes with its own splits and no speaker ids; use data.split=own (or auto), "
            "or a folder of files whose names carry speaker ids for data.split=speaker."
        )
    datasets, info, counts = tfds_source.load(name, data_dir, val_fraction, download)
    audio_key, label_key = info.supervised_keys
    feature, label_feature = info.features[audio_key], info.features[label_key]
    if not hasattr(label_feature, "names") or len(getattr(feature, "shape", ())) != 1:
        raise DlsuiteError(f"TFDS dataset {name!r} is not an audio classification dataset (1-D audio + class label).")
    rate_in = getattr(feature, "sample_rate", None) or TFDS_SAMPLE_RATES.get(name.split(":")[0].split("/")[0])
    if not rate_in:
        raise DlsuiteError(f"TFDS dataset {name!r} does not say its sample rate; it cannot be resampled.")
    num_samples = int(round(sample_rate * duration))
    # TFDS stores 16-bit PCM values (as int16 or int64).
    scale = 1.0 / 32768.0 if feature.dtype in (tf.int16, tf.int32, tf.int64, np.int16, np.int32, np.int64) else 1.0

    def prepare(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return to_model_input(tf.cast(x, tf.float32) * scale, rate_in, sample_rate, num_samples), y

    ds = {k: v.map(prepare, num_parallel_calls=tf.data.AUTOTUNE) for k, v in datasets.items()}
    return Splits(
        ds["train"], ds["val"], ds["test"],
        _metadata(label_feature.names, sample_rate, num_samples, f"tfds:{name}", split="own", num_examples=counts),
    )


def arrays(
    waveforms: np.ndarray | Sequence[np.ndarray],
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    sample_rate: int,
    duration: float,
    input_rate: int | None = None,
    speakers: Sequence[str] | None = None,
    split: str = "auto",
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> Splits:
    """In-memory mono waveforms (float in [-1, 1], or int16) with integer labels.

    Args:
        waveforms: ``[n, samples]`` or a list of 1-D clips of any length.
        labels: integer class ids.
        class_names: name of each id.
        sample_rate: rate of the waveforms the splits hold.
        duration: seconds every clip is padded or cropped to.
        input_rate: rate of ``waveforms`` (default ``sample_rate``).
        speakers: speaker id per clip, for the speaker-independent split.
        split, val_fraction, test_fraction, seed: see :func:`split_examples`.

    Returns:
        :class:`Splits` of float32 waveforms.
    """
    clips = standardize(waveforms, sample_rate=sample_rate, duration=duration, input_rate=input_rate)
    labels = np.asarray(labels, dtype=np.int64)
    if len(clips) != len(labels):
        raise DlsuiteError(f"{len(clips)} waveforms but {len(labels)} labels; they must match.")
    check_labels(labels, class_names, "arrays")
    train, val, test, mode = split_examples(
        labels, speakers=speakers, indices=None, mode=split, val_fraction=val_fraction,
        test_fraction=test_fraction, seed=seed,
    )
    subset = lambda idx: tf.data.Dataset.from_tensor_slices((clips[idx], labels[idx]))  # noqa: E731
    return Splits(
        subset(train), subset(val), subset(test),
        _metadata(class_names, sample_rate, clips.shape[1], "arrays", split=mode,
                  num_examples={"train": len(train), "val": len(val), "test": len(test)}),
    )


def standardize(
    waveforms: np.ndarray | Sequence[np.ndarray], *, sample_rate: int, duration: float, input_rate: int | None = None
) -> np.ndarray:
    """Clips of any length (and rate) -> float32 ``[n, sample_rate * duration]`` through the TF ops."""
    num_samples = int(round(sample_rate * duration))
    if isinstance(waveforms, np.ndarray) and waveforms.ndim == 2 and waveforms.dtype != object:
        clips = list(waveforms)
    elif isinstance(waveforms, np.ndarray) and waveforms.ndim == 1 and waveforms.dtype != object:
        raise DlsuiteError("waveforms must be [n, samples] or a list of 1-D clips; got a single 1-D array.")
    else:
        clips = list(waveforms)
    out = np.zeros((len(clips), num_samples), np.float32)
    for i, clip in enumerate(clips):
        clip = np.asarray(clip)
        if clip.ndim != 1 or clip.size == 0 or not np.issubdtype(clip.dtype, np.number):
            raise DlsuiteError(f"waveform {i} must be a non-empty 1-D numeric array, got shape {clip.shape} ({clip.dtype}).")
        if np.issubdtype(clip.dtype, np.integer):
            clip = clip / 32768.0
        out[i] = to_model_input(clip.astype(np.float32), input_rate or sample_rate, sample_rate, num_samples).numpy()
    return out
