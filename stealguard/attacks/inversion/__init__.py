"""Answer inversion: the attacker's estimate of the clean posteriors behind a public defense's answers.

``invert(answers, "mad:epsilon=0.5")`` undoes the named defense with the parameters the spec
gives; parameters left out are estimated from the answers where the inverter can
(``mad``, ``mad_argmax``: the budget) and otherwise take the defense's defaults. One module
per defense family, one registry line each; ``inverter_from_spec`` builds the inverter an
attack applies to every answer (the ``invert`` evasion option of every attack).

What can be undone (parameters known): ``mad`` and ``mad_argmax`` exactly on the rows whose
target is identified (closed form), ``reverse_sigmoid`` and ``dcp`` where the per-entry map is
one-to-one (outside its fold), and the rows ``dcp`` leaves unchanged. What cannot:
``rounding``, ``topk``, ``label_only`` (information destroyed), ``random_noise`` (unknown noise;
consistent noise is not averaged away by repeats either), ``adaptive_misinformation``
(uncertain rows replaced), and the keyed parts of ``mad_keyed`` and ``reverse_sigmoid_keyed``. Those inverters return the
answers (or the closest estimate) and have ``exact = False``.
"""

from __future__ import annotations

from torch import Tensor

from stealguard.attacks.inversion.base import Inverter, check_answers
from stealguard.attacks.inversion.dcp import DCPInversion
from stealguard.attacks.inversion.lossy import (
    AdaptiveMisinformationInversion,
    LabelOnlyInversion,
    NoneInversion,
    RandomNoiseInversion,
    RoundingInversion,
    TopKInversion,
    Unrecoverable,
)
from stealguard.attacks.inversion.mad import MADInversion, MADKeyedInversion
from stealguard.attacks.inversion.mad_argmax import MADArgmaxInversion
from stealguard.attacks.inversion.registry import (
    create,
    get,
    names,
    parameters,
    register,
)
from stealguard.attacks.inversion.reverse_sigmoid import (
    ReverseSigmoidInversion,
    ReverseSigmoidKeyedInversion,
)
from stealguard.defenses.spec import parse_defense_spec

register("none", NoneInversion)
register("mad", MADInversion)
register("mad_argmax", MADArgmaxInversion)
register("mad_keyed", MADKeyedInversion)
register("reverse_sigmoid", ReverseSigmoidInversion)
register("reverse_sigmoid_keyed", ReverseSigmoidKeyedInversion)
register("dcp", DCPInversion)
register("random_noise", RandomNoiseInversion)
register("adaptive_misinformation", AdaptiveMisinformationInversion)
register("rounding", RoundingInversion)
register("topk", TopKInversion)
register("label_only", LabelOnlyInversion)


def inverter_from_spec(spec: str) -> Inverter:
    """The inverter a defense spec names, e.g. ``"mad:epsilon=0.5"`` (budget known) or ``"mad"`` (estimated).

    Parameters are separated by ``,`` or ``;`` (``;`` survives the CLI's comma-separated
    ``--attack-param``: ``invert=dcp:tau=0.8;epsilon=0.5``).

    Raises:
        ValueError: unparsable spec, a defense without an inverter (the message lists them), a
            parameter out of range. TypeError: a parameter the inverter does not take.
    """
    if not isinstance(spec, str):
        raise TypeError(f"invert must be a defense spec string such as 'mad:epsilon=0.5', got {type(spec).__name__}")
    name, params = parse_defense_spec(spec.replace(";", ","))
    return create(name, **params)


def check_invert_spec(invert: str | None) -> str | None:
    """``invert`` after checking it names an inverter with valid parameters (None passes).

    Raises:
        ValueError, TypeError: as :func:`inverter_from_spec`, prefixed with ``invert``.
    """
    if invert is None:
        return None
    try:
        inverter_from_spec(invert)
    except (TypeError, ValueError) as error:
        raise type(error)(f"invert={invert!r}: {error}") from None
    return invert


def invert(answers: Tensor, defense: str) -> Tensor:
    """The attacker's best estimate ``(N, K)`` of the clean posteriors behind ``answers`` ``(N, K)``.

    Args:
        answers: a defended API's answers, float32/float64 ``(N, K)`` on the simplex.
        defense: the defense spec the attacker assumes, with the parameters it knows
            (``"mad:epsilon=0.5"``) or the name only (``"mad"``: estimated from ``answers``).

    Raises:
        ValueError, TypeError: see :func:`inverter_from_spec` and
            :func:`~stealguard.attacks.inversion.base.check_answers`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from stealguard.defenses import create
        >>> y = torch.softmax(4 * torch.randn(6, 5, generator=torch.Generator().manual_seed(0)), dim=1)
        >>> mad = create("mad", epsilon=0.5, surrogate=nn.Linear(3, 5))
        >>> answers = mad(torch.randn(6, 3), y)
        >>> bool((invert(answers, "mad:epsilon=0.5") - y).abs().sum(dim=1).median() < 1e-3)
        True
    """
    return inverter_from_spec(defense)(answers)


__all__ = [
    "AdaptiveMisinformationInversion",
    "DCPInversion",
    "Inverter",
    "LabelOnlyInversion",
    "MADArgmaxInversion",
    "MADInversion",
    "MADKeyedInversion",
    "NoneInversion",
    "RandomNoiseInversion",
    "ReverseSigmoidInversion",
    "ReverseSigmoidKeyedInversion",
    "RoundingInversion",
    "TopKInversion",
    "Unrecoverable",
    "check_answers",
    "check_invert_spec",
    "create",
    "get",
    "invert",
    "inverter_from_spec",
    "names",
    "parameters",
    "register",
]
