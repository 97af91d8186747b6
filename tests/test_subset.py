import json

import pytest
from PIL import Image

from kitti_pipeline.data.crops import DatasetError
from kitti_pipeline.data.labels import LabelError
from kitti_pipeline.data.subset import main, select_frames

CAR = "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n"
PED = "Pedestrian 0.00 1 0.21 423.17 173.67 433.17 224.03 1.60 0.38 0.30 -5.99 1.85 32.92 0.03\n"
DONTCARE = "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10\n"


def make_training(root, count=5):
    (root / "image_2").mkdir(parents=True)
    (root / "label_2").mkdir()
    for i in range(count):
        Image.new("RGB", (1242, 375), (90, 90, 90)).save(root / "image_2" / f"{i:06d}.png")
        (root / "label_2" / f"{i:06d}.txt").write_text(CAR + PED + DONTCARE)
    return root


def test_select_frames_is_seeded_and_sorted():
    stems = [f"{i:06d}" for i in range(100)]
    a = select_frames(stems, 10, seed=3)
    assert a == select_frames(list(reversed(stems)), 10, seed=3)
    assert a == sorted(a) and len(set(a)) == 10
    with pytest.raises(ValueError, match="asked for 101 frames, but only 100"):
        select_frames(stems, 101, seed=0)


def test_builds_the_study_layout(tmp_path):
    training = make_training(tmp_path / "training")
    out = tmp_path / "subset"
    main(["--training", str(training), "--out", str(out), "--frames", "3", "--seed", "1"])
    info = json.loads((out / "subset.json").read_text())
    assert len(info["frames"]) == 3
    assert info["ignored"] == {"DontCare": 3}
    assert (out / "classes.txt").read_text() == "Car\nPerson\nCyclist\n"
    for stem in info["frames"]:
        assert (out / "images" / f"{stem}.png").exists()
        assert (out / "label_2" / f"{stem}.txt").read_text() == CAR + PED + DONTCARE
        assert (out / "labels" / f"{stem}.txt").read_text() == (
            "0 0.483547 0.497933 0.021828 0.071440\n1 0.344742 0.530267 0.008052 0.134293\n"
        )


def test_unpaired_kitti_file_is_an_error(tmp_path):
    training = make_training(tmp_path / "training")
    (training / "image_2" / "000002.png").unlink()
    with pytest.raises(DatasetError, match=r"label_2/000002\.txt: no matching image"):
        main(["--training", str(training), "--out", str(tmp_path / "o"), "--frames", "2"])


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda path: path.write_bytes(path.read_bytes()[:2000]), "cannot read image"),
        (lambda path: path.write_text("not an image"), "cannot read image"),
    ],
)
def test_an_unreadable_image_is_refused_by_name(tmp_path, damage, problem):
    training = make_training(tmp_path / "training", count=3)
    Image.effect_noise((1242, 375), 50).convert("RGB").save(training / "image_2" / "000001.png")
    damage(training / "image_2" / "000001.png")
    with pytest.raises(DatasetError, match=rf"image_2/000001\.png: {problem}"):
        main(["--training", str(training), "--out", str(tmp_path / "o"), "--frames", "3"])
    assert not (tmp_path / "o").exists()


def test_a_nan_box_is_refused_at_its_kitti_line(tmp_path):
    training = make_training(tmp_path / "training", count=2)
    (training / "label_2" / "000001.txt").write_text(CAR + CAR.replace("587.01", "nan"))
    with pytest.raises(LabelError, match=r"label_2/000001\.txt:2: x1 'nan' is not a finite"):
        main(["--training", str(training), "--out", str(tmp_path / "o"), "--frames", "2"])


def test_skip_leaves_out_the_frames_with_bad_input_and_lists_them(tmp_path, capsys):
    training = make_training(tmp_path / "training", count=3)
    (training / "label_2" / "000001.txt").write_text(CAR + CAR.replace("587.01", "nan"))
    (training / "image_2" / "000002.png").write_text("not an image")
    out = tmp_path / "subset"
    args = ["--training", str(training), "--out", str(out), "--frames", "3"]
    with pytest.raises(LabelError, match=r"000001\.txt:2: x1 'nan'"):
        main(args)  # the default stops at the first
    main([*args, "--on-bad-input", "skip"])
    info = json.loads((out / "subset.json").read_text())
    assert info["frames"] == ["000000"]
    assert [s["frame"] for s in info["skipped"]] == ["000001", "000002"]
    assert info["skipped"][0]["problem"].endswith("000001.txt:2: x1 'nan' is not a finite number")
    assert "image_2/000002.png: cannot read image" in info["skipped"][1]["problem"]
    # Nothing of a skipped frame is written; the good one is whole.
    assert sorted(p.name for p in (out / "images").iterdir()) == ["000000.png"]
    assert sorted(p.name for p in (out / "label_2").iterdir()) == ["000000.txt"]
    assert (out / "labels/000000.txt").read_text().count("\n") == 2
    assert info["ignored"] == {"DontCare": 1}
    assert "2 of the 3 frames drawn left out for bad input" in capsys.readouterr().out


def write_mapping(folder, rand: str, drives: list[str]):
    """The devkit's mapping/ folder: train_rand.txt and train_mapping.txt (date drive frame)."""
    folder.mkdir()
    (folder / "train_rand.txt").write_text(rand + "\n")
    (folder / "train_mapping.txt").write_text(
        "".join(f"2011_09_26 {d} {i:010d}\n" for i, d in enumerate(drives))
    )
    return folder


def test_the_mapping_gives_each_frame_its_drive(tmp_path):
    """Frame i takes line train_rand[i] (1-based) of train_mapping.txt: 3,1,2,1,3,2 over
    drives A, B, C gives C, A, B, A, C, B."""
    training = make_training(tmp_path / "training", count=6)
    mapping = write_mapping(tmp_path / "mapping", "3,1,2,1,3,2", ["drive_A", "drive_B", "drive_C"])
    out = tmp_path / "subset"
    main(
        [
            "--training",
            str(training),
            "--out",
            str(out),
            "--frames",
            "all",
            "--mapping",
            str(mapping),
        ]
    )
    rows = (out / "drives.csv").read_text().splitlines()
    assert rows == [
        "frame,drive",
        "000000,drive_C",
        "000001,drive_A",
        "000002,drive_B",
        "000003,drive_A",
        "000004,drive_C",
        "000005,drive_B",
    ]
    assert json.loads((out / "subset.json").read_text())["drives"] == 3


def test_a_mapping_entry_past_the_mapping_is_refused_by_name(tmp_path):
    training = make_training(tmp_path / "training", count=2)
    mapping = write_mapping(tmp_path / "mapping", "1,4", ["drive_A", "drive_B"])
    with pytest.raises(ValueError, match=r"train_rand.txt: entry 2 \('4'\) is not a line of"):
        main(["--training", str(training), "--out", str(tmp_path / "o"), "--mapping", str(mapping)])
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("count", ["-5", "0", "five"])
def test_frames_must_be_a_positive_count_or_all(tmp_path, count, capsys):
    training = make_training(tmp_path / "training", count=2)
    with pytest.raises(SystemExit):
        main(["--training", str(training), "--out", str(tmp_path / "o"), "--frames", count])
    assert "expected a positive number of frames or 'all'" in capsys.readouterr().err
