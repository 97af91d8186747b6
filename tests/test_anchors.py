"""Dataset anchors (`kitti-anchors`): k-means with IoU distance, the fit report, the cfg rewrite."""

import json

import numpy as np
import pytest
import yaml

from kitti_pipeline.detect.anchors import (
    anchor_fit,
    cfg_anchors,
    kmeans_anchors,
    shape_iou,
    with_anchors,
)
from kitti_pipeline.detect.commands import anchors_main as main
from kitti_pipeline.detect.darknet import build_darknet
from kitti_pipeline.detect.yolo import scales_of

from .conftest import ROOT, run_data_stages


def test_shape_iou_by_hand():
    # (10, 20) against (20, 10) on one centre: overlap 10 x 10 = 100 of 200 + 200 - 100.
    assert shape_iou(np.array([[10.0, 20]]), np.array([[20.0, 10], [10, 20]])).tolist() == [
        [pytest.approx(1 / 3), 1.0]
    ]


def test_fit_by_hand():
    # Boxes 10 x 10 and 20 x 20 against one 10 x 10 anchor: IoU 1 and 100 / 400.
    fit = anchor_fit(np.array([[10.0, 10], [20, 20]]), np.array([[10.0, 10]]))
    assert fit == {"mean_best_iou": pytest.approx(0.625), "best_possible_recall": 0.5}


def test_separate_clusters_give_their_median_shapes_smallest_first():
    """Three well separated groups of shapes, listed in any order: k-means with IoU distance
    ends on each group's median shape, the anchors ordered by area."""
    rng = np.random.default_rng(0)
    centres = np.array([[120.0, 60], [12, 8], [40, 30]])
    groups = [c * rng.uniform(0.9, 1.1, (25, 2)) for c in centres]
    wh = np.concatenate(groups)
    expected = sorted((np.median(g, axis=0) for g in groups), key=lambda a: a.prod())
    for seed in range(4):
        shuffled = np.random.default_rng(seed).permutation(wh)
        assert kmeans_anchors(shuffled, 3) == pytest.approx(np.array(expected))
    with pytest.raises(ValueError, match="too few for 3 anchors"):
        kmeans_anchors(np.array([[10.0, 10], [10, 10], [20, 20]]), 3)


def test_new_anchors_go_into_every_yolo_block_and_build():
    text = (ROOT / "cfg/yolov3.cfg").read_text()
    assert cfg_anchors(text).tolist()[:2] == [[10, 13], [16, 30]]
    anchors = np.array(
        [[8, 6], [14, 9], [22, 13], [30, 18], [40, 24], [55, 30], [75, 40], [100, 55], [140, 80]]
    )
    new = with_anchors(text, anchors)
    assert cfg_anchors(new).tolist() == anchors.tolist()
    assert new.count("\n") == text.count("\n")  # one line changed per [yolo] block, no more
    scales = scales_of(build_darknet(ROOT / "cfg/yolov3.cfg", 1, text=new))
    # Coarsest scale first, with mask 6,7,8: the largest anchors.
    assert [s.anchors for s in scales] == [
        tuple(map(tuple, anchors[6:9])),
        tuple(map(tuple, anchors[3:6])),
        tuple(map(tuple, anchors[0:3])),
    ]


@pytest.mark.slow
def test_the_command_fits_the_training_boxes_better_than_cocos_anchors(
    stage, params_file, tmp_path
):
    run_data_stages(stage, params_file, tmp_path)
    out = tmp_path / "kitti.cfg"
    args = ["--frames", tmp_path / "frames", "--split", tmp_path / "frame_split.csv", "--out", out]
    main([str(a) for a in [*args, "--params", params_file]])
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["boxes"] > 20 and len(report["dataset_anchors"]["anchors"]) == 6
    ours, cocos = report["dataset_anchors"], report["cfg_anchors"]
    assert ours["mean_best_iou"] > cocos["mean_best_iou"]
    assert ours["best_possible_recall"] >= cocos["best_possible_recall"]
    assert cfg_anchors(out.read_text()).tolist() == ours["anchors"]


@pytest.mark.parametrize("choice", ["cfg", "dataset"])
def test_the_stage_writes_the_cfg_to_train_with_the_chosen_anchors(
    stage, params_file, tmp_path, choice
):
    """`detector.anchors: cfg` trains from the cfg as it is; `dataset` from a copy holding the
    k-means anchors of the training boxes, as `kitti-anchors` writes them."""
    run_data_stages(stage, params_file, tmp_path)
    raw = yaml.safe_load(params_file.read_text())
    raw["detector"]["anchors"] = choice
    params = tmp_path / "anchors.yaml"
    params.write_text(yaml.safe_dump(raw))
    frames = ("--frames", tmp_path / "frames", "--split", tmp_path / "frame_split.csv")
    out, metrics = tmp_path / "detector.cfg", tmp_path / "anchors.json"
    stage("detector_anchors", "--params", params, *frames, "--out", out, "--metrics", metrics)
    report = json.loads(metrics.read_text())
    cfg_text = (ROOT / raw["detector"]["cfg"]).read_text()
    assert report["used"] == choice
    main([str(a) for a in [*frames, "--out", tmp_path / "kitti.cfg", "--params", params]])
    if choice == "cfg":
        assert out.read_text() == cfg_text
    else:
        assert out.read_text() == (tmp_path / "kitti.cfg").read_text() != cfg_text
        assert cfg_anchors(out.read_text()).tolist() == report["dataset_anchors"]["anchors"]
    scales = scales_of(build_darknet(out, 1))
    assert sum(len(s.anchors) for s in scales) == len(report["cfg_anchors"]["anchors"])
