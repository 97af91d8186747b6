from collections import Counter

import numpy as np
import pytest

from kitti_pipeline.core.params import SplitParams
from kitti_pipeline.data.splits import (
    count_table,
    frame_split,
    frames_by_split,
    read_crop_split,
    split_frames,
    split_rows,
)

CLASSES = ("Car", "Person", "Cyclist")


def random_frames(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return {
        f"{i:06d}": list(rng.choice(CLASSES, size=rng.integers(1, 9), p=[0.83, 0.12, 0.05]))
        for i in range(n)
    }


def test_split_sizes_and_class_balance():
    frames = random_frames()
    total = Counter(c for v in frames.values() for c in v)
    assignment = split_frames(frames, CLASSES, 800, 200, None, seed=0)
    assert set(assignment) == set(frames)
    per_split = {s: Counter() for s in ("train", "val", "test")}
    for frame, split in assignment.items():
        per_split[split].update(frames[frame])
    biggest_frame = max(len(v) for v in frames.values())
    assert abs(sum(per_split["train"].values()) - 800) <= biggest_frame
    assert abs(sum(per_split["val"].values()) - 200) <= biggest_frame
    # Every split gets its share of each class, rare ones included.
    for split, size in (("train", 800), ("val", 200)):
        for name in CLASSES:
            expected = size * total[name] / total.total()
            assert abs(per_split[split][name] - expected) <= max(3, 0.15 * expected), (split, name)


def test_split_is_deterministic_and_seed_dependent():
    frames = random_frames()
    a = split_frames(frames, CLASSES, 800, 200, None, seed=0)
    assert a == split_frames(frames, CLASSES, 800, 200, None, seed=0)
    assert a != split_frames(frames, CLASSES, 800, 200, None, seed=1)


def test_fixed_test_size_leaves_nothing_unassigned():
    frames = random_frames(50)
    total = sum(len(v) for v in frames.values())
    assignment = split_frames(
        frames, CLASSES, total // 2, total // 4, total - total // 2 - total // 4, seed=0
    )
    assert len(assignment) == 50


def test_asking_for_too_many_crops_is_an_error():
    frames = {"a": ["Car", "Car"], "b": ["Person"]}
    with pytest.raises(ValueError, match="asks for 5 crops .* produced only 3"):
        split_frames(frames, CLASSES, 4, 1, None, seed=0)


def test_count_table_by_hand():
    rows = [
        {"split": "train", "class": "Car"},
        {"split": "train", "class": "Car"},
        {"split": "train", "class": "Cyclist"},
        {"split": "val", "class": "Person"},
        {"split": "test", "class": "Car"},
    ]
    assert count_table(rows, CLASSES) == {
        "train": {"total": 3, "Car": 2, "Person": 0, "Cyclist": 1},
        "val": {"total": 1, "Car": 0, "Person": 1, "Cyclist": 0},
        "test": {"total": 1, "Car": 1, "Person": 0, "Cyclist": 0},
        "all": {"total": 5, "Car": 3, "Person": 1, "Cyclist": 1},
    }


def test_frames_by_split_by_hand():
    rows = [
        {"frame": "000002", "split": "val"},
        {"frame": "000000", "split": "train"},
        {"frame": "000002", "split": "val"},
        {"frame": "000003", "split": "test"},
    ]
    # 000001 and 000004 have no crops: they join train as background frames.
    assert frames_by_split(rows, ["000004", "000003", "000002", "000001", "000000"]) == {
        "train": ["000000", "000001", "000004"],
        "val": ["000002"],
        "test": ["000003"],
    }
    with pytest.raises(ValueError, match="000002 is in both val and test"):
        frames_by_split([*rows, {"frame": "000002", "split": "test"}], ["000002", "000003"])
    with pytest.raises(ValueError, match="not in the dataset, e.g. 000003"):
        frames_by_split(rows, ["000000", "000002"])


def test_frames_with_bad_input_are_left_out_of_the_detectors_split():
    """A frame with a bad label line keeps its good crops (in the crop split) but is left out
    of the detector's, as are an unreadable image and an image without labels; a small box is
    no bad input, and a frame without crops trains as background."""
    rows = [
        {"frame": "000000", "split": "train"},
        {"frame": "000001", "split": "test"},  # its line 2 is bad, line 1 was cropped
        {"frame": "000002", "split": "val"},  # a small box skipped beside this crop
    ]
    skips = [
        {"reason": "bad_label", "path": "data/f/labels/000001.txt", "line": "2"},
        {"reason": "bad_label", "path": "data/f/labels/000001.txt", "line": "3"},
        {"reason": "small_box", "path": "data/f/labels/000002.txt", "line": "4"},
        {"reason": "unreadable_image", "path": "data/f/images/000003.png", "line": ""},
        {"reason": "image_without_label", "path": "data/f/images/000004.png", "line": ""},
    ]
    stems = ["000000", "000001", "000002", "000003", "000004", "000005"]
    assert frame_split(rows, stems, skips) == [
        {"frame": "000000", "split": "train", "drive": "", "reason": ""},
        {"frame": "000001", "split": "left_out", "drive": "", "reason": "bad_label"},
        {"frame": "000002", "split": "val", "drive": "", "reason": ""},
        {"frame": "000003", "split": "left_out", "drive": "", "reason": "unreadable_image"},
        {"frame": "000004", "split": "left_out", "drive": "", "reason": "image_without_label"},
        {"frame": "000005", "split": "train", "drive": "", "reason": ""},
    ]


def test_a_drive_goes_to_one_split_whole():
    """Six frames of one car crop each, from drives A, A, B, B, C, C; 2 train and 2 val crops
    asked for: each drive fills one split, and a frame without crops from drive C follows it."""
    drives = {f"00000{i}": d for i, d in enumerate("AABBCC")} | {"000006": "C"}
    rows = [{"frame": f"00000{i}", "class": "Car"} for i in range(6)]
    cfg = SplitParams(seed=0, train_crops=2, val_crops=2, test_crops=None)
    split = split_rows(rows, CLASSES, cfg, drives)
    by_drive = {}
    for row in split:
        by_drive.setdefault(drives[row["frame"]], set()).add(row["split"])
    assert all(len(s) == 1 for s in by_drive.values())
    assert sorted(s for (s,) in by_drive.values()) == ["test", "train", "val"]
    frames = frame_split(split, [f"00000{i}" for i in range(7)], [], drives)
    last = frames[-1]
    assert last == {
        "frame": "000006",
        "split": next(iter(by_drive["C"])),
        "drive": "C",
        "reason": "",
    }
    with pytest.raises(ValueError, match="drives.csv names no drive for 1 frames, e.g. 000005"):
        split_rows(rows, CLASSES, cfg, {k: v for k, v in drives.items() if k != "000005"})


def test_a_split_size_is_a_count_or_a_share_of_the_crops():
    """Of 239 crops: 0.545 is 130.3, rounded to 130; 0.167 is 39.9, 40; a count stays as it is."""
    cfg = SplitParams(seed=0, train_crops=0.545, val_crops=0.167, test_crops=None)
    assert cfg.counts(239) == (130, 40, None)
    assert SplitParams(0, 130, 40, 0.25).counts(239) == (130, 40, 60)
    with pytest.raises(ValueError, match=r"split.val_crops: 1.5 is neither a crop count"):
        SplitParams(0, 130, 1.5, None).counts(239)
    rows = [{"frame": f"{i:06d}", "class": "Car"} for i in range(10)]
    split = split_rows(rows, CLASSES, SplitParams(0, 0.6, 0.2, None))
    assert Counter(r["split"] for r in split) == {"train": 6, "val": 2, "test": 2}


def test_a_crop_split_with_another_header_is_refused_by_name(tmp_path):
    """The frame split (data/frame_split.csv) passed where the crop split belongs: no column
    `crop`, so the file is named, not read as a split without crops."""
    good = tmp_path / "split.csv"
    good.write_text("crop,class,class_id,frame,line,split\nimages/a.png,Car,0,000000,1,test\n")
    assert read_crop_split(good) == [
        {
            "crop": "images/a.png",
            "class": "Car",
            "class_id": "0",
            "frame": "000000",
            "line": "1",
            "split": "test",
        }
    ]
    wrong = tmp_path / "frame_split.csv"
    wrong.write_text("frame,split,drive,reason\n000000,test,,\n")
    with pytest.raises(ValueError, match=r"frame_split.csv: header .* lacks \['crop', 'class'\]"):
        read_crop_split(wrong)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty.csv: header None lacks"):
        read_crop_split(tmp_path / "empty.csv")
    good.write_text("crop,class,frame,split\nimages/a.png,Car,000000,tset\n")
    with pytest.raises(ValueError, match=r"split.csv:2: unknown split 'tset'"):
        read_crop_split(good)
