"""Loading ``.keras`` files: always in Keras safe mode, with a clear refusal instead of a traceback.

A ``.keras`` file names the classes to rebuild; a ``Lambda`` layer carries Python bytecode
that would run on load. Keras's safe mode (the default) refuses such files; the suite keeps
it on for every file it loads (a run's ``model.keras``, a backbone given as
``model.weights``), since a run directory or a downloaded file may not be what the suite
wrote. The suite's own layers are registered Keras classes and load in safe mode.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any

from dlsuite.errors import DlsuiteError


def load_keras_file(path: str | os.PathLike, what: str = "model") -> Any:
    """``keras.saving.load_model(path)`` in safe mode, or one clear :class:`DlsuiteError`.

    Args:
        path: a ``.keras`` file.
        what: what the file is meant to be, for the messages (``"model"``, ``"backbone"``).

    Returns:
        The loaded Keras object.
    """
    import keras

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DlsuiteError(f"the {what} file {path} does not exist.")
    if not zipfile.is_zipfile(path):
        raise DlsuiteError(f"{path} is not a .keras file (a zip archive written by model.save); cannot load the {what}.")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except ValueError as e:
        if "safe_mode" in str(e) or "Lambda" in str(e):
            raise DlsuiteError(
                f"{path} holds a Lambda layer or other Python code, which dlsuite does not run when it loads "
                f"a {what} (Keras safe mode). Rebuild the {what} from registered layers, or load it yourself "
                "with keras.saving.load_model(..., safe_mode=False) if you wrote it and trust it."
            ) from None
        raise DlsuiteError(f"cannot load the {what} from {path}: {e}") from None
