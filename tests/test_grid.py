"""The grid file, its `-S` arguments, its collected table and the report's answers section."""

import pytest

from kitti_pipeline.experiments.grid import (
    grid_markdown,
    read_grid,
    set_args,
    studies_reached,
)
from kitti_pipeline.report.answers import answers_section

from .conftest import ROOT


def test_the_shipped_grid_sets_only_known_params():
    import yaml

    from kitti_pipeline.core.params import params_from_dict

    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, params in read_grid(ROOT / "experiments/questions.yaml").items():
        raw = yaml.safe_load((ROOT / "params.yaml").read_text())
        for key, value in params.items():
            *parents, last = key.split(".")
            node = raw
            for part in parents:
                node = node[part]
            assert last in node, f"{name}: {key}"
            node[last] = value
        params_from_dict(raw, name)  # every value has the params' type
        assert raw != base


@pytest.mark.parametrize(
    "text, message",
    [
        ("- a\n", "expected a mapping 'variants'"),
        ("variants: {}\n", "expected a mapping 'variants'"),
        ("variants:\n  'a b': {classifier.train.lr: 1}\n", "letters, digits"),
        ("variants:\n  a: 3\n", "'a': expected a mapping"),
        ("variants:\n  a: {lr: 1}\n", "'lr' is not a params key"),
    ],
)
def test_bad_grid_files_are_refused_by_name(tmp_path, text, message):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        read_grid(path)
    assert str(path) in str(err.value)


def test_set_args_write_values_as_dvc_reads_them():
    params = {"classifier.train.augment": ["flip", "crop"], "detector.train.lr": 0.001}
    assert set_args(params) == [
        "-S",
        "classifier.train.augment=[flip, crop]",
        "-S",
        "detector.train.lr=0.001",
    ]
    assert set_args({"classifier.train.balance": "loss"}) == ["-S", "classifier.train.balance=loss"]


def test_a_variant_reaches_the_studies_of_its_params():
    assert studies_reached({"classifier.train.lr": 1}) == {"classifier"}
    assert studies_reached({"detector.train.lr": 1, "classifier.seeds": [0]}) == {
        "classifier",
        "detector",
    }
    assert studies_reached({"split.seed": 1}) == {"classifier", "detector"}


def cell(run, figure, a, b, low, high, study="classifier"):
    return {
        "study": study,
        "run": run,
        "figure": figure,
        "a": a,
        "b": b,
        "difference": b - a,
        "low": low,
        "high": high,
        "resolved": low > 0 or high < 0,
    }


GRID = {
    "grid": "questions.yaml",
    "baseline": "0123456789abcdef",
    "profile": "demo",
    "resamples": 1000,
    "variants": {
        "balance-loss": {
            "rows": [
                cell("resnet18 scratch", "mCA", 0.80, 0.85, -0.01, 0.11),
                cell("resnet18 scratch", "acc_Cyclist", 0.50, 0.70, 0.05, 0.35),
                cell("mobilenet_v2 finetune", "mCA", 0.90, 0.95, 0.01, 0.09),
                cell("mobilenet_v2 finetune", "acc_Cyclist", 0.60, 0.65, -0.10, 0.20),
            ]
        },
        "detector-sgd": {
            "rows": [
                cell("transfer", "AP50", 0.60, 0.50, -0.2, -0.01, "detector"),
                cell("scratch", "AP50", 0.40, 0.45, -0.02, 0.12, "detector"),
            ]
        },
        "lr-cosine": {"missing": "no experiment"},
    },
}


def test_answers_take_the_best_arm_and_say_what_is_resolved():
    text = "\n".join(answers_section(GRID, "demo"))
    assert "best arm is mobilenet_v2 finetune (test mCA 0.900)" in text
    assert "| balance-loss | 0.900 -> 0.950 | +0.050 [+0.010, +0.090], resolved |" in text
    assert "A resolved gain in mCA: balance-loss." in text
    assert (
        "balance-loss, Cyclist accuracy of the 2 arms: rose beyond the noise in resnet18 scratch; "
        "fell beyond it in none." in text
    )
    assert "| detector-sgd | 0.600 -> 0.500 | -0.100 [-0.200, -0.010], resolved |" in text
    assert "No variant raised AP@0.5 beyond the noise" in text
    assert "Not collected: lr-cosine." in text
    assert text.count("One seed per run") == 2
    three = "\n".join(answers_section(GRID, "demo", (3, 1)))
    assert three.count("One seed per run") == 1 and "detector.seeds: [0, 1, 2]" in three


def test_answers_of_another_profile_are_not_shown():
    text = "\n".join(answers_section(GRID, "real"))
    assert "collected on profile `demo`" in text and "best arm" not in text
    assert "kitti-grid run" in "\n".join(answers_section(None, "demo"))


def test_the_collected_table_has_a_row_per_variant_and_run():
    text = grid_markdown(GRID)
    assert "| balance-loss | resnet18 scratch | 0.800 |  | 0.500 |" in text
    assert "**+0.200 [+0.050, +0.350]**" in text  # resolved: bold
    assert "| detector-sgd | transfer | 0.600 |" in text
    assert "- lr-cosine: no experiment" in text


def test_experiments_are_found_on_the_commits_they_ran_on(tmp_path):
    import subprocess

    from kitti_pipeline.experiments.grid import experiment_baselines

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True
        ).stdout.strip()

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "a")
    first = git("rev-parse", "HEAD")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "b")
    second = git("rev-parse", "HEAD")
    # DVC's layout: refs/exps/<commit[:2]>/<commit[2:]>/<name>, pointing at the experiment
    for base, name in ((first, "lr-cosine"), (second, "lr-cosine"), (second, "balance-loss")):
        git("update-ref", f"refs/exps/{base[:2]}/{base[2:]}/{name}", second)
    git("update-ref", "refs/exps/celery/stash", second)  # the queue's, not an experiment
    found = {name: sorted(commits) for name, commits in experiment_baselines(tmp_path).items()}
    assert found == {"lr-cosine": sorted([first, second]), "balance-loss": [second]}


def test_frames_that_a_queued_experiment_would_not_get_are_refused(tmp_path):
    import subprocess

    from kitti_pipeline.experiments.grid import check_frames_travel

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("data: {frames: data/kitti_subset}\n")
    (tmp_path / "data/kitti_subset").mkdir(parents=True)
    with pytest.raises(ValueError, match="dvc add data/kitti_subset"):
        check_frames_travel(tmp_path)
    (tmp_path / "data/kitti_subset.dvc").write_text("outs:\n- path: kitti_subset\n")
    check_frames_travel(tmp_path)  # tracked by DVC
    (tmp_path / "params.yaml").write_text("data: {frames: data/synthetic}\n")
    (tmp_path / "dvc.lock").write_text(
        "stages:\n  synthesize:\n    outs:\n    - path: data/synthetic\n"
    )
    check_frames_travel(tmp_path)  # a stage's output
