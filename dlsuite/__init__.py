"""dlsuite: trained, evaluated and exported deep-learning baselines for five tasks."""

import os

# TensorFlow's C++ start-up chatter drowns the CLI's own output; users can still set it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from dlsuite.errors import DlsuiteError  # noqa: E402,F401
