import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from kitti_pipeline.pretrain import imagenet
from kitti_pipeline.pretrain.objects import OBJECT_CLASSES

MAGENTA = (255, 0, 255)


@pytest.fixture
def solid_objects(monkeypatch):
    """Every object a solid magenta box on a black canvas, without blur or noise: what the
    image shows of it is then exactly its framing."""

    def plain(rng, s):
        image = Image.new("RGB", (s, s))
        return image, ImageDraw.Draw(image)

    def box(draw, rng, x, y, w, h):
        draw.rectangle([x, y, x + w, y + h], fill=MAGENTA)

    monkeypatch.setattr(imagenet, "background", plain)
    monkeypatch.setattr(imagenet, "DRAW", {name: box for name in OBJECT_CLASSES})
    monkeypatch.setattr(
        imagenet, "finish", lambda rng, image, size: np.asarray(image.resize((size, size)))
    )


@pytest.mark.parametrize("name", ["traffic_light", "bus"])
def test_an_object_is_framed_as_a_crop_stretched_to_a_square(solid_objects, name):
    """Each side of the box moves out by at most 30% or in by at most 10%, then the frame is
    stretched: a traffic light (width / height 0.25 to 0.4) spans most of the width, as a
    stretched person crop does, and a bus (1.8 to 3) most of the height."""
    label = OBJECT_CLASSES.index(name)
    low, high = 1 / (1 + 2 * imagenet.MARGIN[1]), 1 / (1 + 2 * imagenet.MARGIN[0])
    for seed in range(20):
        image = imagenet.render_object_image(np.random.default_rng(seed), 64, label)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        inside = (image == MAGENTA).all(-1)
        for axis in (0, 1):
            extent = inside.any(axis).sum() / 64
            assert low - 2 / 64 <= extent <= min(1.0, high), (seed, axis, extent)


def test_the_images_are_fixed_by_the_seed_and_the_classes_balanced():
    images, labels = imagenet.make_object_images(20, 32, seed=0)
    assert images.shape == (20, 3, 32, 32) and np.bincount(labels.numpy()).tolist() == [2] * 10
    again, _ = imagenet.make_object_images(20, 32, seed=0)
    assert (images == again).all() and not (
        imagenet.make_object_images(20, 32, 1)[0] == images
    ).all()


def label_image(rng, size, label):
    """A task's render that draws nothing but its label: every pixel of the image is `label`."""
    return np.full((size, size, 3), label, np.uint8)


LABEL_TASK = imagenet.ObjectTask("labels", ("a", "b", "c"), label_image)


def test_another_task_draws_its_own_classes_balanced():
    images, labels = imagenet.make_object_images(9, 8, 0, LABEL_TASK)
    assert np.bincount(labels.numpy()).tolist() == [3, 3, 3]
    for image, label in zip(images, labels, strict=True):
        assert (image == label).all()


def test_pretraining_on_another_task_gives_a_head_of_its_classes():
    """One epoch on 10 images: the head has the task's three outputs and the summary names it."""
    state, info = imagenet.pretrain_classifier(
        "resnet18", 10, 32, 1, 5, 1e-3, 0, torch.device("cpu"), task=LABEL_TASK
    )
    assert state["fc.weight"].shape == (3, 512)
    assert info["task"] == "labels" and info["classes"] == ["a", "b", "c"]
