"""Settings shared by every test directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
"""Under CI (``CI`` set, as ``.ci/run`` runs) hypothesis draws the same cases every run, so a
submission's result does not depend on luck; locally every run explores new cases."""


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Run torch on one thread: the test models are tiny, and on a 2-core machine intra-op
    threads fight over the cores (a training step of the digits mlp gets about 10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shared_data_root() -> Path:
    """``$STEALGUARD_DATA_ROOT``, else ``<repo>/../shared/data``."""
    return Path(os.environ.get("STEALGUARD_DATA_ROOT") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of the real data sets (integration tests only); skips when it is absent."""
    root = shared_data_root()
    if not root.is_dir():
        pytest.skip(f"real data sets not found at {root} (set STEALGUARD_DATA_ROOT to the folder holding mnist/, ...)")
    return root


@pytest.fixture(scope="session")
def extract_cifar10(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A function extracting one member of the real CIFAR-10 archive (``"cifar10-jpg/train"`` or
    ``"cifar10-jpg/test"``) as a user would (``tar -xzf ... -C DIR``) and returning ``DIR``.

    GNU tar takes about 3 s for the train split, Python's tarfile (the fallback, with its safe
    extraction filter) about 15 s. Skips when the archive or both ways of extracting are missing.
    """
    archive = real_data / "cifar10" / "cifar10-jpg.tar.gz"

    def extract(member: str) -> Path:
        if not archive.is_file():
            pytest.skip(f"real data file missing: {archive}")
        out = tmp_path_factory.mktemp("cifar10-root")
        tar_cli = shutil.which("tar")
        if tar_cli is not None:
            subprocess.run([tar_cli, "-xzf", str(archive), "-C", str(out), member], check=True)
        elif hasattr(tarfile, "data_filter"):
            with tarfile.open(archive) as tar:
                tar.extractall(out, members=[m for m in tar if m.name.startswith(member)], filter="data")
        else:
            pytest.skip("neither a tar command nor a tarfile with a safe extraction filter")
        return out

    return extract
