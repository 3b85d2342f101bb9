"""Fetch the official files of MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100, checksum-verified.

Only ``load_dataset(..., download=True)`` calls this module; nothing else touches the network.
Each file is streamed to ``<name>.part``, its MD5 compared with the published value (the
values torchvision's ``datasets/mnist.py`` and ``datasets/cifar.py`` pin), and only then
renamed into place; a mismatch deletes the partial file and tries the next mirror. Archives
are extracted with tarfile's ``"data"`` filter (no absolute paths, ``..``, links out of the
tree or device files).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

_BLOCK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One official file: its name, its MD5, and whether it is a tar archive to extract."""

    filename: str
    md5: str
    extract: bool = False


@dataclass(frozen=True)
class DownloadSpec:
    """Files of one data set, fetched into ``<root>/<folder>/`` from the first mirror that works.

    A file's URL is ``mirror + filename``.
    """

    folder: str
    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]


DOWNLOADS: dict[str, DownloadSpec] = {
    "mnist": DownloadSpec(
        folder="mnist",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
    ),
    "fashionmnist": DownloadSpec(
        folder="fashionmnist",
        mirrors=(
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
    ),
    "cifar10": DownloadSpec(
        folder="cifar10",
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        files=(RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", extract=True),),
    ),
    "cifar100": DownloadSpec(
        folder="cifar100",
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        files=(RemoteFile("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", extract=True),),
    ),
}


def md5_of(path: str | Path) -> str:
    """Hex MD5 of a file (streamed)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, dest: Path, expected_md5: str, progress: bool | None) -> str | None:
    """Stream ``url`` to ``dest`` if its MD5 matches; return None on success, else the reason."""
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            total = response.headers.get("Content-Length")
            disable = None if progress is None else not progress
            with tqdm(total=int(total) if total else None, unit="B", unit_scale=True, desc=dest.name, disable=disable) as bar:
                for block in iter(lambda: response.read(_BLOCK), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, ValueError) as err:
        part.unlink(missing_ok=True)
        return f"{url}: {err}"
    if digest.hexdigest() != expected_md5:
        part.unlink(missing_ok=True)
        return f"{url}: MD5 checksum mismatch, expected {expected_md5}, got {digest.hexdigest()}"
    os.replace(part, dest)
    return None


def safe_extract(archive: str | Path, destination: str | Path) -> None:
    """Extract a tar archive under ``destination``, refusing members that would escape it.

    Uses tarfile's ``"data"`` filter where available (Python >= 3.11.4); otherwise only
    regular files and directories with relative paths free of ``..`` are extracted.

    Raises:
        ValueError: the archive holds a member the filter refuses (names it).
    """
    destination = Path(destination)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            try:
                tar.extractall(destination, filter="data")
            except tarfile.FilterError as err:
                raise ValueError(f"refusing to extract {archive}: {err}") from err
            return
        members = tar.getmembers()
        for member in members:
            parts = Path(member.name).parts
            if member.name.startswith(("/", "\\")) or ".." in parts or not (member.isfile() or member.isdir()):
                raise ValueError(f"refusing to extract {archive}: unsafe member {member.name!r}")
        tar.extractall(destination, members=members)


def download(name: str, root: str | Path, *, progress: bool | None = None) -> Path:
    """Fetch (if not already present and verified) and extract data set ``name`` into ``root``.

    Args:
        name: a key of ``DOWNLOADS`` (mnist, fashionmnist, cifar10, cifar100).
        root: data root; files go to ``<root>/<name>/``.
        progress: show a progress bar; default None shows it only on a terminal.

    Returns:
        the folder ``<root>/<name>``.

    Raises:
        ValueError: ``name`` has no download entry.
        OSError: every mirror failed for some file (network error or checksum mismatch; the
            message lists each URL and why).
    """
    if name not in DOWNLOADS:
        raise ValueError(f"download is supported for {', '.join(sorted(DOWNLOADS))}; got {name!r}")
    spec = DOWNLOADS[name]
    folder = Path(root) / spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    for remote in spec.files:
        dest = folder / remote.filename
        if not (dest.is_file() and md5_of(dest) == remote.md5):
            failures = []
            for mirror in spec.mirrors:
                reason = _fetch(mirror + remote.filename, dest, remote.md5, progress)
                if reason is None:
                    break
                failures.append(reason)
            else:
                raise OSError(f"could not download {remote.filename} for {name}:\n  " + "\n  ".join(failures))
        if remote.extract:
            safe_extract(dest, folder)
    return folder
