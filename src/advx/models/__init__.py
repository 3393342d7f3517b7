"""The model zoo and checkpoint I/O.

Image models, all taking inputs in ``[0, 1]`` (normalisation happens inside the model):

=========  =====================================================================
``linear``  softmax regression (Goodfellow et al. 2015: even linear models are fooled)
``mlp``     multilayer perceptron
``cnn``     small convolutional network (the demo model)
``rnn``     LSTM reading image rows
``logreg``  scikit-learn logistic regression      (black-box: scores and labels)
``svm``     scikit-learn RBF SVM, calibrated     (black-box)
``tree``    scikit-learn decision tree            (black-box)
``forest``  scikit-learn random forest            (black-box)
``knn``     scikit-learn k-nearest neighbours      (black-box)
=========  =====================================================================

Pretrained ImageNet classifiers (real weights, offline): :func:`pretrained` opens one of
:data:`PRETRAINED` (``efficientnet-lite0``, ``-lite1``, ``-lite2``); see
:mod:`advx.models.pretrained`.

Other packages add architectures with :func:`register` in a module named ``archs``,
which the registry imports on first use (:func:`~advx.models.registry.load_plugins`):
the text models ``bow``, ``wordcnn``, ``lstm`` and ``minilm`` come that way, so this
package never imports them.

Torch models are :class:`~advx.models.adapter.Classifier` instances; scikit-learn ones
are :class:`~advx.models.classic.SklearnClassifier` (a score-level
:class:`~advx.targets.Target`). :data:`ARCHS` describes each; :func:`build` makes an
untrained one; :func:`advx.training.train` trains one; :func:`save` / :func:`load` /
:func:`read_info` handle checkpoint directories (safetensors or skops + ``model.json``,
never pickle).

Example:
    >>> from advx.models import ARCHS, build
    >>> ARCHS["cnn"].description.split(":")[0]
    'small CNN'
    >>> build("cnn", input_shape=(1, 28, 28), num_classes=10).num_parameters()
    421738
"""

from __future__ import annotations

from advx.models import classic as _classic  # noqa: F401  (registers the sklearn archs)
from advx.models import external_checkpoint as _imported  # noqa: F401  (opens `advx import` checkpoints)
from advx.models import image as _image  # noqa: F401  (registers the torch image archs)
from advx.models.adapter import Classifier
from advx.models.checkpoint import load, read_info, save, verify
from advx.models.classic import SklearnClassifier
from advx.models.pretrained import PRETRAINED, pretrained
from advx.models.registry import ARCHS, ArchSpec, build, get_arch, register

__all__ = [
    "ARCHS",
    "PRETRAINED",
    "ArchSpec",
    "Classifier",
    "SklearnClassifier",
    "build",
    "get_arch",
    "load",
    "pretrained",
    "read_info",
    "register",
    "save",
    "verify",
]
