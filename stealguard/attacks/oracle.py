"""``Oracle``: an attack's budgeted, batched view of a black box.

Every attack asks the black box through an oracle. It splits requests into query batches,
counts what it has asked against the attack's budget (never more, checked before a batch
is sent), shows one progress bar over the budget, and implements the ``repeat`` evasion
variant: each input is sent ``repeat`` times and the answers are averaged, which removes
noise that is drawn afresh on every query (and costs ``repeat`` queries per input), and the
``invert`` evasion variant: every answer (after averaging) goes through an answer inverter
(:mod:`stealguard.attacks.inversion`) that estimates the clean posterior behind a known defense.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

import torch
from torch import Tensor
from tqdm.auto import tqdm

from stealguard._checks import check_bool, check_int
from stealguard.attacks.inversion import Inverter
from stealguard.blackbox import BlackBox


class Oracle:
    """Budgeted access to ``blackbox`` for one attack run.

    Args:
        blackbox: the defended prediction API.
        budget: queries this run may issue, >= 1; with ``repeat`` = n it can ask about
            ``budget // n`` distinct inputs.
        repeat: times each input is sent, >= 1; the answer is the mean of the n answers.
        batch_size: inputs per black-box call, >= 1 (a call carries ``batch_size * repeat`` queries).
        progress: a tqdm bar (stderr) over the budget's queries.
        invert: an answer inverter applied to every :meth:`ask`'s answers, or None (default).

    Raises:
        ValueError: a parameter out of range, or ``repeat`` larger than ``budget``.
        TypeError: ``invert`` is not an :class:`~stealguard.attacks.inversion.Inverter`.
    """

    def __init__(
        self,
        blackbox: BlackBox,
        budget: int,
        *,
        repeat: int = 1,
        batch_size: int = 256,
        progress: bool = True,
        invert: Inverter | None = None,
    ) -> None:
        self.blackbox = blackbox
        self.budget = check_int("budget", budget, low=1)
        self.repeat = check_int("repeat", repeat, low=1)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        if self.repeat > self.budget:
            raise ValueError(f"repeat={self.repeat} sends every input {self.repeat} times, more than the budget of {self.budget} queries")
        if invert is not None and not isinstance(invert, Inverter):
            raise TypeError(f"invert must be an Inverter or None, got {type(invert).__name__}")
        self.invert = invert
        self.capacity = self.budget // self.repeat
        self.asked = 0
        self._bar = tqdm(total=self.budget, desc="query black box", unit="query", disable=not check_bool("progress", progress))

    @property
    def remaining(self) -> int:
        """Distinct inputs the oracle may still ask about (``capacity - asked``)."""
        return self.capacity - self.asked

    @property
    def queries_issued(self) -> int:
        """Queries sent to the black box so far (``asked * repeat``)."""
        return self.asked * self.repeat

    def ask(self, x: Tensor) -> Tensor:
        """Answers of the black box to ``x`` (averaged over ``repeat`` sends, then inverted with ``invert``).

        Shape:
            x: ``(N, *input_shape)`` float pixels; returns float32 ``(N, K)`` on the CPU,
            rows on the probability simplex.

        Raises:
            ValueError: ``N`` exceeds :attr:`remaining` (nothing is sent).
        """
        n = int(x.shape[0])
        if n > self.remaining:
            raise ValueError(f"asked about {n} inputs but only {self.remaining} of this attack's budget remain")
        answers = []
        for chunk in x.split(self.batch_size) if n else []:
            sent = chunk.repeat(self.repeat, *([1] * (chunk.dim() - 1))) if self.repeat > 1 else chunk
            reply = self.blackbox.query(sent).float().cpu()
            answers.append(reply.view(self.repeat, chunk.shape[0], -1).mean(dim=0))
            self.asked += chunk.shape[0]
            self._bar.update(chunk.shape[0] * self.repeat)
        if not answers:
            return torch.zeros(0, self.blackbox.num_classes)
        replies = torch.cat(answers)
        return replies if self.invert is None else self.invert(replies)

    def close(self) -> None:
        """Close the progress bar."""
        self._bar.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
