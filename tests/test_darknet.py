import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kitti_pipeline.detect.darknet import (
    CfgError,
    MaxPoolSame,
    _conv_tensors,
    build_darknet,
    parse_cfg,
    read_weights,
    transfer_weights,
    write_weights,
)

from .conftest import ROOT

YOLOV3 = ROOT / "cfg" / "yolov3.cfg"
TINY = ROOT / "cfg" / "yolov3-tiny.cfg"


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_published_parameter_counts():
    assert n_params(build_darknet(YOLOV3)) == 61_949_149
    assert n_params(build_darknet(TINY)) == 8_852_366


def test_weights_file_size_matches_the_published_yolov3_file(tmp_path):
    model = build_darknet(YOLOV3)
    write_weights(model, tmp_path / "yolov3.weights")
    assert (tmp_path / "yolov3.weights").stat().st_size == 248_007_048


def test_output_shapes_at_416():
    model = build_darknet(YOLOV3, num_classes=1).eval()
    with torch.no_grad():
        heads = model(torch.zeros(1, 3, 416, 416))
    assert [tuple(h.shape) for h in heads] == [(1, 18, 13, 13), (1, 18, 26, 26), (1, 18, 52, 52)]
    yolo = [layer for layer in model.layers if type(layer).__name__ == "YoloLayer"]
    assert [y.anchors for y in yolo] == [
        [(116, 90), (156, 198), (373, 326)],
        [(30, 61), (62, 45), (59, 119)],
        [(10, 13), (16, 30), (33, 23)],
    ]


def test_tiny_output_shapes():
    with torch.no_grad():
        heads = build_darknet(TINY, num_classes=3).eval()(torch.zeros(2, 3, 416, 416))
    assert [tuple(h.shape) for h in heads] == [(2, 24, 13, 13), (2, 24, 26, 26)]


def test_cfg_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text("[net]\nwidth=416\n[convolutional\nfilters=3\n")
    with pytest.raises(CfgError, match=r"bad\.cfg:3: unclosed section header"):
        parse_cfg(bad)
    bad.write_text("[net]\n[convolutional]\nfilters=3\nsize=1\n[route]\nlayers=-5\n")
    with pytest.raises(CfgError, match=r"bad\.cfg:5: \[route\] \(layer 1\).*outside"):
        build_darknet(bad)


def test_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_darknet(TINY, num_classes=2)
    for m in model.modules():  # non-default BatchNorm statistics, so they are checked too
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    write_weights(model, tmp_path / "t.weights", seen=123)
    other = build_darknet(TINY, num_classes=2)
    info = read_weights(other, tmp_path / "t.weights")
    assert info == {"version": (0, 2, 0), "seen": 123, "loaded": 13}
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(a, b), name


def test_hand_built_file(tmp_path):
    # One BN conv (2 -> ... channels=1 input, 2 filters, 1x1) then one plain conv (2 -> 1, 1x1).
    cfg = tmp_path / "two.cfg"
    cfg.write_text(
        "[net]\nchannels=1\n"
        "[convolutional]\nbatch_normalize=1\nfilters=2\nsize=1\nactivation=linear\n"
        "[convolutional]\nfilters=1\nsize=1\nactivation=linear\n"
    )
    values = [
        0.1,
        0.2,  # bn bias
        1.5,
        2.5,  # bn weight
        0.3,
        0.4,  # running mean
        4.0,
        9.0,  # running var
        10.0,
        20.0,  # conv1 weights (2, 1, 1, 1)
        -1.0,  # conv2 bias
        0.5,
        0.25,
    ]  # conv2 weights (1, 2, 1, 1)
    path = tmp_path / "two.weights"
    with open(path, "wb") as f:  # an old-style header: version 0.1, seen as int32
        np.array([0, 1, 0, 77], dtype=np.int32).tofile(f)
        np.array(values, dtype=np.float32).tofile(f)
    model = build_darknet(cfg).eval()
    assert read_weights(model, path) == {"version": (0, 1, 0), "seen": 77, "loaded": 2}
    bn = model.layers[0].bn
    assert bn.bias.tolist() == pytest.approx([0.1, 0.2])
    assert bn.running_var.tolist() == [4.0, 9.0]
    # By hand for input 1.0: conv1 -> (10, 20); BN -> 1.5*(10-0.3)/sqrt(4+1e-5)+0.1 = 7.3749...
    # and 2.5*(20-0.4)/sqrt(9+1e-5)+0.2 = 16.5333...; conv2 -> 0.5*7.3749 + 0.25*16.5333 - 1.
    with torch.no_grad():
        (out,) = [model.layers[1](model.layers[0](torch.ones(1, 1, 1, 1)))]
    a = 1.5 * 9.7 / np.sqrt(4 + 1e-5) + 0.1
    b = 2.5 * 19.6 / np.sqrt(9 + 1e-5) + 0.2
    assert out.item() == pytest.approx(0.5 * a + 0.25 * b - 1.0, rel=1e-5)


def test_truncated_and_oversized_files_fail(tmp_path):
    model = build_darknet(TINY, num_classes=1)
    write_weights(model, tmp_path / "ok.weights")
    data = (tmp_path / "ok.weights").read_bytes()
    (tmp_path / "short.weights").write_bytes(data[:-400])
    with pytest.raises(ValueError, match="truncated: holds .* need"):
        read_weights(model, tmp_path / "short.weights")
    (tmp_path / "long.weights").write_bytes(data + b"\0" * 400)
    with pytest.raises(ValueError, match="oversized: 100 values left"):
        read_weights(model, tmp_path / "long.weights")
    # A backbone-only read stops early by design.
    assert read_weights(model, tmp_path / "ok.weights", cutoff=7)["loaded"] == 7


def test_transfer_from_80_classes_reinitialises_only_the_prediction_convs(tmp_path):
    torch.manual_seed(0)
    coco = build_darknet(TINY, num_classes=80)
    write_weights(coco, tmp_path / "coco.weights")
    torch.manual_seed(1)
    cars = build_darknet(TINY, num_classes=1)
    fresh = {k: v.clone() for k, v in cars.state_dict().items()}
    info = transfer_weights(cars, tmp_path / "coco.weights", TINY, file_classes=80)
    assert info["reinitialised"] == [9, 12] and info["loaded"] == 11
    convs, coco_convs = cars.convolutions(), coco.convolutions()
    for k, (mine, theirs) in enumerate(zip(convs, coco_convs, strict=True)):
        same = torch.equal(mine.conv.weight, theirs.conv.weight)
        assert same == (k not in (9, 12)), k
    assert torch.equal(convs[9].conv.weight, fresh["layers.15.conv.weight"])


def test_transfer_from_a_backbone_only_file(tmp_path):
    # Like darknet53.conv.74: the file holds the first convolutions only (here 7 of tiny's 13).
    torch.manual_seed(0)
    source = build_darknet(TINY, num_classes=80)
    write_weights(source, tmp_path / "full.weights")
    header = 20  # three int32 and an int64
    values = sum(t.numel() for conv in source.convolutions()[:7] for t in _conv_tensors(conv))
    data = (tmp_path / "full.weights").read_bytes()[: header + 4 * values]
    (tmp_path / "backbone.weights").write_bytes(data)
    torch.manual_seed(1)
    cars = build_darknet(TINY, num_classes=1)
    fresh = [c.conv.weight.clone() for c in cars.convolutions()]
    info = transfer_weights(cars, tmp_path / "backbone.weights", TINY, 80, convolutions=7)
    assert info["loaded"] == 7 and info["reinitialised"] == []
    for k, (mine, theirs) in enumerate(
        zip(cars.convolutions(), source.convolutions(), strict=True)
    ):
        expected = theirs.conv.weight if k < 7 else fresh[k]
        assert torch.equal(mine.conv.weight, expected), k


def test_a_model_builds_from_cfg_text():
    from_file = build_darknet(TINY, num_classes=1)
    from_text = build_darknet("saved.pt", num_classes=1, text=TINY.read_text())
    assert [type(m) for m in from_text.layers] == [type(m) for m in from_file.layers]
    shapes = {k: v.shape for k, v in from_file.state_dict().items()}
    assert {k: v.shape for k, v in from_text.state_dict().items()} == shapes


def test_yolo_strides_come_from_the_layers():
    from kitti_pipeline.detect.yolo import scales_of

    assert [s.stride for s in scales_of(build_darknet(YOLOV3))] == [32, 16, 8]
    assert [s.stride for s in scales_of(build_darknet(TINY))] == [32, 16]


def test_small_width_demo_model():
    model = build_darknet(ROOT / "cfg" / "yolov3-tiny-small.cfg", num_classes=1).eval()
    # The tiny cfg with every hidden conv a quarter as wide (16 -> 4, ..., 1024 -> 256).
    convs = [c.conv.out_channels for c in model.convolutions()]
    assert convs == [4, 8, 16, 32, 64, 128, 256, 64, 128, 18, 32, 64, 18]
    with torch.no_grad():
        heads = model(torch.zeros(1, 3, 256, 256))
    assert [tuple(h.shape) for h in heads] == [(1, 18, 8, 8), (1, 18, 16, 16)]


def test_fused_batchnorm_gives_the_same_outputs():
    from kitti_pipeline.detect.darknet import fuse_batchnorm

    torch.manual_seed(0)
    model = build_darknet(TINY, num_classes=1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
    model.eval()
    fused = fuse_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        for a, b in zip(model(x), fused(x), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_objectness_prior():
    from kitti_pipeline.detect.darknet import init_prediction_biases

    model = build_darknet(TINY, num_classes=1)
    init_prediction_biases(model, 0.01)
    for k in model.prediction_convs():
        bias = model.convolutions()[k].conv.bias.view(3, 6)
        assert torch.sigmoid(bias[:, 4]).tolist() == pytest.approx([0.01] * 3, rel=1e-5)


def test_a_cut_off_read_takes_exactly_the_cut_off_or_the_whole_file(tmp_path):
    torch.manual_seed(0)
    model = build_darknet(TINY, num_classes=1)
    values = [
        t.detach().numpy().ravel() for c in model.convolutions()[:7] for t in _conv_tensors(c)
    ]
    backbone = np.concatenate(values).astype(np.float32)

    def version_0_0(name, seen_bytes):
        with open(tmp_path / name, "wb") as f:
            np.array([0, 0, 0], dtype=np.int32).tofile(f)
            f.write(b"\0" * seen_bytes)
            backbone.tofile(f)
        return tmp_path / name

    # Version 0.0 has a 4-byte `seen`: the file holds exactly the cut-off's values.
    target = build_darknet(TINY, num_classes=1)
    assert read_weights(target, version_0_0("four.weights", 4), cutoff=7)["loaded"] == 7
    for mine, theirs in zip(target.convolutions()[:7], model.convolutions()[:7], strict=True):
        assert torch.equal(mine.conv.weight, theirs.conv.weight)
    # A writer that gave `seen` 8 bytes: one value too many, which would shift every weight.
    with pytest.raises(
        ValueError, match=r"eight\.weights: holds [\d,]+ values after its version 0\.0"
    ):
        read_weights(target, version_0_0("eight.weights", 8), cutoff=7)
    # A whole file read for its first convolutions only is fine.
    write_weights(model, tmp_path / "whole.weights")
    assert read_weights(target, tmp_path / "whole.weights", cutoff=7)["loaded"] == 7


@pytest.mark.parametrize("size", [2, 3])
def test_stride_one_maxpool_equals_darknets_edge_padding_with_its_gradients(size):
    """Padding with -inf gives what Darknet's replicated edge gives, ties included."""
    torch.manual_seed(0)
    x = torch.randint(0, 4, (2, 3, 7, 9)).float()  # few values: many ties
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    weights = torch.rand(2, 3, 7, 9)
    ours = MaxPoolSame(size)(x)
    (ours * weights).sum().backward()
    ours_grad, x.grad = x.grad, None
    pad = (0, size - 1, 0, size - 1)
    darknet = F.max_pool2d(F.pad(x, pad, mode="replicate"), size, stride=1)
    (darknet * weights).sum().backward()
    assert ours.shape == x.shape
    assert torch.equal(ours, darknet) and torch.equal(ours_grad, x.grad)
