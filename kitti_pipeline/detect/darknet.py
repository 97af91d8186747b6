"""YOLOv3 built from Darknet `.cfg` files, and Darknet `.weights` file I/O.

A cfg is a list of `[section]` blocks; after `[net]` each block is one layer, and `route` and
`shortcut` layers refer to earlier layers by index. Layers used by YOLOv3 and YOLOv3-tiny:

    convolutional  conv (no bias when batch_normalize=1) -> BatchNorm -> LeakyReLU(0.1) | linear
    shortcut       out = x + output of layer `from` (a residual connection)
    route          concatenate the outputs of `layers` along channels
    upsample       nearest-neighbour, by `stride`
    maxpool        `size`/`stride`; stride 1 pads right and bottom so the size is kept (tiny)
    yolo           a detection head: keeps the raw (B, A*(5+C), H, W) map of the conv before it

A `.weights` file is a header (major, minor, revision as int32, images seen as int64 when
major*10+minor >= 2, else int32), then float32 values for every convolution in layer order: with
BatchNorm its bias, weight, running mean and running variance, else the conv bias; then the conv
weights. Nothing says how many there are: a file is read against a cfg, and one that ends early
or has values left over is an error.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class CfgError(ValueError):
    """A cfg file that cannot be built, with the file and line."""


@dataclass
class Block:
    type: str
    options: dict[str, str]
    line: int  # where the block starts in its cfg, for messages

    def int(self, key: str, default: int | None = None) -> int:
        return int(self.options.get(key, default))


def parse_cfg(path: str | Path, text: str | None = None) -> list[Block]:
    """Read a Darknet cfg into blocks; the first is `[net]`.

    Args:
        path: The cfg file, or where `text` came from.
        text: The cfg's text, when it is not read from `path` (a detector file carries it).

    Raises:
        CfgError: naming the file and line of a malformed entry.
    """
    blocks: list[Block] = []
    text = Path(path).read_text() if text is None else text
    for number, raw in enumerate(text.splitlines(), start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        if text.startswith("["):
            if not text.endswith("]"):
                raise CfgError(f"{path}:{number}: unclosed section header {text!r}")
            blocks.append(Block(text[1:-1].strip(), {}, number))
        elif "=" in text and blocks:
            key, value = text.split("=", 1)
            blocks[-1].options[key.strip()] = value.strip()
        else:
            raise CfgError(f"{path}:{number}: expected '[section]' or 'key=value', got {text!r}")
    if not blocks or blocks[0].type not in ("net", "network"):
        raise CfgError(f"{path}: the first section must be [net]")
    return blocks


def set_num_classes(blocks: list[Block], num_classes: int) -> list[Block]:
    """A copy of the cfg for `num_classes`: each [yolo] and the conv feeding it are resized."""
    blocks = copy.deepcopy(blocks)
    for i, block in enumerate(blocks):
        if block.type == "yolo":
            anchors = len(block.options["mask"].split(","))
            block.options["classes"] = str(num_classes)
            blocks[i - 1].options["filters"] = str(anchors * (5 + num_classes))
    return blocks


class YoloLayer(nn.Module):
    """Marks a detection scale; the decoding of its map lives with the loss and inference.

    `ignore_thresh` is the cfg's: predictions overlapping a ground truth by more get no
    no-object loss (Darknet's default when the cfg gives none is 0.5).
    """

    def __init__(
        self, anchors: list[tuple[int, int]], num_classes: int, ignore_thresh: float = 0.5
    ):
        super().__init__()
        self.anchors = anchors  # (A, 2) anchor sizes in input pixels
        self.num_classes = num_classes
        self.ignore_thresh = ignore_thresh
        self.stride = 0  # input pixels per map cell, set by Darknet from the layers before

    def forward(self, x):
        return x


class MaxPoolSame(nn.Module):
    """Darknet's stride-1 maxpool: pad right and bottom, so the output keeps the input size.

    Darknet repeats the edge into the padding; a window that reaches the padding holds that edge
    pixel already, so padding with -inf gives the same maxima and gradients, and unlike
    replicate padding it compiles with channels_last tensors (`torch.compile`).
    """

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x):
        pad = (0, self.size - 1, 0, self.size - 1)
        return F.max_pool2d(F.pad(x, pad, value=float("-inf")), self.size, stride=1)


class Darknet(nn.Module):
    """A network built layer by layer from cfg blocks.

    `forward` returns one raw map per [yolo] layer, coarsest first for YOLOv3:
    (B, 3*(5+C), H/32, W/32), (B, 3*(5+C), H/16, W/16), (B, 3*(5+C), H/8, W/8).
    """

    def __init__(self, blocks: list[Block], source: str = "<cfg>"):
        super().__init__()
        self.blocks = blocks
        net = blocks[0]
        self.width, self.height = net.int("width", 416), net.int("height", 416)
        self.burn_in = net.int("burn_in", 0)  # Darknet's learning-rate burn-in, in steps
        self.layers = nn.ModuleList()
        channels: list[int] = []  # output channels of every layer so far
        strides: list[float] = []  # input pixels per output pixel of every layer so far
        in_channels, stride = net.int("channels", 3), 1.0
        for index, block in enumerate(blocks[1:]):
            layer, out_channels = self._build(block, index, in_channels, channels, source)
            if block.type in ("convolutional", "maxpool"):
                stride *= block.int("stride", 1)
            elif block.type == "upsample":
                stride /= block.int("stride")
            elif block.type == "route":
                stride = strides[layer.sources[0]]
            if isinstance(layer, YoloLayer):
                layer.stride = int(stride)
            self.layers.append(layer)
            channels.append(out_channels)
            strides.append(stride)
            in_channels = out_channels

    @staticmethod
    def _build(block, index, in_channels, channels, source):
        kind, opt = block.type, block.options
        where = f"{source}:{block.line}: [{kind}] (layer {index})"
        if kind == "convolutional":
            bn = block.int("batch_normalize", 0) == 1
            filters, size, stride = block.int("filters"), block.int("size"), block.int("stride", 1)
            padding = size // 2 if block.int("pad", 0) else 0
            layer = nn.Sequential()
            layer.add_module(
                "conv", nn.Conv2d(in_channels, filters, size, stride, padding, bias=not bn)
            )
            if bn:
                # PyTorch's default momentum, not Darknet's 0.01: with 0.01 the running statistics
                # lag far behind the weights in a short run, and eval-mode detection fails
                # (seen here: AP 0.91 in train mode, 0.0 in eval mode after 100 steps).
                layer.add_module("bn", nn.BatchNorm2d(filters, momentum=0.1, eps=1e-5))
            activation = opt.get("activation", "linear")
            if activation == "leaky":
                layer.add_module("act", nn.LeakyReLU(0.1))
            elif activation != "linear":
                raise CfgError(f"{where}: unsupported activation {activation!r}")
            return layer, filters
        if kind == "shortcut":
            source_index = _absolute(int(opt["from"]), index)
            if channels[source_index] != in_channels:
                raise CfgError(f"{where}: adds {channels[source_index]} to {in_channels} channels")
            return _Marker("shortcut", [source_index]), in_channels
        if kind == "route":
            sources = [_absolute(int(v), index) for v in opt["layers"].split(",")]
            if any(not 0 <= s < index for s in sources):
                raise CfgError(f"{where}: layers {opt['layers']} point outside 0..{index - 1}")
            return _Marker("route", sources), sum(channels[s] for s in sources)
        if kind == "upsample":
            return nn.Upsample(scale_factor=block.int("stride"), mode="nearest"), in_channels
        if kind == "maxpool":
            size, stride = block.int("size"), block.int("stride")
            layer = MaxPoolSame(size) if stride == 1 else nn.MaxPool2d(size, stride)
            return layer, in_channels
        if kind == "yolo":
            values = [int(v) for v in opt["anchors"].split(",")]
            pairs = list(zip(values[::2], values[1::2], strict=True))
            mask = [int(v) for v in opt["mask"].split(",")]
            classes = block.int("classes")
            if in_channels != len(mask) * (5 + classes):
                raise CfgError(
                    f"{where}: expects {len(mask) * (5 + classes)} channels for "
                    f"{classes} classes, the conv before gives {in_channels}"
                )
            ignore = float(opt.get("ignore_thresh", 0.5))
            return YoloLayer([pairs[m] for m in mask], classes, ignore), in_channels
        raise CfgError(f"{where}: unsupported layer type")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs, heads = [], []
        for layer in self.layers:
            if isinstance(layer, _Marker) and layer.kind == "shortcut":
                x = x + outputs[layer.sources[0]]
            elif isinstance(layer, _Marker):
                x = torch.cat([outputs[s] for s in layer.sources], 1)
            else:
                x = layer(x)
            if isinstance(layer, YoloLayer):
                heads.append(x)
            outputs.append(x)
        return heads

    def convolutions(self) -> list[nn.Sequential]:
        """The conv layers in file order."""
        return [
            layer
            for layer in self.layers
            if isinstance(layer, nn.Sequential) and hasattr(layer, "conv")
        ]

    def prediction_convs(self) -> list[int]:
        """Indices (in `convolutions()`) of the convs feeding a [yolo] layer."""
        convs = self.convolutions()
        ids = {
            id(self.layers[i - 1])
            for i, layer in enumerate(self.layers)
            if isinstance(layer, YoloLayer)
        }
        return [k for k, conv in enumerate(convs) if id(conv) in ids]


class _Marker(nn.Module):
    """A route or shortcut: no parameters, only the indices of the layers it reads."""

    def __init__(self, kind: str, sources: list[int]):
        super().__init__()
        self.kind = kind
        self.sources = sources


def _absolute(value: int, index: int) -> int:
    return index + value if value < 0 else value


def build_darknet(
    cfg: str | Path, num_classes: int | None = None, text: str | None = None
) -> Darknet:
    """Parse `cfg` (or its `text`) and build it, with `num_classes` if given."""
    blocks = parse_cfg(cfg, text)
    if num_classes is not None:
        blocks = set_num_classes(blocks, num_classes)
    return Darknet(blocks, source=str(cfg))


def model_classes(model: Darknet) -> int:
    """The number of classes of a Darknet model's [yolo] layers."""
    return next(layer.num_classes for layer in model.layers if isinstance(layer, YoloLayer))


HEADER = (0, 2, 0)  # major, minor, revision written by `write_weights`


def _conv_tensors(layer: nn.Sequential) -> list[torch.Tensor]:
    """The tensors of one conv layer in Darknet file order."""
    if hasattr(layer, "bn"):
        bn = layer.bn
        return [bn.bias, bn.weight, bn.running_mean, bn.running_var, layer.conv.weight]
    return [layer.conv.bias, layer.conv.weight]


def write_weights(model: Darknet, path: str | Path, seen: int = 0) -> None:
    """Write `model` as a Darknet `.weights` file (version 0.2: images seen as int64)."""
    with open(path, "wb") as f:
        np.array(HEADER, dtype=np.int32).tofile(f)
        np.array([seen], dtype=np.int64).tofile(f)
        for layer in model.convolutions():
            for tensor in _conv_tensors(layer):
                tensor.detach().cpu().float().numpy().ravel().tofile(f)


def read_weights(model: Darknet, path: str | Path, cutoff: int | None = None) -> dict:
    """Load a Darknet `.weights` file into `model`.

    Args:
        model: The network the file was saved from (same layers, same shapes).
        path: The `.weights` file.
        cutoff: Read only the first `cutoff` conv layers' worth of values, as for a
            backbone-only file such as `darknet53.conv.74` (52 convolutions).

    Returns:
        The header (`version`, `seen`) and how many conv layers were loaded.

    Raises:
        ValueError: when the file ends early or, without `cutoff`, has values left over; with
            `cutoff`, unless it holds exactly the cut-off's values or at least the whole cfg's.
    """
    data = Path(path).read_bytes()
    if len(data) < 16:
        raise ValueError(f"{path}: {len(data)} bytes is too short for a Darknet header")
    major, minor, revision = np.frombuffer(data, np.int32, 3)
    wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    offset = 12 + (8 if wide else 4)
    seen = int(np.frombuffer(data, np.int64 if wide else np.int32, 1, 12)[0])
    values = np.frombuffer(data, np.float32, offset=offset, count=(len(data) - offset) // 4)
    convs = model.convolutions()[:cutoff]
    expected = sum(t.numel() for conv in convs for t in _conv_tensors(conv))
    whole = sum(t.numel() for conv in model.convolutions() for t in _conv_tensors(conv))
    if len(values) < expected:
        raise ValueError(
            f"{path}: truncated: holds {len(values):,} values, the cfg's "
            f"{len(convs)} convolutions need {expected:,}"
        )
    if (len(data) - offset) % 4 or (cutoff is None and len(values) > expected):
        raise ValueError(
            f"{path}: oversized: {len(values) - expected:,} values left after the "
            f"cfg's {len(convs)} convolutions (wrong cfg or number of classes?)"
        )
    # Nothing marks where a backbone-only file's values end, so a count that fits neither the
    # cut-off nor the whole cfg means a misread, e.g. a version-0.0 header whose writer gave
    # `seen` 8 bytes instead of 4, which would shift every value by one.
    if cutoff is not None and len(values) != expected and len(values) < whole:
        raise ValueError(
            f"{path}: holds {len(values):,} values after its version {major}.{minor} header: "
            f"neither the {expected:,} of the first {len(convs)} convolutions nor the "
            f"{whole:,} of the whole cfg (a header of another size, or another cfg?)"
        )
    position = 0
    with torch.no_grad():
        for conv in convs:
            for tensor in _conv_tensors(conv):
                n = tensor.numel()
                tensor.copy_(
                    torch.from_numpy(values[position : position + n].copy()).view_as(tensor)
                )
                position += n
    return {"version": (int(major), int(minor), int(revision)), "seen": seen, "loaded": len(convs)}


def transfer_weights(
    model: Darknet,
    path: str | Path,
    cfg: str | Path,
    file_classes: int,
    convolutions: int | None = None,
    head_classes: tuple[int, ...] | None = None,
) -> dict:
    """Load a file saved for `file_classes` classes into `model` built for another number.

    Every conv loads but the ones feeding [yolo] layers, whose shapes depend on the classes:
    those keep their fresh initialisation, unless `head_classes` (one class index of the file
    per class of `model`) builds them from the file's rows: per anchor, box and objectness,
    then those classes' logits. A file holding only the first `convolutions` convs (a backbone
    such as `darknet53.conv.74`) loads those. The returned dict says which convs loaded, which
    were re-initialised and which were carried over from the file's classes.

    Raises:
        ValueError: when `head_classes` does not give one file class per class of `model`, or
            the model's anchors are not the file cfg's (the rows belong to those anchors).
    """
    source = build_darknet(cfg, file_classes)
    info = read_weights(source, path, convolutions)
    heads = [k for k in model.prediction_convs() if k < info["loaded"]]
    if head_classes is not None:
        check_head_classes(model, source, head_classes, file_classes)
    pairs = zip(model.convolutions(), source.convolutions()[: info["loaded"]], strict=False)
    with torch.no_grad():
        for k, (mine, theirs) in enumerate(pairs):
            if k in heads:
                if head_classes is not None:
                    carry_head(mine, theirs, head_classes, file_classes)
                continue
            for a, b in zip(_conv_tensors(mine), _conv_tensors(theirs), strict=True):
                a.copy_(b)
    carried = heads if head_classes is not None else []
    return {
        **info,
        "loaded": info["loaded"] - len(heads) + len(carried),
        "reinitialised": [k for k in heads if k not in carried],
        "carried_head": carried,
    }


def check_head_classes(
    model: Darknet, source: Darknet, head_classes: tuple[int, ...], file_classes: int
) -> None:
    """Raise unless `head_classes` maps each class of `model` to one of the file's classes and
    both networks predict from the same anchors."""
    if len(head_classes) != model_classes(model):
        raise ValueError(
            f"detector.init.head_classes {list(head_classes)} gives {len(head_classes)} file "
            f"classes for a detector of {model_classes(model)}"
        )
    if any(not 0 <= c < file_classes for c in head_classes):
        raise ValueError(
            f"detector.init.head_classes {list(head_classes)}: each must be a class of the "
            f"file, 0 to {file_classes - 1}"
        )
    ours = [layer.anchors for layer in model.layers if isinstance(layer, YoloLayer)]
    theirs = [layer.anchors for layer in source.layers if isinstance(layer, YoloLayer)]
    if ours != theirs:
        raise ValueError(
            f"detector.init.head_classes carries the file's predictions for its anchors {theirs},"
            f" but the detector has {ours}: use detector.anchors: cfg"
        )


def carry_head(
    mine: nn.Sequential, theirs: nn.Sequential, head_classes: tuple[int, ...], file_classes: int
) -> None:
    """Copy a prediction conv's rows: per anchor, box (4), objectness (1) and the chosen class
    logits of the file's (A*(5+F), ...) conv into this (A*(5+C), ...) one."""
    anchors = theirs.conv.out_channels // (5 + file_classes)
    rows = torch.cat(
        [
            torch.tensor(
                [a * (5 + file_classes) + r for r in range(5)]
                + [a * (5 + file_classes) + 5 + c for c in head_classes]
            )
            for a in range(anchors)
        ]
    )  # (A*(5+C),): the file's row of each of ours
    mine.conv.weight.copy_(theirs.conv.weight[rows])
    mine.conv.bias.copy_(theirs.conv.bias[rows])


def init_prediction_biases(model: Darknet, objectness_prior: float = 0.01) -> None:
    """Start every prediction's objectness at `objectness_prior` instead of 0.5.

    Nearly every one of the thousands of predictions per image is background; at 0.5 the no-object
    term swamps the loss for the first epochs. A bias of log(p / (1 - p)) starts it near its
    final level (the prior of RetinaNet's focal-loss paper).
    """
    with torch.no_grad():
        for conv, layer in zip(model.layers[:-1], model.layers[1:], strict=True):
            if isinstance(layer, YoloLayer):
                bias = conv.conv.bias.view(len(layer.anchors), -1)  # (A, 5+C)
                bias[:, 4] = float(np.log(objectness_prior / (1 - objectness_prior)))


def fuse_batchnorm(model: Darknet) -> Darknet:
    """A copy of `model` for inference with each BatchNorm folded into its convolution.

    conv(x) * g / sqrt(v + eps) + (b - m * g / sqrt(v + eps)) is one convolution with scaled
    weights and a bias, so a BN layer costs nothing at inference.
    """
    fused = copy.deepcopy(model).eval()
    for layer in fused.convolutions():
        if not hasattr(layer, "bn"):
            continue
        conv, bn = layer.conv, layer.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C,)
        new = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            bias=True,
            device=conv.weight.device,
        )
        with torch.no_grad():
            new.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            new.bias.copy_(bn.bias - bn.running_mean * scale)
        layer.conv = new
        del layer.bn
    return fused
