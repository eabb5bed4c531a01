"""Offline speech synthesis with eSpeak NG (the ``espeakng-loader`` wheel), and the embedded word set.

eSpeak NG is a C library; this module drives it through ctypes: initialize it
for synchronous output with the wheel's voice data, collect the 16-bit mono
samples its synth callback hands over, and pick voice, rate and pitch per
utterance. :func:`generate_words` speaks a word list over many voices, rates
and pitches, mixes in background noise and writes one WAV file per clip,
named ``{word}_{speaker}_{n}.wav`` like the Free Spoken Digit Dataset.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import threading
import wave
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from dlsuite.errors import DlsuiteError

# espeak_AUDIO_OUTPUT, espeak_PARAMETER and espeak_POSITION_TYPE values from speak_lib.h.
AUDIO_OUTPUT_SYNCHRONOUS = 2
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE = 1, 2, 3, 4
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
EE_OK = 0

SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

# (voice, variant) pairs that sound clearly different: English accents x male/female variants.
# The variants f2, f3 and f5 add random breathiness (libc rand()), which makes output differ
# from run to run; these variants give the same samples for the same calls in a fresh process.
SPEAKERS = (
    ("en-us", "m1"), ("en-us", "f1"), ("en-us", "m3"), ("en-us", "f4"),
    ("en", "m2"), ("en", "f1"), ("en", "m4"), ("en", "f4"),
    ("en-gb-scotland", "m5"), ("en-gb-scotland", "f1"),
    ("en-gb-x-rp", "m6"), ("en-gb-x-rp", "f4"),
    ("en-029", "m7"), ("en-029", "f1"),
    ("en-us-nyc", "m2"), ("en-us-nyc", "f4"),
)
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class Synthesizer:
    """eSpeak NG loaded once per process; :meth:`speak` returns int16 samples.

    Attributes:
        sample_rate: the rate of the samples eSpeak produces (22,050 Hz).
    """

    _instance: "Synthesizer | None" = None
    _lock = threading.Lock()

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError:
            raise DlsuiteError(
                "the embedded speech set needs the espeakng-loader package (pip install espeakng-loader), "
                "or pass --data PATH / --dataset spoken_digit."
            ) from None
        self._lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        data_path = os.path.dirname(espeakng_loader.get_data_path())
        rate = self._lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if rate <= 0:
            raise DlsuiteError(f"eSpeak NG failed to initialize with its voice data in {data_path}.")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        # Keep a reference: ctypes callbacks are freed with their Python object.
        self._callback = SYNTH_CALLBACK(self._collect)
        self._lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> "Synthesizer":
        """The process-wide synthesizer (eSpeak NG holds global state)."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _collect(self, samples, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0

    def speak(self, text: str, voice: str = "en-us", *, rate: int = 175, pitch: int = 50, pitch_range: int = 50) -> np.ndarray:
        """Synthesize ``text``.

        Args:
            text: what to say.
            voice: voice name, optionally with a variant (``"en-us+f2"``).
            rate: words per minute (80-450).
            pitch: base pitch, 0-100.
            pitch_range: pitch variation, 0-100.

        Returns:
            int16 mono samples at :attr:`sample_rate`.
        """
        with self._lock:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
                raise DlsuiteError(f"eSpeak NG has no voice {voice!r}.")
            for param, value in ((PARAM_RATE, rate), (PARAM_PITCH, pitch), (PARAM_RANGE, pitch_range)):
                self._lib.espeak_SetParameter(param, int(value), 0)
            self._chunks = []
            encoded = text.encode("utf-8") + b"\0"
            status = self._lib.espeak_Synth(encoded, len(encoded), 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
            if status != EE_OK:
                raise DlsuiteError(f"eSpeak NG failed to synthesize {text!r} (error {status}).")
            return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def trim_silence(samples: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """Cut leading/trailing samples quieter than ``threshold`` of the peak (eSpeak pads words)."""
    loud = np.flatnonzero(np.abs(samples.astype(np.float32)) > threshold * max(1, np.abs(samples).max()))
    return samples[loud[0]: loud[-1] + 1] if loud.size else samples


def generate_words(
    out_dir: str | os.PathLike,
    words: Sequence[str] = DIGITS,
    *,
    speakers: Sequence[tuple[str, str]] = SPEAKERS,
    takes: int = 4,
    seed: int = 0,
    noise_snr_db: tuple[float, float] = (10.0, 30.0),
) -> list[Path]:
    """Speak every word ``takes`` times per speaker, with random rate, pitch, lead-in and noise.

    Files are written as ``{word}_{speaker}_{take}.wav`` (16-bit mono at the
    synthesizer's rate), into a temporary folder renamed to ``out_dir`` when
    complete, so an interrupted generation is never mistaken for a cache.

    Args:
        out_dir: folder to create (must not exist).
        words: the vocabulary (one class per word).
        speakers: (eSpeak voice, variant) pairs; each pair is one speaker id.
        takes: clips per word and speaker.
        seed: seeds rate, pitch, padding and noise; the same seed gives the same files.
        noise_snr_db: range of signal-to-noise ratios of the mixed-in background noise.

    Returns:
        The written files, sorted.
    """
    synth = Synthesizer.get()
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for voice, variant in speakers:
        speaker = f"{voice.replace('-', '')}{variant}"
        for word in words:
            for take in range(takes):
                # One generator per clip: a clip does not depend on which other clips are generated.
                rng = np.random.default_rng([seed, zlib.crc32(speaker.encode()), zlib.crc32(word.encode()), take])
                rate = int(rng.integers(120, 260))
                pitch = int(rng.integers(20, 80))
                clip = trim_silence(synth.speak(word, f"{voice}+{variant}", rate=rate, pitch=pitch,
                                                pitch_range=int(rng.integers(20, 80))))
                lead = int(rng.integers(0, synth.sample_rate // 8))
                tail = int(rng.integers(0, synth.sample_rate // 8))
                signal = np.concatenate([np.zeros(lead), clip.astype(np.float64), np.zeros(tail)])
                signal *= rng.uniform(0.3, 1.0) * 32767.0 / max(1.0, np.abs(signal).max())
                signal += _background(len(signal), signal, rng, noise_snr_db)
                pcm = np.clip(np.round(signal), -32768, 32767).astype(np.int16)
                write_wav(tmp / f"{word}_{speaker}_{take}.wav", pcm, synth.sample_rate)
    try:
        os.replace(tmp, out_dir)
    except OSError:
        if not out_dir.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another process generated the same set first
    return sorted(out_dir.glob("*.wav"))


def _background(n: int, signal: np.ndarray, rng: np.random.Generator, snr_db: tuple[float, float]) -> np.ndarray:
    """White, brown-ish or hum noise scaled to a random SNR against ``signal``."""
    kind = rng.integers(3)
    if kind == 0:
        noise = rng.standard_normal(n)
    elif kind == 1:
        noise = np.cumsum(rng.standard_normal(n))
        noise -= np.convolve(noise, np.ones(64) / 64, mode="same")  # keep it zero-mean over short spans
    else:
        t = np.arange(n)
        noise = np.sin(2 * np.pi * rng.uniform(50, 400) / 22050 * t) + 0.3 * rng.standard_normal(n)
    power = np.mean(signal**2) / 10 ** (rng.uniform(*snr_db) / 10)
    return noise * np.sqrt(power / max(np.mean(noise**2), 1e-12))


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> None:
    """Write int16 samples ``[n]`` or ``[n, channels]`` as a PCM WAV file."""
    samples = np.asarray(samples, dtype=np.int16)
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(int(sample_rate))
        f.writeframes(samples.tobytes())
