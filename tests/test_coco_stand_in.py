import numpy as np
import torch
from torchvision.ops import box_iou

from kitti_pipeline.pretrain.coco import make_object_scenes, render_object_scene
from kitti_pipeline.pretrain.objects import OBJECT_CLASSES


def test_object_scenes_hold_separate_labelled_objects():
    for seed in range(10):
        image, boxes, labels = render_object_scene(np.random.default_rng(seed), 128)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert 1 <= len(boxes) == len(labels) <= 6
        assert ((labels >= 0) & (labels < len(OBJECT_CLASSES))).all()
        assert (boxes >= 0).all() and (boxes <= 128).all()
        assert (boxes[:, 2:] - boxes[:, :2] >= 0.06 * 128 * 0.25 - 1e-4).all()
        ious = box_iou(torch.from_numpy(boxes), torch.from_numpy(boxes)).fill_diagonal_(0)
        assert ious.max() <= 0.2 + 1e-6


def test_object_scenes_are_fixed_by_the_seed():
    data = make_object_scenes(4, 96, seed=0)
    assert data.images.shape == (4, 3, 96, 96) and data.sizes == [(96, 96)] * 4
    assert all(t.shape[1] == 5 for t in data.targets)
    again = make_object_scenes(4, 96, seed=0)
    assert torch.equal(data.images, again.images)
    assert all(torch.equal(a, b) for a, b in zip(data.targets, again.targets, strict=True))
    assert not torch.equal(make_object_scenes(4, 96, seed=1).images, data.images)
