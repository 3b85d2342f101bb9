"""``DataFreeAttack``: the generator-student game shared by DFME and MAZE.

The attacker owns no images. A generator ``G(z)`` synthesises queries; the student (the
replica) learns to match the black box on them, and the generator learns to produce
queries on which student and black box disagree. One iteration:

1. ``generator_steps`` times: draw ``batch_size`` latents, ``x = G(z)``; estimate the
   gradient of the per-sample loss ``-D(S(x), V(x))`` (D the disagreement) with respect to
   ``x`` by forward differences through the black box (``directions`` random directions,
   step ``smoothing``: ``batch_size * (directions + 1)`` queries), back-propagate it through
   ``G`` and take an optimiser step (Adam; SGD in MAZE's reference variant);
2. ``student_steps`` times: query a fresh batch ``G(z)`` (``batch_size`` queries) and take an
   SGD step of the student on it; subclasses may also replay past queries (MAZE).

Every query, including those of the gradient estimate, is counted against the budget by
an :class:`~stealguard.attacks.oracle.Oracle`. When fewer queries remain than a generator
step needs, the rest is spent on student batches. The learning rates of both follow the
schedule over the iterations the budget allows.

``variant="reference"`` follows the authors' code (DFME's ``dfme/train.py`` and
``approximate_gradients.py``, MAZE's ``attacks/maze.py`` and ``attack_utils.py``): the
generator ends with a BatchNorm before tanh, the forward differences perturb its pre-tanh
output (queries stay in range without clipping), and each attack's
:attr:`DataFreeAttack.variant_settings` set the rest (MAZE: SGD for the generator, the
generator's batch reused for the first student step, the student in train mode during the
estimate). ``variant="stealguard"`` is this project's earlier version: no final BatchNorm,
perturbations in pixel space clipped to [0, 1], Adam for the generator. Remaining
differences from the authors' code are listed in ``docs/fidelity.md``.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from stealguard._checks import check_bool, check_choice, check_int, check_number
from stealguard.attacks.base import Attack
from stealguard.attacks.generator import ImageGenerator
from stealguard.attacks.inversion import check_invert_spec, inverter_from_spec
from stealguard.attacks.oracle import Oracle
from stealguard.attacks.replica_source import build_replica, check_replica_source, replica_source_params
from stealguard.attacks.zeroth_order import estimate_gradient
from stealguard.blackbox import BlackBox
from stealguard.device import DeviceLike, resolve_device

SCHEDULES = ("step", "cosine", "none")
VARIANTS = ("reference", "stealguard")
DEFAULT_VARIANT = "reference"
STEP_MILESTONES = (0.1, 0.3, 0.5)
STEP_GAMMA = 0.3
STUDENT_NORMALISATION = (0.5, 0.5)
"""Mean and std the student normalises pixels with: no data to estimate them from, so [0, 1] maps to [-1, 1]."""


def schedule_factor(schedule: str, progress: float) -> float:
    """Learning-rate multiplier at ``progress`` in [0, 1] of the run.

    ``step``: x0.3 at 10%, 30% and 50% (DFME's MultiStepLR); ``cosine``: ``(1 + cos(pi p)) / 2``;
    ``none``: 1.
    """
    if schedule == "step":
        return STEP_GAMMA ** sum(progress >= m for m in STEP_MILESTONES)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    return 1.0


class DataFreeAttack(Attack):
    """Base of the data-free attacks; subclasses define the losses (and may replay).

    Args:
        replica_arch: the student's architecture (the harness passes the victim's).
        replica_factory: zero-argument callable returning the student; takes precedence.
        batch_size: queries per generator batch, >= 1.
        student_lr: SGD learning rate of the student, > 0 (momentum 0.9, weight decay 5e-4).
        generator_lr: learning rate of the generator's optimiser (Adam, or SGD as set by
            :attr:`variant_settings`), > 0.
        student_steps: student steps per iteration, >= 1. generator_steps: >= 0.
        directions: random directions m of the gradient estimate, >= 1.
        smoothing: forward-difference step epsilon, > 0.
        latent_dim: size of z, >= 1. generator_width: channels of the generator, >= 1.
        schedule: ``"step"``, ``"cosine"`` or ``"none"`` for both learning rates.
        query_batch_size: inputs per black-box call, >= 1 (default 1024).
        seed: >= 0. device: where student and generator train. progress: tqdm bar.
        variant: ``"reference"`` (the authors' code) or ``"stealguard"`` (default
            :data:`DEFAULT_VARIANT`); see the module docstring.
        invert: a defense spec whose answer inversion (:mod:`stealguard.attacks.inversion`) is
            applied to every answer, gradient-estimate queries included, or None (default).
        ``None`` takes the attack's published default (:attr:`defaults`).
    """

    defaults: ClassVar[dict[str, Any]] = {}
    variant_settings: ClassVar[dict[str, dict[str, Any]]] = {
        "reference": {
            "final_norm": "batchnorm",
            "pre_tanh": True,
            "generator_optimizer": "adam",
            "reuse_generator_batch": False,
            "student_train_in_estimate": False,
        },
        "stealguard": {
            "final_norm": "none",
            "pre_tanh": False,
            "generator_optimizer": "adam",
            "reuse_generator_batch": False,
            "student_train_in_estimate": False,
        },
    }
    """Per variant: the generator's last BatchNorm (:data:`~stealguard.attacks.generator.FINAL_NORMS`),
    whether forward differences perturb the pre-tanh output, the generator's optimiser
    (``"adam"``, or ``"sgd"`` with momentum 0.9 and weight decay 5e-4), whether the first
    student step of an iteration trains on the generator step's batch and answers instead
    of a fresh batch, and whether the student stays in train mode (evaluated batch by
    batch) during the gradient estimate."""

    def __init__(
        self,
        *,
        replica_arch: str | None = None,
        replica_factory: Callable[[], nn.Module] | None = None,
        batch_size: int | None = None,
        student_lr: float | None = None,
        generator_lr: float | None = None,
        student_steps: int | None = None,
        generator_steps: int | None = None,
        directions: int | None = None,
        smoothing: float | None = None,
        latent_dim: int | None = None,
        generator_width: int | None = None,
        schedule: str | None = None,
        query_batch_size: int = 1024,
        seed: int = 0,
        device: DeviceLike = "auto",
        progress: bool = True,
        invert: str | None = None,
        variant: str = DEFAULT_VARIANT,
    ) -> None:
        self.variant = check_choice("variant", variant, VARIANTS)
        self.settings = dict(self.variant_settings[self.variant])
        self.invert = check_invert_spec(invert)
        given = {
            "batch_size": batch_size, "student_lr": student_lr, "generator_lr": generator_lr,
            "student_steps": student_steps, "generator_steps": generator_steps, "directions": directions,
            "smoothing": smoothing, "latent_dim": latent_dim, "generator_width": generator_width, "schedule": schedule,
        }
        value = {key: self.defaults[key] if v is None else v for key, v in given.items()}
        self.replica_arch, self.replica_factory = check_replica_source(replica_arch, replica_factory)
        self.batch_size = check_int("batch_size", value["batch_size"], low=1)
        self.student_lr = check_number("student_lr", value["student_lr"], low=0, low_inclusive=False)
        self.generator_lr = check_number("generator_lr", value["generator_lr"], low=0, low_inclusive=False)
        self.student_steps = check_int("student_steps", value["student_steps"], low=1)
        self.generator_steps = check_int("generator_steps", value["generator_steps"], low=0)
        self.directions = check_int("directions", value["directions"], low=1)
        self.smoothing = check_number("smoothing", value["smoothing"], low=0, low_inclusive=False)
        self.latent_dim = check_int("latent_dim", value["latent_dim"], low=1)
        self.generator_width = check_int("generator_width", value["generator_width"], low=1)
        self.schedule = check_choice("schedule", value["schedule"], SCHEDULES)
        self.query_batch_size = check_int("query_batch_size", query_batch_size, low=1)
        self.seed = check_int("seed", seed, low=0)
        self.device = resolve_device(device)
        self.progress = check_bool("progress", progress)
        self.iterations_run = 0
        self.generator: ImageGenerator | None = None
        self._reusable: tuple[Tensor, Tensor] | None = None

    @abc.abstractmethod
    def disagreement(self, student_logits: Tensor, answers: Tensor) -> Tensor:
        """Per-sample disagreement ``(N,)`` between student logits ``(N, K)`` and black-box answers ``(N, K)``."""

    @abc.abstractmethod
    def student_loss(self, student_logits: Tensor, answers: Tensor) -> Tensor:
        """Scalar loss the student minimises on a batch of answers."""

    def reset(self) -> None:
        """Hook: forget the state of a previous run (called at the start of :meth:`run`)."""

    def remember(self, x: Tensor, answers: Tensor) -> None:
        """Hook: a student batch ``(x, answers)`` was queried (MAZE keeps it for replay)."""

    def replay(self, student: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> None:
        """Hook: extra student steps at the end of an iteration (MAZE's experience replay)."""

    def queries_per_iteration(self) -> int:
        """Queries one full iteration issues."""
        reused = 1 if self.settings["reuse_generator_batch"] and self.generator_steps > 0 else 0
        return self.generator_steps * self.batch_size * (self.directions + 1) + (self.student_steps - reused) * self.batch_size

    def _run(self, blackbox: BlackBox, budget: int) -> nn.Module:
        self.reset()
        rng = torch.Generator().manual_seed(self.seed)
        student = self._make_student(blackbox).to(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + 1)
            generator = ImageGenerator(
                tuple(blackbox.input_shape), latent_dim=self.latent_dim, width=self.generator_width,
                final_norm=self.settings["final_norm"],
            )
        generator = generator.to(self.device)
        self.generator = generator
        optimizer_s = torch.optim.SGD(student.parameters(), lr=self.student_lr, momentum=0.9, weight_decay=5e-4)
        optimizer_g: torch.optim.Optimizer
        if self.settings["generator_optimizer"] == "sgd":
            optimizer_g = torch.optim.SGD(generator.parameters(), lr=self.generator_lr, momentum=0.9, weight_decay=5e-4)
        else:
            optimizer_g = torch.optim.Adam(generator.parameters(), lr=self.generator_lr)
        planned = max(budget // self.queries_per_iteration(), 1)
        inverter = None if self.invert is None else inverter_from_spec(self.invert)
        oracle = Oracle(blackbox, budget, batch_size=self.query_batch_size, progress=self.progress, invert=inverter)
        with oracle, torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + 2)
            iteration = 0
            while oracle.remaining > 0:
                factor = schedule_factor(self.schedule, iteration / planned)
                for group in optimizer_s.param_groups:
                    group["lr"] = self.student_lr * factor
                for group in optimizer_g.param_groups:
                    group["lr"] = self.generator_lr * factor
                generator_cost = self.batch_size * (self.directions + 1)
                self._reusable = None
                for _ in range(self.generator_steps):
                    if oracle.remaining < generator_cost + self.batch_size:
                        break
                    self._generator_step(generator, student, optimizer_g, oracle, rng)
                for _ in range(self.student_steps):
                    if self._reusable is not None:
                        x, answers = self._reusable
                        self._reusable = None
                        self.remember(x, answers)
                        self.fit_batch(student, optimizer_s, x, answers)
                        continue
                    count = min(self.batch_size, oracle.remaining)
                    if count == 0:
                        break
                    self._student_step(generator, student, optimizer_s, oracle, rng, count)
                self.replay(student, optimizer_s, rng)
                iteration += 1
        self.iterations_run = iteration
        return student.eval()

    def _make_student(self, blackbox: BlackBox) -> nn.Module:
        channels = blackbox.input_shape[0]
        mean, std = STUDENT_NORMALISATION
        return build_replica(
            self.replica_arch, self.replica_factory, blackbox, mean=[mean] * channels, std=[std] * channels,
            seed=self.seed, owner=type(self).__name__, role="student",
        )

    def _generator_step(
        self, generator: ImageGenerator, student: nn.Module, optimizer: torch.optim.Optimizer, oracle: Oracle, rng: torch.Generator
    ) -> None:
        generator.train()
        in_train_mode = bool(self.settings["student_train_in_estimate"])
        student.train(in_train_mode)
        pre_tanh = bool(self.settings["pre_tanh"])
        z = generator.sample(self.batch_size, rng)
        x = generator.pre_activation(z) if pre_tanh else generator(z)
        n = x.shape[0]

        def loss(points: Tensor) -> Tensor:
            pixels = generator.to_pixels(points) if pre_tanh else points
            answers = oracle.ask(pixels).to(self.device)
            with torch.no_grad():
                logits = torch.cat([student(part) for part in pixels.split(n)]) if in_train_mode else student(pixels)
            if self.settings["reuse_generator_batch"]:
                self._reusable = (pixels[:n].detach(), answers[:n])
            return -self.disagreement(logits, answers)

        grad = estimate_gradient(
            loss, x.detach(), directions=self.directions, epsilon=self.smoothing, generator=rng, clip=not pre_tanh
        )
        optimizer.zero_grad(set_to_none=True)
        x.backward(grad.to(x.device) / self.batch_size)
        optimizer.step()
        student.train()

    def _student_step(
        self, generator: ImageGenerator, student: nn.Module, optimizer: torch.optim.Optimizer, oracle: Oracle,
        rng: torch.Generator, count: int,
    ) -> None:
        generator.train()
        with torch.no_grad():
            x = generator(generator.sample(count, rng))
        answers = oracle.ask(x).to(self.device)
        self.remember(x, answers)
        self.fit_batch(student, optimizer, x, answers)

    def fit_batch(self, student: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, answers: Tensor) -> None:
        """One optimiser step of the student on ``(x, answers)`` with :meth:`student_loss`."""
        student.train()
        optimizer.zero_grad(set_to_none=True)
        loss = self.student_loss(student(x), answers)
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(f"{type(self).__name__} student loss became {float(loss)}; lower student_lr")
        loss.backward()
        optimizer.step()

    def report(self) -> dict[str, Any]:
        return {"iterations": self.iterations_run, "queries_per_iteration": self.queries_per_iteration()}

    def params(self) -> dict[str, Any]:
        return {
            **replica_source_params(self.replica_arch, self.replica_factory),
            "batch_size": self.batch_size,
            "student_lr": self.student_lr,
            "generator_lr": self.generator_lr,
            "student_steps": self.student_steps,
            "generator_steps": self.generator_steps,
            "directions": self.directions,
            "smoothing": self.smoothing,
            "latent_dim": self.latent_dim,
            "generator_width": self.generator_width,
            "schedule": self.schedule,
            "query_batch_size": self.query_batch_size,
            "seed": self.seed,
            "invert": self.invert,
            "variant": self.variant,
        }
