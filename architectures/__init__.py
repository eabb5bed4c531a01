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
from dlsuite.architectures import recurrent  # noqa: E402,F401
from dlsuite.architectures import transformer  # noqa: E402,F401
from dlsuite.architectures import rbm  # noqa: E402,F401
from dlsuite.architectures import som  # noqa: E402,F401
from dlsuite.architectures import dbn  # noqa: E402,F401
from dlsuite.architectures import rbfn  # noqa: E402,F401
from dlsuite.architectures import transfer  # noqa: E402,F401
from dlsuite.architectures import autoencoder  # noqa: E402,F401
from dlsuite.architectures import gan  # noqa: E402,F401
from dlsuite.architectures import crnn  # noqa: E402,F401
from dlsuite.architectures import bert  # noqa: E402,F401
from dlsuite.architectures import forecaster  # noqa: E402,F401
from dlsuite.architectures import deep_svdd  # noqa: E402,F401
from dlsuite.architectures import robust_autoencoder  # noqa: E402,F401
from dlsuite.architectures import autoencoder_ensemble  # noqa: E402,F401
from dlsuite.architectures import detector_panel  # noqa: E402,F401
