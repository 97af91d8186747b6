from kitti_pipeline.report.tables import detector_table


def checkpoint(epoch, ap, levels=True):
    car = {
        "precision": 0.8,
        "recall": 0.5,
        "AP50": ap,
        "F1": 2 * 0.8 * 0.5 / 1.3,
        "AP50_95": 0.3,
        "kitti_AP40_iou70": 0.25,
    }
    if levels:
        car["kitti_AP40"] = {"easy": 0.4, "moderate": 0.3, "hard": 0.2}
    return {"epoch": epoch, "Car": car}


def test_detector_table_by_hand():
    runs = {
        "transfer": {"best": checkpoint(15, 0.71), "last": checkpoint(20, 0.7)},
        "scratch": {"best": checkpoint(20, 0.5, False), "last": checkpoint(20, 0.5, False)},
    }
    lines = detector_table(runs, "Car").splitlines()
    assert lines[0] == "| Transfer Learning | Checkpoint | Epoch | Precision | Recall | AP | F1 |"
    assert lines[2] == "| Yes | best | 15 | 0.800 | 0.500 | 0.710 | 0.615 |"
    assert lines[5] == "| No | last | 20 | 0.800 | 0.500 | 0.500 | 0.615 |"
    assert "| Yes | last | 0.300 | 0.250 | 0.400 | 0.300 | 0.200 |" in lines
    assert "| No | best | 0.300 | 0.250 | – | – | – |" in lines
