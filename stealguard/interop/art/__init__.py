"""IBM Adversarial Robustness Toolbox (ART) interop, both ways (needs ``pip install stealguard[art]``).

stealguard defenses inside ART:

* :class:`DefensePostprocessor`: a defense that needs only the posteriors (``none``,
  ``reverse_sigmoid``, ``dcp``, ``topk``, ``rounding``, ``label_only``, ``random_noise``)
  as an ART ``Postprocessor``, with stealguard's checks and its fixes of ART's
  ``ClassLabels`` and ``Rounded``.
* :class:`DefendedClassifier`: an ART classifier answering ``defense(x, probs)``, for MAD,
  MAD-argmax and adaptive misinformation, which need the input ``x`` that an ART
  postprocessor never sees.

ART's extraction attacks against stealguard:

* :class:`ArtBlackBox`: a stealguard ``BlackBox`` or ``RemoteBlackBox`` as an ART classifier;
  ``KnockoffNets`` and ``CopycatCNN`` query it through the black box, which applies the
  defense and counts every query.
* :func:`pytorch_classifier`: a stealguard model as the ``PyTorchClassifier`` ART trains.
* The registered attacks ``art_knockoff`` and ``art_copycat`` (:mod:`stealguard.attacks.art_extraction`)
  run them from the harness, ``sweep`` and ``stealguard attack``.

Importing this package imports ART; without it, it raises ``ImportError`` with the install hint.
"""

from stealguard.interop.art._require import ART_VERSION, INSTALL_HINT, require_art

require_art()

from stealguard.interop.art.estimators import ArtBlackBox, DefendedClassifier, pytorch_classifier
from stealguard.interop.art.postprocessor import DefensePostprocessor, uses_input

__all__ = [
    "ART_VERSION",
    "INSTALL_HINT",
    "ArtBlackBox",
    "DefendedClassifier",
    "DefensePostprocessor",
    "pytorch_classifier",
    "require_art",
    "uses_input",
]
