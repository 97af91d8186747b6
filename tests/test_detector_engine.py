import pytest
import torch

from kitti_pipeline.darknet import build_darknet, init_prediction_biases
from kitti_pipeline.detector_engine import (
    evaluate_detector,
    flip_batch,
    load_detection_set,
    train_one_epoch,
)
from kitti_pipeline.yolo import scales_of

from .conftest import ROOT


def test_flip_batch_mirrors_boxes_with_the_pixels():
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    images[:, :, 4:8, 2:10] = 255
    targets = [torch.tensor([[0.0, 2, 4, 10, 8]])] * 2
    flipped, boxes = flip_batch(images, targets, torch.tensor([True, False]))
    assert boxes[0].tolist() == [[0.0, 22, 4, 30, 8]] and boxes[1].tolist() == [[0.0, 2, 4, 10, 8]]
    assert (flipped[0, :, 4:8, 22:30] == 255).all() and flipped[0].sum() == images[0].sum()


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
    summary = evaluate_detector(model, data, scales, conf_threshold=0.25, nms_iou=0.45)
    assert summary["ground_truths"] == sum(len(t) for t in data.targets)
    assert summary["AP50"] > 0.8, summary
