"""``JacobianAttack``: the round structure shared by JBDA, JB-self and JB-top-k.

Papernot et al., "Practical Black-Box Attacks against Machine Learning", AsiaCCS 2017,
Algorithm 1, with the schedule of Orekondy et al.'s reference implementation (ICLR 2020):

1. query a seed set of ``seed_size`` query-set images: ``D = {(x, y~)}``;
2. each round rho: train a fresh substitute on ``D`` (``round_epochs`` = 20 epochs, SGD,
   momentum 0.9, ``round_lr``); pick the parents (all of ``D``, or ``kappa`` random points of it once
   ``rho >= sigma``: the reservoir sampling of Sec. 6.2); synthesise new points from the
   parents with the attack's :meth:`JacobianAttack.augment`, step ``lambda_rho =
   lambda * (-1) ** round(rho / tau)`` (the reference code, Python's ``round``; Papernot et
   al.'s Sec. 6.2 writes ``floor``, available as ``flip="floor"``); query them and add them to ``D``;
3. stop when the budget is spent (the last round's new points are cut to what is left)
   or after ``max_rounds`` rounds; train the final replica afresh on ``D`` with the
   final schedule (default 100 epochs, SGD, lr 0.01, momentum 0.9, batch 64, step decay).

Labels for the steps are the top-1 classes of the stored black-box answers.

Directions: the reference code (``defenses/adversary/jacobian.py`` of Orekondy et al.)
steps ``x + lambda * sign(grad_x CE(F_A(x), y))`` for ``jbda`` and ``x - ...`` for
``jbself``; Papernot et al.'s Eq. 4, ``x + lambda * sign(J_F(x)[O(x)])``, moves along the
gradient of the label's output, i.e. *down* the cross-entropy, which is the reference's
``jbself`` direction. This package keeps the reference's names (``jbda`` = ``+``,
``jb_self`` = ``-``), the setting behind the MAD paper's numbers; see ``docs/fidelity.md``.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from stealguard._checks import check_choice, check_int, check_number
from stealguard.attacks.replica import ReplicaAttack
from stealguard.blackbox import BlackBox

FLIPS = ("round", "floor")
"""How the round index is turned into lambda's sign: the reference code's ``round`` or the paper's ``floor``."""


class JacobianAttack(ReplicaAttack):
    """Base of the Jacobian-based synthetic-query attacks; subclasses implement :meth:`augment`.

    Args:
        seed_size: query-set images in the seed set, >= 1 (default 100).
        step_size: lambda, the step of the augmentation in pixel units, > 0 (default 0.1).
        tau: rounds after which the sign of lambda flips, >= 1 (default 5).
        flip: ``"round"`` (default; the reference code: ``(-1) ** round(rho / tau)``, Python's
            round-half-to-even, so with tau = 5 the first flip is at round 3) or ``"floor"``
            (Papernot et al., Sec. 6.2: ``(-1) ** floor(rho / tau)``, first flip at round tau).
        kappa: parents per round once reservoir sampling is on, >= 1, or ``None`` (default:
            every point of ``D`` is a parent, so ``D`` doubles each round).
        sigma: round from which reservoir sampling applies, >= 0 (default 3).
        round_epochs: epochs of each round's substitute training, >= 1 (default 20).
        round_lr: SGD learning rate of the round training, > 0 (default 0.01; the reference
            code's 0.1 made the LeNet substitute's loss NaN on MNIST once ``D`` held
            thousands of points, so the default is the final training's rate).
        max_rounds: most augmentation rounds, >= 1, or ``None`` (default: until the budget is spent).
        **common: the :class:`ReplicaAttack` parameters; ``epochs``, ``lr`` etc. set the final training.
    """

    training_defaults: ClassVar[dict[str, Any]] = {
        "epochs": 100,
        "batch_size": 64,
        "lr": 0.01,
        "optimizer": "sgd",
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "schedule": "step",
    }
    queries_per_parent: ClassVar[int] = 1
    """Synthetic points (queries) each parent yields per round."""

    def __init__(
        self,
        *,
        seed_size: int = 100,
        step_size: float = 0.1,
        tau: int = 5,
        flip: str = "round",
        kappa: int | None = None,
        sigma: int = 3,
        round_epochs: int = 20,
        round_lr: float = 0.01,
        max_rounds: int | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.seed_size = check_int("seed_size", seed_size, low=1)
        self.step_size = check_number("step_size", step_size, low=0, low_inclusive=False)
        self.tau = check_int("tau", tau, low=1)
        self.flip = check_choice("flip", flip, FLIPS)
        self.kappa = None if kappa is None else check_int("kappa", kappa, low=1)
        self.sigma = check_int("sigma", sigma, low=0)
        self.round_epochs = check_int("round_epochs", round_epochs, low=1)
        self.round_lr = check_number("round_lr", round_lr, low=0, low_inclusive=False)
        self.max_rounds = None if max_rounds is None else check_int("max_rounds", max_rounds, low=1)
        self.rounds_run = 0
        self.transfer_set_size = 0

    def round_step(self, round_index: int) -> float:
        """``lambda_rho = lambda * (-1) ** round(rho / tau)`` (reference code) or ``floor`` (Papernot et al., Sec. 6.2)."""
        exponent = round(round_index / self.tau) if self.flip == "round" else round_index // self.tau
        return self.step_size * (-1.0) ** exponent

    @abc.abstractmethod
    def augment(self, substitute: nn.Module, parents: Tensor, labels: Tensor, round_index: int) -> Tensor:
        """New query points from ``parents`` ``(P, C, H, W)`` with labels ``(P,)``.

        Returns ``(P * queries_per_parent, C, H, W)`` images in [0, 1], the points of one
        parent consecutive.
        """

    def _run(self, blackbox: BlackBox, budget: int) -> nn.Module:
        generator = torch.Generator().manual_seed(self.seed)
        with self.oracle(blackbox, budget) as oracle:
            count = min(self.seed_size, oracle.capacity, self.images.shape[0])
            seeds = self.images[torch.randperm(self.images.shape[0], generator=generator)[:count]]
            inputs, answers = seeds, oracle.ask(seeds)
            round_index = 0
            while oracle.remaining > 0 and (self.max_rounds is None or round_index < self.max_rounds):
                substitute = self.make_replica(blackbox, seeds, seed=self.seed + 1 + round_index)
                self.train(
                    substitute,
                    inputs,
                    answers,
                    desc=f"round {round_index} substitute",
                    probe=False,
                    epochs=self.round_epochs,
                    lr=self.round_lr,
                    optimizer="sgd",
                    schedule="none",
                    seed=self.seed + round_index,
                )
                parents = self._parents(inputs, round_index, generator)
                needed = -(-oracle.remaining // self.queries_per_parent)
                parents = parents[:needed]
                labels = answers[parents].argmax(dim=1)
                new_points = self.augment(substitute, inputs[parents], labels, round_index)[: oracle.remaining]
                inputs = torch.cat([inputs, new_points])
                answers = torch.cat([answers, oracle.ask(new_points)])
                round_index += 1
        self.rounds_run = round_index
        self.transfer_set_size = int(inputs.shape[0])
        replica = self.make_replica(blackbox, seeds, seed=self.seed)
        return self.train(replica, inputs, answers)

    def _parents(self, inputs: Tensor, round_index: int, generator: torch.Generator) -> Tensor:
        """Indices into ``D`` of this round's parents: all, or ``kappa`` random ones once ``rho >= sigma``."""
        n = inputs.shape[0]
        if self.kappa is not None and round_index >= self.sigma and self.kappa < n:
            return torch.randperm(n, generator=generator)[: self.kappa]
        return torch.arange(n)

    def report(self) -> dict[str, Any]:
        return {"rounds": self.rounds_run, "transfer_set_size": self.transfer_set_size, **self.training_report()}

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "seed_size": self.seed_size,
            "step_size": self.step_size,
            "tau": self.tau,
            "flip": self.flip,
            "kappa": self.kappa,
            "sigma": self.sigma,
            "round_epochs": self.round_epochs,
            "round_lr": self.round_lr,
            "max_rounds": self.max_rounds,
        }
