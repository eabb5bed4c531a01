"""Network families, each a module registering its builders in the shared registry."""

from dlsuite.architectures.registry import (  # noqa: F401
    ARCHITECTURES,
    INPUT_KINDS,
    Architecture,
    InputSpec,
    build,
    check_hparams,
    get,
    names,
    register,
)

# Importing a family module registers it.
from dlsuite.architectures import cnn, inception, mlp, resnet  # noqa: E402,F401
