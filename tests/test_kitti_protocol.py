"""KITTI's AP by difficulty, held to a line-by-line port of the devkit (tests/kitti_devkit_port.py)
on generated frames and on hand-made cases of each way a simpler reading differs from it:
(a) the 41 recall samples, (b) matching truth by truth in label order, (c) DontCare regions
only discounting detections left over, (d) the strict boundaries (height > minimum, IoU > 0.7)."""

import numpy as np
import pytest
import torch

from kitti_pipeline.data.labels import KittiObject
from kitti_pipeline.detect.kitti import (
    KITTI_LEVELS,
    clean_frame,
    curve_from_dict,
    curve_to_dict,
    kitti_curve,
    kitti_level_ap,
    resampled_kitti_ap,
    statistics_at,
)

from . import kitti_devkit_port as devkit


def kitti(type_, box, occluded=0, truncated=0.0):
    return KittiObject(type_, truncated, occluded, 0.0, box, (1.5, 1.6, 3.9), (0, 1.65, 20), 0, 1)


def port_ap(detections, objects, level, iou=0.7, kitti_type="Car"):
    """The devkit port on the same frames: every detection is of the evaluated type."""
    gts = [[(o.type, o.truncated, o.occluded, o.box) for o in frame] for frame in objects]
    dets = [
        [(kitti_type, float(d[4]), tuple(float(v) for v in d[:4])) for d in frame]
        for frame in detections
    ]
    return devkit.eval_class(gts, dets, kitti_type, level, iou)


def generated_frames(seed, frames=30):
    """Cars, vans, pedestrians and DontCare regions of every height, occlusion and truncation
    around the levels' limits (exact 25 and 40 px among them); detections near the cars and
    vans, duplicates, too-short ones, false positives, some inside DontCare regions."""
    rng = np.random.default_rng(seed)
    detections, objects = [], []
    for _ in range(frames):
        frame = []
        for _ in range(int(rng.integers(0, 9))):
            kind = rng.choice(["Car", "Car", "Car", "Van", "Pedestrian", "DontCare"])
            x, y = rng.uniform(0, 1100), rng.uniform(100, 250)
            height = float(rng.choice([25.0, 40.0, *rng.uniform(12, 110, 4)]))
            width = height * rng.uniform(1.0, 2.5)
            box = (x, y, x + width, y + height)
            occluded = -1 if kind == "DontCare" else int(rng.integers(0, 4))
            truncated = -1.0 if kind == "DontCare" else float(rng.choice([0.0, 0.15, 0.3, 0.45]))
            frame.append(kitti(str(kind), box, occluded, truncated))
        dets = []
        for o in frame:  # mostly one detection, sometimes none or a duplicate
            for _ in range(int(rng.choice([0, 1, 1, 1, 1, 1, 1, 2]))):
                jitter = rng.normal(0, 0.03 * (o.box[3] - o.box[1]), 4)
                dets.append([*(np.array(o.box) + jitter), rng.uniform(0.3, 1.0)])
        for _ in range(int(rng.integers(0, 3))):
            x, y, h = rng.uniform(0, 1100), rng.uniform(100, 250), rng.uniform(10, 80)
            dets.append([x, y, x + 1.6 * h, y + h, rng.uniform(0.0, 0.7)])
        dets = np.array(dets).reshape(-1, 5)
        dets[:, 2:4] = np.maximum(dets[:, 2:4], dets[:, :2] + 1)
        detections.append(torch.tensor(dets[np.argsort(-dets[:, 4])], dtype=torch.float64))
        objects.append(frame)
    return detections, objects


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("level", list(KITTI_LEVELS))
def test_every_level_equals_the_devkit_port(seed, level):
    detections, objects = generated_frames(seed)
    ours = kitti_level_ap(detections, objects, "Car", level)
    assert ours == pytest.approx(port_ap(detections, objects, level), abs=1e-4)


def test_generated_frames_reach_the_boundaries_and_spread_the_figures():
    frames = [generated_frames(s) for s in range(8)]
    heights = [o.box[3] - o.box[1] for _, objects in frames for f in objects for o in f]
    assert 25.0 in heights and 40.0 in heights
    values = [port_ap(*case, level) for case in frames for level in KITTI_LEVELS]
    assert min(values) < 0.05 and max(values) > 0.4


def test_a_draw_counts_each_frame_as_often_as_it_is_drawn():
    detections, objects = generated_frames(3)
    curve = curve_from_dict(curve_to_dict(kitti_curve(detections, objects, "Car", "moderate")))
    draw = np.random.default_rng(0).multinomial(len(objects), [1 / len(objects)] * len(objects))
    repeated = [i for i, count in enumerate(draw) for _ in range(count)]
    expected = port_ap(
        [detections[i] for i in repeated], [objects[i] for i in repeated], "moderate"
    )
    assert resampled_kitti_ap(curve, draw[None])[0] == pytest.approx(expected, abs=1e-12)


def test_a_recall_sampling_three_cars_all_found_give_2_over_40():
    """(a) The 41 sampled recalls: three cars found with no false positive give precision 1 at
    three sampled thresholds only; AP|R40 sums samples 1 to 40: 2/40."""
    objects = [[kitti("Car", (100.0 * k, 100, 100.0 * k + 60, 150)) for k in range(1, 4)]]
    detections = [torch.tensor([[100.0 * k, 100, 100.0 * k + 60, 150, 0.9] for k in range(1, 4)])]
    assert kitti_level_ap(detections, objects, "Car", "easy") == pytest.approx(2 / 40)
    assert port_ap(detections, objects, "easy") == pytest.approx(2 / 40)


def test_b_an_ignored_car_listed_first_takes_the_detection_it_overlaps_most():
    """(b) Truth by truth in label order: the heavily occluded car (ignored at moderate) comes
    first and takes the one detection; the counted car behind it is missed."""
    ignored = kitti("Car", (100.0, 100, 200, 160), occluded=3)
    counted = kitti("Car", (110.0, 100, 210, 160))
    detection = [torch.tensor([[104.0, 100, 204, 160, 0.9]])]
    # The detection overlaps both above 0.7; the ignored car, first, takes it: no true positive.
    assert kitti_level_ap(detection, [[ignored, counted]], "Car", "moderate") == 0.0
    assert port_ap(detection, [[ignored, counted]], "moderate") == 0.0
    # Listed the other way round, the counted car takes it.
    curve = kitti_curve(detection, [[counted, ignored]], "Car", "moderate")
    assert curve.statistics[0, 0].tolist() == [1, 0, 0]


def test_b_with_a_threshold_a_truth_takes_its_best_overlap_without_one_its_best_score():
    """(b) The devkit's two passes choose differently: the pass that gives the recall samples
    takes the best-scoring detection above IoU 0.7, the counting pass the best-overlapping one.
    Car 1 overlaps detection 1 by 0.79 and detection 2 by 0.90; car 2 overlaps only
    detection 1 (0.77)."""
    cars = [kitti("Car", (0.0, 100, 100, 150)), kitti("Car", (25.0, 100, 125, 150))]
    detections = [
        torch.tensor([[12.0, 100, 112, 150, 0.9], [5.0, 100, 105, 150, 0.8]], dtype=torch.float64)
    ]
    curve = kitti_curve(detections, [cars], "Car", "easy")
    # Without a threshold car 1 takes detection 1 (score 0.9), leaving car 2 nothing above 0.7.
    assert curve.tp_scores[0].tolist() == [0.9]
    # Counting at 0.9: only detection 1, car 1 takes it. (At 0.8 car 1 would take detection 2
    # and car 2 detection 1: two true positives.)
    assert curve.statistics[0].tolist() == [[1, 0, 1]]
    frame = clean_frame(detections[0], cars, "Car", "easy")
    assert statistics_at(frame, 0.7, 0.8) == (2, 0, 0)
    assert kitti_level_ap(detections, [cars], "Car", "easy") == port_ap(detections, [cars], "easy")


def test_c_a_car_inside_a_dont_care_region_keeps_its_true_positive():
    """(c) DontCare only discounts detections that matched nothing."""
    car = kitti("Car", (100.0, 100, 200, 160))
    region = kitti("DontCare", (90.0, 90, 400, 200), occluded=-1, truncated=-1.0)
    detections = [torch.tensor([[100.0, 100, 200, 160, 0.9], [250.0, 100, 350, 160, 0.8]])]
    curve = kitti_curve(detections, [[car, region]], "Car", "easy")
    # At the one sampled threshold (0.9) the car is found; the detection at 0.8 inside the
    # region would be discounted, not counted false.
    assert curve.statistics[0, 0].tolist() == [1, 0, 0]
    frame = clean_frame(detections[0], [car, region], "Car", "easy")
    assert statistics_at(frame, 0.7, 0.5) == (1, 0, 0)


def test_d_a_car_exactly_25_px_tall_is_not_moderate_and_iou_must_exceed_07():
    """(d) Strict boundaries: height must exceed the minimum, IoU must exceed the threshold."""
    exact = kitti("Car", (100.0, 100, 160, 125))  # 25 px
    curve = kitti_curve([torch.zeros(0, 5)], [[exact]], "Car", "moderate")
    assert curve.truths.tolist() == [0]
    taller = kitti("Car", (100.0, 100, 160, 125.5))
    assert kitti_curve([torch.zeros(0, 5)], [[taller]], "Car", "moderate").truths.tolist() == [1]
    # A detection whose IoU with the car is exactly 0.7 is not a match.
    car = kitti("Car", (0.0, 100, 100, 150))
    detection = torch.tensor([[0.0, 100, 70, 150, 0.9]])  # inside the car, 70% of its area
    for level in ("easy", "moderate"):
        curve = kitti_curve([detection], [[car]], "Car", level)
        assert (
            curve.thresholds.size == 0 and kitti_level_ap([detection], [[car]], "Car", level) == 0
        )
        assert port_ap([detection], [[car]], level) == 0.0


def test_levels_by_hand():
    objects = [
        [
            kitti("Car", (100.0, 100, 200, 150)),  # 50 px tall, visible: every level
            kitti("Car", (300.0, 100, 360, 130), occluded=2, truncated=0.4),  # 30 px: hard only
            kitti("Van", (400.0, 100, 500, 160)),
            kitti("DontCare", (600.0, 100, 700, 200), occluded=-1, truncated=-1.0),
        ]
    ]
    detections = [
        torch.tensor(
            [
                [800.0, 100, 840, 120, 0.99],  # 20 px tall: below every level's minimum
                [900.0, 100, 960, 130, 0.95],  # 30 px, on nothing: FP for moderate and hard
                [100.0, 100, 200, 150, 0.90],  # the visible car
                [300.0, 100, 360, 130, 0.80],  # the occluded car
                [400.0, 100, 500, 160, 0.70],  # the van: ignored for cars
                [610.0, 110, 690, 190, 0.60],  # inside the don't-care region
            ],
            dtype=torch.float64,
        )
    ]
    # easy and moderate count one car: one true positive, one sampled threshold, and the
    # sample at recall 0 is not in AP|R40's sum: 0.
    for level in ("easy", "moderate"):
        assert kitti_level_ap(detections, objects, "Car", level) == 0.0
    # hard counts both cars: thresholds 0.90 and 0.80, precision 1/2 (the 30 px FP) and 2/3;
    # the envelope's second sample 2/3 is the only one in the sum: (2/3) / 40.
    assert kitti_level_ap(detections, objects, "Car", "hard") == pytest.approx(2 / 3 / 40)
    for level in KITTI_LEVELS:
        assert kitti_level_ap(detections, objects, "Car", level) == pytest.approx(
            port_ap(detections, objects, level)
        )
