"""Typed view of params.yaml.

Every section is a frozen dataclass. `load_params` checks the whole file against them, so a
misspelt, missing or wrongly typed key fails at once with the key's dotted name instead of
surfacing as a KeyError deep inside a stage.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

CLASSES = ("Car", "Person", "Cyclist")
# The classifier's regimes: the study's three, then linear probe, then fine-tune (`lpft`: the frozen
# regime, then every layer). Scratch runs in stages of its own, since it reads no starting weights
# and must not rerun when they change; `classifier.regimes` says which of the others run.
REGIMES = ("scratch", "frozen", "finetune", "lpft")
# The no-pretraining control: the frozen regime on randomly initialised weights (drawn from
# `classifier.init.seed`), which the frozen arm must beat for its starting weights to count.
CONTROL = "frozen_random"
# Every classifier arm: the regimes and the control.
ARMS = (*REGIMES, CONTROL)
# The detector's runs (`detect.regimes` says what each trains): `scratch` in stages of its own, as
# the classifier's, and those of `detector.regimes`, which start from the init weights.
DETECTOR_RUNS = ("transfer", "scratch", "zeroshot", "frozen", "lpft")
# The pairs a - b the detector study compares, where both ran: the study's transfer - scratch;
# each regime trained from the init weights against those weights untrained (zero-shot), the
# detector's "fine-tuned - frozen"; and LP-FT against its own probe.
DETECTOR_PAIRS = (
    ("transfer", "scratch"),
    ("transfer", "zeroshot"),
    ("frozen", "zeroshot"),
    ("lpft", "zeroshot"),
    ("lpft", "frozen"),
)


class ParamsError(ValueError):
    """params.yaml does not match the dataclasses below."""


@dataclass(frozen=True)
class DataParams:
    """Where the frames come from.

    `frames` is a folder in the study's layout: `images/`, `labels/` (YOLO format) and
    `classes.txt`. The demo points it at the synthesize stage's output; for real KITTI it points
    at the subset built by `kitti-subset`.
    """

    frames: str
    classes: tuple[str, ...]


@dataclass(frozen=True)
class SynthesizeParams:
    """The generated KITTI-like dataset (stage `synthesize`)."""

    seed: int
    frames: int
    width: int
    height: int
    objects_per_frame: float
    class_mix: dict[str, float]
    kitti_labels: bool


@dataclass(frozen=True)
class CropParams:
    """Denormalise, crop and resize (stage `crop`)."""

    image_size: int
    resize: Literal["stretch", "pad"]
    min_box_size: float
    label_tolerance: float
    on_bad_input: Literal["error", "skip"]


@dataclass(frozen=True)
class SplitParams:
    """Leak-free train/val/test split of the crops (stage `split`).

    A size is a crop count (an integer) or a share of all the crops (a number between 0 and 1,
    rounded to a count); `test_crops: null` gives the test split every crop left over.
    """

    seed: int
    train_crops: int | float
    val_crops: int | float
    test_crops: int | float | None

    def counts(self, total: int) -> tuple[int, int, int | None]:
        """The train, val and test crop counts asked for, of `total` crops.

        Raises:
            ValueError: naming the key of a share that is not between 0 and 1.
        """
        out = []
        for name in ("train_crops", "val_crops", "test_crops"):
            size = getattr(self, name)
            if isinstance(size, float):
                if not 0 < size < 1:
                    raise ValueError(
                        f"split.{name}: {size} is neither a crop count (an integer) nor a share "
                        "of the crops between 0 and 1"
                    )
                size = round(size * total)
            out.append(size)
        return tuple(out)


@dataclass(frozen=True)
class PretrainedParams:
    """The real pretrained files the runs start from (stage `pretrained@<name>`).

    `files` maps each file name (`mobilenet_v2-b0353104.pth`, `yolov3-tiny.weights`, ...) to the
    sha256 it must have; `dir` is a folder of the user's own copies, searched first
    (`kitti_pipeline.pretrain.real_weights` says where else each file is looked for).
    """

    dir: str | None
    files: dict[str, str]


InitSource = Literal["synthetic", "imagenet", "random"]


@dataclass(frozen=True)
class ClassifierInitParams:
    """Starting weights of the transfer regimes (stage `init_weights`).

    `source` is one for every architecture, or a mapping `{arch: source}`. `imagenet` loads
    torchvision's ImageNet file of the architecture, which `pretrained.files` must pin;
    `synthetic` pretrains on the generated stand-in task with the `pretrain_*` settings; `random`
    draws random weights from `seed` (a no-pretraining control, and a stand-in for timing runs
    where the ImageNet files are absent).
    """

    source: InitSource | dict[str, InitSource]
    seed: int
    pretrain_images: int
    pretrain_image_size: int
    pretrain_epochs: int
    pretrain_batch_size: int
    pretrain_lr: float

    def source_of(self, arch: str) -> str:
        """The source `arch` starts from.

        Raises:
            ParamsError: when `source` is a mapping that does not name `arch`.
        """
        if isinstance(self.source, str):
            return self.source
        if arch not in self.source:
            raise ParamsError(f"classifier.init.source names no source for {arch}: {self.source}")
        return self.source[arch]


@dataclass(frozen=True)
class ClassifierTrainParams:
    """One classifier training run (stage `train_classifier`); the study's Table 2."""

    optimizer: Literal["adam", "sgd"]
    lr: float
    batch_size: int
    epochs: int
    augment: tuple[Literal["flip", "crop", "colour"], ...]
    cache_frozen_features: bool
    device: Literal["auto", "cpu", "cuda"]
    amp: bool
    # The frozen regimes' epochs (only the head trains); None: `epochs`. On a few hundred crops
    # the study's 20 epochs are a tenth of the head's 3,750 steps on its 1,500 crops.
    head_epochs: int | None = None
    # `constant` (the study's), `step` or `cosine` over the epochs (`core.schedule`).
    schedule: Literal["constant", "step", "cosine"] = "constant"
    # `none` (the study's); `sampler`: each epoch draws its crops with probability inversely
    # proportional to their class's count; `loss`: cross-entropy weighted by n / (K * count).
    balance: Literal["none", "sampler", "loss"] = "none"
    label_smoothing: float = 0.0
    # lpft's learning rate once every layer trains, after `head_epochs` of the head alone
    # (null: `lr`).
    finetune_lr: float | None = None

    def epochs_of(self, regime: str) -> int:
        """The epochs a regime (`REGIMES`, or the control) trains for."""
        frozen = regime in ("frozen", CONTROL)
        return self.head_epochs if frozen and self.head_epochs is not None else self.epochs


@dataclass(frozen=True)
class ClassifierParams:
    """The classifier study: a DVC matrix over `archs` x `arms` x `seeds`."""

    archs: tuple[Literal["resnet18", "mobilenet_v2"], ...]
    seeds: tuple[int, ...]
    # The regimes from the init weights that run, beside scratch and the control.
    regimes: tuple[Literal["frozen", "finetune", "lpft"], ...]
    init: ClassifierInitParams
    train: ClassifierTrainParams
    bootstrap: int

    @property
    def arms(self) -> tuple[str, ...]:
        """Every arm that runs: scratch, `regimes` and the control, in `ARMS` order."""
        return tuple(a for a in ARMS if a in ("scratch", CONTROL) or a in self.regimes)


@dataclass(frozen=True)
class DetectorInitParams:
    """Starting weights of the `transfer` run (stage `init_detector`).

    `darknet` takes the Darknet `.weights` file named `weights`, one of `pretrained.files`
    (COCO's `yolov3.weights` in the study, `yolov3-tiny.weights` in the demo); `weights_classes`
    is the number of classes it was trained for and `convolutions` how many conv layers it holds
    (null: all; 52 for the backbone-only `darknet53.conv.74`). `head_classes`, one class index
    of the file per detector class (COCO's `car` is 2), builds the prediction convs from the
    file's rows for box, objectness and those classes, so that transfer starts as a working
    detector; null gives them a fresh initialisation, as the study does. `synthetic` pretrains
    on generated frames of the stand-in task's ten classes with the `pretrain_*` settings (Adam,
    flips), square scenes of side `pretrain_size` whatever the detector's input shape, as COCO
    trains square. `random` writes randomly initialised weights (from `seed`, for
    `weights_classes` classes): a stand-in for timing runs where the COCO file is absent.
    """

    source: Literal["synthetic", "darknet", "random"]
    weights: str | None
    weights_classes: int
    convolutions: int | None
    head_classes: tuple[int, ...] | None
    seed: int
    pretrain_frames: int
    pretrain_size: int
    pretrain_epochs: int
    pretrain_batch_size: int
    pretrain_lr: float


@dataclass(frozen=True)
class DetectorTrainParams:
    """One detector training run (stage `train_detector`).

    Every `eval_every` epochs (and at the last) the run is evaluated on the val split and its
    resumable state saved; `keep_checkpoints` also keeps the weights of every evaluated epoch.
    `flip` mirrors frames; `scale`, `translate` and `colour` are the ranges of random affine and
    colour jitter (0 turns each off). `compile` trains through `torch.compile` of the whole
    loss step with a fused optimizer (`auto`: on CUDA, where it dispatches a fraction of the
    eager step's operators, bench/step_ops.py; eager on the CPU).

    Darknet's rules, which its COCO weights were trained under: the learning rate burns in as
    lr * (step / `warmup_steps`) ^ `warmup_power` (`cfg`: the cfg's `burn_in`; Darknet's power
    is 4, 1 is linear); `small_box_scale` weights each box's coordinate terms by 2 - w * h (its
    size as a fraction of the input); `ignore_iou` spares the no-object loss of predictions
    overlapping a ground truth by more (`cfg`: each [yolo] layer's `ignore_thresh`).
    """

    optimizer: Literal["adam", "sgd"]
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    epochs: int
    warmup_steps: int | Literal["cfg"]
    warmup_power: float
    eval_every: int
    keep_checkpoints: bool
    flip: bool
    scale: float
    translate: float
    colour: float
    box_loss: Literal["mse", "darknet", "giou"]
    small_box_scale: bool
    ignore_iou: float | Literal["cfg"]
    device: Literal["auto", "cpu", "cuda"]
    amp: bool
    compile: bool | Literal["auto"]
    # After the burn-in: `constant` (the demo's), `step` (Darknet's steps policy) or `cosine`.
    schedule: Literal["constant", "step", "cosine"] = "constant"
    # The frozen and lpft regimes (`detect.regimes`): the leading cfg layers kept fixed (null:
    # all but the prediction convs), the epochs and learning rate of the frozen phase (null:
    # `epochs`, `lr`), and the learning rate of lpft's fine-tuning phase (null: `lr`).
    frozen_layers: int | None = None
    head_epochs: int | None = None
    head_lr: float | None = None
    finetune_lr: float | None = None
    # Every BatchNorm layer of a run from the init weights keeps its running statistics while
    # training (scratch, whose statistics are not yet estimated, always updates them).
    freeze_bn: bool = False


@dataclass(frozen=True)
class DetectorEvalParams:
    """Post-processing and reporting of the detector (stages `evaluate_detector`, `pictures`).

    `nms_iou` is the training stages' too: the val AP@0.5 that picks a run's best epoch is
    scored under it. `conf_threshold` is evaluation's alone.
    """

    conf_threshold: float
    nms_iou: float
    bootstrap: int
    pictures: int


@dataclass(frozen=True)
class DetectorParams:
    """The detector study: YOLOv3 from a Darknet cfg, a DVC matrix over `DETECTOR_RUNS` x
    `seeds` (each seed draws the prediction convs, or every layer for scratch, and the batches).

    `classes` are the classes of `data.classes` the detector learns (the study: Car only).
    `letterbox_fill` is the grey (0-255) that pads a letterboxed frame: Darknet pads with 0.5,
    whose nearest uint8 value is 128.
    """

    classes: tuple[str, ...]
    seeds: tuple[int, ...]
    # The runs from the init weights beside scratch: `DETECTOR_RUNS` but scratch.
    regimes: tuple[Literal["transfer", "zeroshot", "frozen", "lpft"], ...]
    cfg: str
    img_size: int | tuple[int, int]  # a square side, or [width, height]; multiples of 32
    letterbox_fill: int
    anchors: Literal["cfg", "dataset"]
    init: DetectorInitParams
    train: DetectorTrainParams
    evaluate: DetectorEvalParams

    def __post_init__(self):
        if "transfer" not in self.regimes:
            raise ParamsError(
                f"detector.regimes {list(self.regimes)} must hold transfer, the study's own run"
            )

    @property
    def runs(self) -> tuple[str, ...]:
        """Every run the study trains: scratch and `regimes`, in `DETECTOR_RUNS` order."""
        return tuple(r for r in DETECTOR_RUNS if r == "scratch" or r in self.regimes)


@dataclass(frozen=True)
class Params:
    data: DataParams
    synthesize: SynthesizeParams
    crop: CropParams
    split: SplitParams
    pretrained: PretrainedParams
    classifier: ClassifierParams
    detector: DetectorParams


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read a params file into `Params`.

    Args:
        path: A YAML file with one mapping per section of `Params`.

    Returns:
        The frozen, type-checked parameters.

    Raises:
        ParamsError: naming the file and the dotted key that is unknown, missing or mistyped.
    """
    path = Path(path)
    with path.open() as f:
        return params_from_dict(yaml.safe_load(f), str(path))


def params_from_dict(raw: Any, source: str = "params") -> Params:
    """Check plain params (as `yaml.safe_load` gives them) against `Params`.

    Raises:
        ParamsError: naming `source` and the dotted key that is unknown, missing or mistyped.
    """
    try:
        return _build(Params, raw or {}, "")
    except ParamsError as err:
        raise ParamsError(f"{source}: {err}") from None


def params_to_dict(params: Any) -> Any:
    """The plain-Python form of a params dataclass, for checkpoints and reports."""
    return dataclasses.asdict(params)


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ParamsError(f"'{prefix or '<top>'}' must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ParamsError(f"unknown key '{_join(prefix, unknown[0])}' (expected one of {names})")
    missing = [n for n in names if n not in raw]
    if missing:
        raise ParamsError(f"missing key '{_join(prefix, missing[0])}'")
    return cls(**{n: _convert(hints[n], raw[n], _join(prefix, n)) for n in names})


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(inner[0], value, key)
        for option in inner:
            try:
                return _convert(option, value, key)
            except ParamsError:
                continue
        names = " or ".join(_type_name(a) for a in inner)
        raise ParamsError(f"'{key}' must be {names}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ParamsError(f"'{key}' must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ParamsError(f"'{key}' must be a list, got {value!r}")
        if Ellipsis not in args and len(value) != len(args):
            raise ParamsError(f"'{key}' must be {_type_name(hint)}, got {value!r}")
        return tuple(_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"'{key}' must be a mapping, got {value!r}")
        return {
            _convert(args[0], k, f"{key} key"): _convert(args[1], v, f"{key}.{k}")
            for k, v in value.items()
        }
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    # bool is a subclass of int: `frames: true` must not pass as 1.
    if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
        raise ParamsError(f"'{key}' must be {hint.__name__}, got {value!r}")
    return value


def _type_name(hint: Any) -> str:
    """A type as an error message names it: `int`, `list`, `list of 2`."""
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        return "list" if Ellipsis in args else f"list of {len(args)}"
    return getattr(hint, "__name__", str(hint))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
