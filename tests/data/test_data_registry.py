"""load_dataset / names argument handling, and download=True against local file:// URLs (no network)."""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from stealguard.data import DataNotFoundError, load_dataset, names
from stealguard.data import download as download_module
from stealguard.data.download import DOWNLOADS, DownloadSpec, RemoteFile, safe_extract
from stealguard.data.idx import write_idx


def test_names() -> None:
    assert names() == sorted(names())
    assert {"digits", "mnist", "fashionmnist", "cifar10", "cifar100", "imagefolder"} <= set(names())


def test_unknown_name_lists_known_names_and_idx_hint(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        load_dataset("nosuchset", root=tmp_path)
    message = str(info.value)
    assert "unknown data set 'nosuchset'" in message and all(n in message for n in names())
    assert "IDX" in message and str(tmp_path) in message


@pytest.mark.parametrize("bad", ["../mnist", "a/b", ".hidden", ""])
def test_names_that_are_not_plain_folder_names_are_unknown(tmp_path: Path, bad: str) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset(bad, root=tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"split": "val"}, ValueError, "split must be one of 'train', 'test'; got 'val'"),
        ({"download": "yes"}, TypeError, "download must be True or False"),
    ],
)
def test_bad_arguments(kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        load_dataset("digits", **kwargs)


def test_name_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="name must be a string"):
        load_dataset(3)  # type: ignore[arg-type]


def test_imagefolder_needs_root_and_has_no_download(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="imagefolder needs root"):
        load_dataset("imagefolder")
    with pytest.raises(ValueError, match="download=True is supported only for cifar10, cifar100, fashionmnist, mnist"):
        load_dataset("imagefolder", root=tmp_path, download=True)


def test_download_refused_for_sets_without_official_files(tmp_path: Path) -> None:
    (tmp_path / "kmnist").mkdir()
    with pytest.raises(ValueError, match="download=True is supported only for"):
        load_dataset("kmnist", root=tmp_path, download=True)


def test_root_defaults_to_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEALGUARD_DATA_ROOT", str(tmp_path))
    with pytest.raises(DataNotFoundError, match=re.escape(str(tmp_path / "mnist"))):
        load_dataset("mnist")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def refuse(url: object, *args: object, **kwargs: object) -> None:
        calls.append(str(url))
        raise AssertionError(f"network access attempted: {url}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return calls


def test_no_download_without_the_flag(tmp_path: Path, no_network: list[str]) -> None:
    for name in ("mnist", "fashionmnist", "cifar10", "cifar100"):
        with pytest.raises(DataNotFoundError, match="download=True"):
            load_dataset(name, root=tmp_path)
    assert no_network == []
    assert list(tmp_path.iterdir()) == []


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def mnist_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Four tiny IDX .gz files served from a file:// mirror (after a dead one) with their real MD5s."""
    remote = tmp_path / "remote"
    remote.mkdir()
    rng = np.random.default_rng(1)
    files = []
    for prefix, n in (("train", 8), ("t10k", 3)):
        images = write_idx(remote / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 4, 4), dtype=np.uint8))
        labels = write_idx(remote / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
        files += [RemoteFile(images.name, _md5(images)), RemoteFile(labels.name, _md5(labels))]
    dead = (tmp_path / "dead").as_uri() + "/"
    spec = DownloadSpec(folder="mnist", mirrors=(dead, remote.as_uri() + "/"), files=tuple(files))
    monkeypatch.setitem(DOWNLOADS, "mnist", spec)
    return remote


def test_download_fetches_verifies_and_loads(tmp_path: Path, mnist_mirror: Path) -> None:
    root = tmp_path / "root"
    ds = load_dataset("mnist", root=root, split="test", download=True)
    assert len(ds) == 3 and ds.input_shape == (1, 4, 4)
    for f in mnist_mirror.iterdir():
        assert (root / "mnist" / f.name).read_bytes() == f.read_bytes()
    assert not list((root / "mnist").glob("*.part"))


def test_download_skips_when_files_are_there(tmp_path: Path, mnist_mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    load_dataset("mnist", root=root, download=True)
    calls: list[str] = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, *a, **k: calls.append(url))
    assert len(load_dataset("mnist", root=root, download=True)) == 8 and calls == []


def test_checksum_mismatch_refuses_and_leaves_nothing(tmp_path: Path, mnist_mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = DOWNLOADS["mnist"]
    wrong = (RemoteFile(spec.files[0].filename, "0" * 32),) + spec.files[1:]
    monkeypatch.setitem(DOWNLOADS, "mnist", DownloadSpec(folder="mnist", mirrors=spec.mirrors, files=wrong))
    root = tmp_path / "root"
    with pytest.raises(OSError, match=r"MD5 checksum mismatch, expected 0{32}, got [0-9a-f]{32}"):
        load_dataset("mnist", root=root, download=True)
    assert not (root / "mnist" / spec.files[0].filename).exists()
    assert not list((root / "mnist").glob("*.part"))


def test_all_mirrors_failing_lists_each(tmp_path: Path, mnist_mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = DOWNLOADS["mnist"]
    dead = ((tmp_path / "dead1").as_uri() + "/", (tmp_path / "dead2").as_uri() + "/")
    monkeypatch.setitem(DOWNLOADS, "mnist", DownloadSpec(folder="mnist", mirrors=dead, files=spec.files))
    with pytest.raises(OSError, match="could not download train-images-idx3-ubyte.gz for mnist:\n.*dead1.*\n.*dead2"):
        download_module.download("mnist", tmp_path / "root")


def _cifar_archive(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
        for seed, name in enumerate(names):
            rng = np.random.default_rng(seed)
            entry = {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [seed % 10, 9]}
            payload = pickle.dumps(entry, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def test_cifar_download_extracts_the_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    archive = _cifar_archive(remote / "cifar-10-python.tar.gz")
    spec = DownloadSpec(folder="cifar10", mirrors=(remote.as_uri() + "/",), files=(RemoteFile(archive.name, _md5(archive), extract=True),))
    monkeypatch.setitem(DOWNLOADS, "cifar10", spec)
    ds = load_dataset("cifar10", root=tmp_path / "root", split="test", download=True)
    assert len(ds) == 2 and ds.labels.tolist() == [5, 9]
    assert (tmp_path / "root" / "cifar10" / "cifar-10-batches-py" / "data_batch_5").is_file()


@pytest.mark.parametrize("member", ["../escape.txt", "/abs.txt"])
def test_safe_extract_refuses_escaping_members(tmp_path: Path, member: str) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo(member)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "out").mkdir()
    if member.startswith("/"):
        safe_extract(archive, tmp_path / "out")  # the data filter strips the leading slash
        assert (tmp_path / "out" / "abs.txt").is_file() and not Path(member).exists()
    else:
        with pytest.raises(ValueError, match="refusing to extract"):
            safe_extract(archive, tmp_path / "out")
        assert not (tmp_path / "escape.txt").exists()


def test_safe_extract_refuses_links_out_of_the_tree(tmp_path: Path) -> None:
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    (tmp_path / "out").mkdir()
    with pytest.raises(ValueError, match="refusing to extract"):
        safe_extract(archive, tmp_path / "out")


def test_published_checksums_are_well_formed() -> None:
    for name, spec in DOWNLOADS.items():
        assert spec.folder == name and spec.mirrors
        for remote in spec.files:
            assert re.fullmatch(r"[0-9a-f]{32}", remote.md5)
