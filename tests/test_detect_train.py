import copy
import dataclasses

import pytest
import torch
from torchvision.transforms import v2

from kitti_pipeline.core.params import load_params
from kitti_pipeline.detect.augment import flip_batch, jitter_batch
from kitti_pipeline.detect.darknet import build_darknet, init_prediction_biases
from kitti_pipeline.detect.data import DetectionSet, load_detection_set
from kitti_pipeline.detect.evaluate import evaluate_detector
from kitti_pipeline.detect.model_files import load_detector, save_detector
from kitti_pipeline.detect.optim import make_detector_optimizer
from kitti_pipeline.detect.train import batch_loss, compiles_step, fit_detector, train_one_epoch
from kitti_pipeline.detect.yolo import scales_of
from kitti_pipeline.pretrain.coco import make_object_scenes

from .conftest import ROOT

SMALL = ROOT / "cfg" / "yolov3-tiny-small.cfg"


def test_flip_batch_mirrors_boxes_with_the_pixels():
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    images[:, :, 4:8, 2:10] = 255
    targets = [torch.tensor([[0.0, 2, 4, 10, 8]])] * 2
    flipped, boxes = flip_batch(images, targets, torch.tensor([True, False]))
    assert boxes[0].tolist() == [[0.0, 22, 4, 30, 8]] and boxes[1].tolist() == [[0.0, 2, 4, 10, 8]]
    assert (flipped[0, :, 4:8, 22:30] == 255).all() and flipped[0].sum() == images[0].sum()


def test_flip_batch_mirrors_across_the_width_of_a_rectangle():
    images = torch.zeros(1, 3, 32, 96, dtype=torch.uint8)
    images[:, :, 4:8, 2:10] = 255
    flipped, boxes = flip_batch(images, [torch.tensor([[0.0, 2, 4, 10, 8]])], torch.tensor([True]))
    assert boxes[0].tolist() == [[0.0, 86, 4, 94, 8]]
    assert (flipped[0, :, 4:8, 86:94] == 255).all()


@pytest.mark.slow
def test_small_detector_learns_a_few_frames(stage, params_file, tmp_path):
    """Overfitting four synthetic frames must give a high AP in eval mode: this exercises data,
    loss, BatchNorm statistics, decoding, NMS and AP together."""
    stage("synthesize", "--params", params_file, "--out", tmp_path / "frames")
    stems = ["000000", "000001", "000002", "000003"]
    data = load_detection_set(tmp_path / "frames", stems, 3, keep=(0,), img_size=416)
    assert data.images.shape == (4, 3, 416, 416)
    torch.manual_seed(0)
    model = build_darknet(ROOT / "cfg" / "yolov3-tiny-small.cfg", num_classes=1)
    init_prediction_biases(model)
    scales = scales_of(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator, step = torch.Generator().manual_seed(0), 0
    for _ in range(100):
        losses, step = train_one_epoch(
            model,
            data,
            optimizer,
            scales,
            1,
            4,
            generator,
            step,
            2e-3,
            warmup_steps=5,
            augment=False,
        )
    summary = evaluate_detector(model, data, conf_threshold=0.25, nms_iou=0.45)
    assert summary["ground_truths"] == sum(len(t) for t in data.targets)
    assert summary["AP50"] > 0.8, summary


def test_jitter_batch_keeps_classes_with_their_boxes():
    images = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    targets = [torch.tensor([[3.0, 2, 4, 10, 8], [1.0, 20, 20, 24, 30]])]
    flip = v2.Compose(
        [v2.RandomHorizontalFlip(p=1.0), v2.SanitizeBoundingBoxes(labels_getter=lambda x: x[2])]
    )
    _, out = jitter_batch(images, targets, flip)
    assert out[0].tolist() == [[3.0, 22, 4, 30, 8], [1.0, 8, 20, 12, 30]]


def test_to_frame_undoes_the_letterbox():
    # An 832x400 frame halved to 416x200 and padded 100 px above.
    image = torch.zeros(1, 3, 416, 416, dtype=torch.uint8)
    data = DetectionSet(image, [], ["a"], [(0.5, 0.5, 0.0, 100.0)], [(832, 400)])
    rows = torch.tensor([[10.0, 110, 20, 120, 0.9, 0]])
    assert data.to_frame(0, rows)[0].tolist() == pytest.approx([20.0, 20, 40, 40, 0.9, 0])


def test_invalid_optimizer_is_named(params_file):
    cfg = dataclasses.replace(load_params(params_file).detector.train, optimizer="rmsprop")
    with pytest.raises(ValueError, match="Invalid optimizer 'rmsprop'"):
        make_detector_optimizer(build_darknet(SMALL, 1), cfg)


def test_detector_file_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_darknet(SMALL, 1).eval()
    save_detector(tmp_path / "d.pt", model, SMALL.read_text(), {"classes": ["Car"], "epoch": 3})
    loaded, info = load_detector(tmp_path / "d.pt")
    assert info == {"classes": ["Car"], "epoch": 3}
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(x), loaded(x), strict=True))
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: not a detector file"):
        load_detector(tmp_path / "other.pt")


@pytest.mark.slow
def test_interrupted_training_resumes_to_the_same_weights(params_file):
    """Stopping after the first evaluation past the start and resuming from the state saved
    there gives the weights, history and best epoch of an uninterrupted run, affine and colour
    jitter included."""
    data = make_object_scenes(6, 64, seed=0)
    train, val = data.select(slice(0, 4)), data.select(slice(4, 6))
    cfg = dataclasses.replace(
        load_params(params_file).detector.train,
        epochs=3,
        eval_every=2,
        batch_size=2,
        scale=0.2,
        translate=0.1,
        colour=0.2,
    )

    def fresh():
        torch.manual_seed(0)
        return build_darknet(SMALL, 10)

    straight = fresh()
    history, best = fit_detector(straight, train, val, cfg, 0.45)
    assert [row["epoch"] for row in history] == [0, 2, 3]  # 0: the starting weights

    saved = {}

    def interrupt(state):
        saved.update(copy.deepcopy(state))
        if state["epoch"] > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_detector(fresh(), train, val, cfg, 0.45, on_eval=interrupt)
    assert saved["epoch"] == 2  # saved at evaluations only
    resumed = fresh()
    again, again_best = fit_detector(resumed, train, val, cfg, 0.45, resume=saved)
    assert again == history and again_best["epoch"] == best["epoch"]
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
        assert torch.equal(best["model"][name], again_best["model"][name]), name


def test_a_diverging_loss_stops_the_epoch_naming_the_steps(monkeypatch):
    """The finiteness check runs every few steps, not every step (each waits for the device):
    a loss that turns NaN at the third of four steps still stops the epoch, naming its steps."""
    from kitti_pipeline.detect import train as detect_train

    data = make_object_scenes(8, 64, seed=0)
    for target in data.targets:
        target[:, 0] = 0
    torch.manual_seed(0)
    model = build_darknet(SMALL, 1)
    calls = []
    real_loss = detect_train.yolo_loss

    def diverging(*args, **kwargs):
        terms = real_loss(*args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            terms = {name: value * float("nan") for name, value in terms.items()}
        return terms

    monkeypatch.setattr(detect_train, "yolo_loss", diverging)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    args = (model, data, optimizer, scales_of(model), 1, 2, torch.Generator(), 0, 1e-3, 1)
    with pytest.raises(FloatingPointError, match=r"loss is nan within steps 0 to 3; lower"):
        train_one_epoch(*args)
    assert len(calls) == 4  # it ran on to the end of the epoch, then stopped


@pytest.mark.slow
def test_the_compiled_step_trains_to_the_eager_losses(params_file, monkeypatch):
    """`compile: true` (CUDA's default) trains through `torch.compile` of the whole loss step
    (the tiny cfg's padded maxpool included) with a fused Adam: over three float32 epochs of
    two steps each it reaches the losses of the eager step with the for-loop Adam.

    On the CPU the step is compiled with the `aot_eager` backend: TorchDynamo captures the whole
    step and AOTAutograd its backward, as on a GPU, but no kernels are generated, which would take
    minutes of C++ compilation here; `tests/gpu` trains the step compiled by Inductor on CUDA."""
    data = make_object_scenes(8, 64, seed=0)
    cfg = dataclasses.replace(
        load_params(params_file).detector.train,
        epochs=3,
        eval_every=3,
        batch_size=4,
        amp=False,
        warmup_steps=1,
    )
    real, compiled, runs = torch.compile, [], []
    monkeypatch.setattr(
        torch, "compile", lambda f, **k: compiled.append(f) or real(f, backend="aot_eager", **k)
    )
    for on in (False, True):
        torch.manual_seed(0)
        model = build_darknet(SMALL, 10)
        history, _ = fit_detector(model, data, data, dataclasses.replace(cfg, compile=on), 0.45)
        runs.append((history[-1]["train_total"], model.state_dict()))
    assert compiled == [batch_loss]  # the second run's step, and only it
    (eager, eager_weights), (fast, fast_weights) = runs
    # The fused Adam alone moves the weights by about 1e-6 of their size here; the compiled
    # kernels, which round their fused arithmetic otherwise, by about 5e-3 after six steps.
    assert fast == pytest.approx(eager, rel=1e-3)
    keys = [k for k, v in eager_weights.items() if v.is_floating_point()]
    a, b = (torch.cat([w[k].flatten() for k in keys]) for w in (eager_weights, fast_weights))
    assert (b - a).norm() / a.norm() < 1e-2
    auto = dataclasses.replace(cfg, compile="auto")
    assert not compiles_step(auto, torch.device("cpu")) and compiles_step(
        auto, torch.device("cuda")
    )
