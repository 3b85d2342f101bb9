"""``art_knockoff`` and ``art_copycat``: IBM ART's own extraction attacks as stealguard attacks.

They run ART 1.20.1's ``KnockoffNets`` (Orekondy et al., CVPR 2019, arXiv:1812.02766) and
``CopycatCNN`` (Correia-Silva et al., IJCNN 2018, arXiv:1806.05476) unchanged, beside
stealguard's own ``knockoff``, so results can be checked against the implementation most
practitioners use. ART queries the black box through
:class:`stealguard.interop.art.ArtBlackBox` (the defense applies, every query is counted
and the budget holds) and trains the replica, a stealguard model wrapped as an ART
``PyTorchClassifier``, with its own loop: constant learning rate, cross-entropy on the
answers (soft labels with ``train_on="probs"``, one-hot labels with ``"argmax"``).

Where these runs differ from ART called directly (each a defect of ART worked around here):

* ART draws with the global ``np.random`` and ``torch`` generators; the run seeds both with
  ``seed`` and restores numpy's global state afterwards, so the same seed gives the same replica.
* ART's random strategy queries ``min(nb_stolen, len(x))`` inputs, silently fewer than asked
  when the query set is small; a query set smaller than the budget is tiled so that the
  whole budget is spent (every image sent ``floor`` or ``ceil`` of ``budget / N`` times).
* ART's adaptive strategy takes arm ``a`` to be the images with label ``a`` for
  ``a < number of distinct labels``, which breaks on labels that are not ``0..n-1``; the
  arms are renumbered. It also trains on one-hot labels whatever ``use_probability`` says,
  so ``policy="adaptive"`` requires ``train_on="argmax"``. Its ``loss`` reward applies a
  softmax to the black box's answers as if they were logits (not worked around).

ART is imported when an attack is built, not when :mod:`stealguard.attacks` is.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from stealguard._checks import check_choice, check_int
from stealguard.attacks.knockoff import ARM_SOURCES, cluster_images
from stealguard.attacks.oracle import Oracle
from stealguard.attacks.replica import ReplicaAttack
from stealguard.blackbox import BlackBox

POLICIES = ("random", "adaptive")
REWARDS = ("cert", "div", "loss", "all")


@contextmanager
def seeded_numpy(seed: int) -> Iterator[None]:
    """Seed numpy's global generator (which ART draws from) for a block, then restore its state."""
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


class _OracleView:
    """An oracle with the black-box interface ``ArtBlackBox`` needs; counts this run's queries only."""

    def __init__(self, oracle: Oracle, blackbox: BlackBox) -> None:
        self.oracle = oracle
        self.input_shape = tuple(blackbox.input_shape)
        self.num_classes = int(blackbox.num_classes)

    @property
    def queries_used(self) -> int:
        return self.oracle.queries_issued

    def query(self, x: Tensor) -> Tensor:
        return self.oracle.ask(x)


class ArtExtraction(ReplicaAttack):
    """Base of the ART extraction attacks: ``_extract`` builds and runs the ART attack.

    Takes the :class:`ReplicaAttack` parameters: ``epochs`` is ART's ``nb_epochs``,
    ``batch_size`` its ``batch_size_fit``, ``query_batch_size`` its ``batch_size_query``,
    ``train_on`` its ``use_probability`` (``"probs"``: True); ``optimizer``, ``lr``,
    ``momentum`` and ``weight_decay`` build the replica's optimizer; ART queries through the
    attack's :class:`~stealguard.attacks.oracle.Oracle`, so its evasion variants (``repeat``:
    averaged repeated answers) apply before ART sees the answers. ART trains at a constant
    learning rate, so ``schedule`` must be ``"none"``.

    Raises:
        ImportError: ART is not installed (the message says how to install it).
        ValueError, TypeError: a parameter out of range or of the wrong type.
    """

    training_defaults: ClassVar[dict[str, Any]] = {
        "epochs": 30,
        "batch_size": 64,
        "lr": 1e-3,
        "optimizer": "adam",
        "momentum": 0.9,
        "weight_decay": 0.0,
        "schedule": "none",
    }

    def __init__(self, **common: Any) -> None:
        import stealguard.interop.art  # noqa: F401  (raises ImportError with the install hint)

        super().__init__(**common)
        if self.schedule != "none":
            raise ValueError(f"schedule must be 'none' for ART's extraction attacks (ART trains at a constant rate), got {self.schedule!r}")
        self._report: dict[str, Any] = {}

    def _run(self, blackbox: BlackBox, budget: int) -> nn.Module:
        from stealguard.interop.art import ArtBlackBox, pytorch_classifier

        with self.oracle(blackbox, budget) as oracle:
            victim = ArtBlackBox(_OracleView(oracle, blackbox))
            replica = self.make_replica(blackbox, self.images, seed=self.seed)
            thief = pytorch_classifier(
                replica,
                input_shape=tuple(blackbox.input_shape),
                num_classes=int(blackbox.num_classes),
                optimizer=self.optimizer,
                lr=self.lr,
                momentum=self.momentum,
                weight_decay=self.weight_decay,
                device=self.device,
            )
            with seeded_numpy(self.seed), torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self._extract(victim, thief, oracle.capacity)
            self._report = {"art_version": _art_version(), "nb_stolen": oracle.capacity, "queries_issued": oracle.queries_issued}
        return replica.eval()

    @abc.abstractmethod
    def _extract(self, victim: Any, thief: Any, count: int) -> None:
        """Run the ART attack against ``victim`` for ``count`` inputs, training ``thief``."""

    def _pool(self, count: int) -> np.ndarray:
        """What ART samples ``count`` images from, without replacement: float32 ``(M, C, H, W)``.

        The query set itself when it holds at least ``count`` images; otherwise exactly
        ``count`` images, ``count // N`` copies of the set plus ``count % N`` distinct images
        drawn with ``seed``, so that every image is sent ``floor`` or ``ceil`` of ``count / N`` times.
        """
        n = self.images.shape[0]
        if count <= n:
            return self.images.numpy()
        extra = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))[: count % n]
        copies = self.images.repeat(count // n, *([1] * (self.images.dim() - 1)))
        return torch.cat([copies, self.images[extra]]).numpy()

    def report(self) -> dict[str, Any]:
        return dict(self._report)


def _art_version() -> str:
    import art

    return str(art.__version__)


class ArtKnockoff(ArtExtraction):
    """ART's ``KnockoffNets`` against a stealguard black box.

    Args:
        policy: ART's ``sampling_strategy``: ``"random"`` (default) or ``"adaptive"`` (the
            gradient bandit, one query and one training step per image; needs
            ``train_on="argmax"``, since ART trains adaptive runs on one-hot labels).
        reward: the adaptive reward, ``"cert"``, ``"div"``, ``"loss"`` or ``"all"`` (default).
        arms: the adaptive arms: ``"labels"`` (the query set's labels), ``"clusters"``
            (k-means on the pixels, :func:`stealguard.attacks.knockoff.cluster_images`) or
            ``"auto"`` (labels when the query set has them, default).
        num_clusters: k of the k-means arms (default 10).
        **common: see :class:`ArtExtraction` (query set, replica, training, seed, device, progress).

    Example:
        >>> from stealguard import data, models
        >>> victim = models.create("mlp", input_shape=(1, 8, 8), num_classes=10)
        >>> box = BlackBox(victim, budget=40, device="cpu")
        >>> attack = ArtKnockoff(queryset=data.load_dataset("digits", split="test"), replica_arch="mlp",
        ...                      epochs=1, device="cpu", progress=False)
        >>> replica = attack.run(box, 40)
        >>> box.queries_used, attack.report()["nb_stolen"]
        (40, 40)
    """

    name = "art_knockoff"

    def __init__(
        self, *, policy: str = "random", reward: str = "all", arms: str = "auto", num_clusters: int = 10, **common: Any
    ) -> None:
        super().__init__(**common)
        self.policy = check_choice("policy", policy, POLICIES)
        self.reward = check_choice("reward", reward, REWARDS)
        self.arms = check_choice("arms", arms, ARM_SOURCES)
        self.num_clusters = check_int("num_clusters", num_clusters, low=2)
        if self.policy == "adaptive" and self.train_on != "argmax":
            raise ValueError(
                "policy='adaptive' needs train_on='argmax': ART's adaptive KnockoffNets trains on one-hot labels "
                f"whatever use_probability says, got train_on={self.train_on!r}"
            )
        if self.arms == "labels" and self.labels is None:
            raise ValueError("arms='labels' needs a query set with labels; this one has none (use arms='clusters')")

    def _extract(self, victim: Any, thief: Any, count: int) -> None:
        from art.attacks.extraction import KnockoffNets

        attack = KnockoffNets(
            classifier=victim,
            batch_size_fit=self.batch_size,
            batch_size_query=self.query_batch_size,
            nb_epochs=self.epochs,
            nb_stolen=count,
            sampling_strategy=self.policy,
            reward=self.reward,
            verbose=self.progress,
            use_probability=self.train_on == "probs",
        )
        if self.policy == "random":
            attack.extract(self._pool(count), thieved_classifier=thief)
            return
        arms = self.labels if self.labels is not None and self.arms in ("auto", "labels") else None
        if arms is None:
            arms = cluster_images(self.images, self.num_clusters, seed=self.seed)
        contiguous = np.unique(arms.numpy(), return_inverse=True)[1].astype(np.int64)
        attack.extract(self.images.numpy(), contiguous, thieved_classifier=thief)

    def params(self) -> dict[str, Any]:
        params = super().params()
        params["policy"] = self.policy
        if self.policy == "adaptive":
            params.update(reward=self.reward, arms=self.arms, num_clusters=self.num_clusters)
        return params


class ArtCopycat(ArtExtraction):
    """ART's ``CopycatCNN`` against a stealguard black box: random query-set images, labels only.

    Args:
        train_on: ``"argmax"`` (default: one-hot labels, the paper's setting) or ``"probs"``
            (ART's ``use_probability=True``).
        **common: see :class:`ArtExtraction`.
    """

    name = "art_copycat"

    def __init__(self, *, train_on: str = "argmax", **common: Any) -> None:
        super().__init__(train_on=train_on, **common)

    def _extract(self, victim: Any, thief: Any, count: int) -> None:
        from art.attacks.extraction import CopycatCNN

        attack = CopycatCNN(
            classifier=victim,
            batch_size_fit=self.batch_size,
            batch_size_query=self.query_batch_size,
            nb_epochs=self.epochs,
            nb_stolen=count,
            use_probability=self.train_on == "probs",
        )
        attack.extract(self._pool(count), thieved_classifier=thief)
