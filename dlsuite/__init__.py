"""dlsuite: trained, evaluated and exported deep-learning baselines for five tasks."""

import os

# TensorFlow's C++ start-up chatter drowns the CLI's own output; users can still set it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI or newer; on
# AVX2 CPUs (the AMD EPYC this suite is measured on) they train the speech CNN
# 2-2.5x faster than the default Eigen kernels (README, "Setup"). It must be
# set before TensorFlow is imported; an explicit TF_ENABLE_ONEDNN_OPTS=0 is kept.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

from dlsuite.errors import DlsuiteError, InvalidInputError  # noqa: E402,F401
