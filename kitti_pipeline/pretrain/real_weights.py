"""The real pretrained files: torchvision's ImageNet weights and Darknet `.weights` files.

ImageNet weights come from torchvision's weights API (`ResNet18_Weights.IMAGENET1K_V1`,
`MobileNet_V2_Weights.IMAGENET1K_V1`). Nothing is downloaded here: the file named by the API's
URL is looked up in a local folder, then in the torch hub cache, where `torchvision` itself
saves it when it downloads on a machine with internet. A Darknet file (COCO's `yolov3.weights`)
is taken from a local path, or from a URL through the same cache, and checked against its sha256.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision import models

from kitti_pipeline.core.files import sha256_file

IMAGENET_WEIGHTS = {
    "resnet18": models.ResNet18_Weights.IMAGENET1K_V1,
    "mobilenet_v2": models.MobileNet_V2_Weights.IMAGENET1K_V1,
}


def imagenet_file_name(arch: str) -> str:
    """The file name torchvision gives the weights, e.g. `resnet18-f37072fd.pth`."""
    return IMAGENET_WEIGHTS[arch].url.rsplit("/", 1)[-1]


def find_imagenet_file(arch: str, folder: str | Path | None) -> Path:
    """Locate the ImageNet weights file for `arch` without downloading.

    Args:
        arch: `resnet18` or `mobilenet_v2`.
        folder: A folder to look in first, or None.

    Raises:
        FileNotFoundError: saying which file to put where.
    """
    name = imagenet_file_name(arch)
    places = [Path(folder)] if folder else []
    places.append(Path(torch.hub.get_dir()) / "checkpoints")
    for place in places:
        if (place / name).is_file():
            return place / name
    raise FileNotFoundError(
        f"ImageNet weights for {arch} not found: looked for {name} in "
        f"{', '.join(str(p) for p in places)}. Download {IMAGENET_WEIGHTS[arch].url} "
        f"(on a machine with internet, `torchvision.models.{arch}(weights='IMAGENET1K_V1')` saves "
        f"it in the torch hub cache) and put it in one of those folders, or set "
        f"classifier.init.imagenet_dir."
    )


def load_imagenet_state(
    arch: str, folder: str | Path | None, sha256: str | None = None
) -> dict[str, torch.Tensor]:
    """The ImageNet state dict for `arch`, checked against the hash prefix in its file name, as
    torchvision checks its downloads, or against the full `sha256` when one is pinned."""
    path = find_imagenet_file(arch, folder)
    digest = sha256_file(path)
    if sha256 is not None:
        if digest != sha256.lower():
            raise ValueError(
                f"{path}: sha256 is {digest}, but classifier.init.imagenet_sha256 pins {sha256} "
                f"for {arch}; the file is damaged or another"
            )
    else:
        expected = path.stem.rsplit("-", 1)[-1]
        if not digest.startswith(expected):
            raise ValueError(
                f"{path}: sha256 {digest[:8]}... does not match {expected} in its name; "
                f"the download is damaged"
            )
    return torch.load(path, map_location="cpu", weights_only=True)


def fetch_weights(location: str, sha256: str | None) -> Path:
    """A weights file from a local path, or from a URL through the torch hub cache.

    A URL's file is looked up in `<torch hub dir>/checkpoints/` under its own name and
    downloaded there only when absent, so a machine without internet can use a copy put there.

    Args:
        location: A local path or an http(s) URL.
        sha256: The file's expected sha256 (hex), or None to skip the check.

    Raises:
        FileNotFoundError: when a local file is missing.
        ValueError: when the file's sha256 is not `sha256`.
    """
    if location.startswith(("http://", "https://")):
        path = Path(torch.hub.get_dir()) / "checkpoints" / location.rsplit("/", 1)[-1]
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                torch.hub.download_url_to_file(location, str(path))
            except OSError as err:
                raise FileNotFoundError(
                    f"could not download {location} ({err}); on a machine without internet put "
                    f"the file at {path}, or give its local path"
                ) from None
    else:
        path = Path(location)
        if not path.is_file():
            raise FileNotFoundError(f"weights file {path} not found")
    if sha256 is not None:
        digest = sha256_file(path)
        if digest != sha256.lower():
            raise ValueError(
                f"{path}: sha256 is {digest}, expected {sha256}; the file is damaged or another"
            )
    return path
