import os
import stat
import subprocess

import pytest

from kitti_pipeline.core.files import atomic_dir, atomic_path, write_text
from kitti_pipeline.core.version import git_version


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_atomic_outputs_get_the_modes_of_ordinary_files(tmp_path, mask):
    old = os.umask(mask)
    try:
        (tmp_path / "plain.txt").write_text("x")
        (tmp_path / "plain").mkdir()
        write_text(tmp_path / "report.md", "x")
        with atomic_path(tmp_path / "model.pt") as tmp:
            tmp.write_bytes(b"x")
        with atomic_dir(tmp_path / "pictures") as tmp:
            (tmp / "a.png").write_bytes(b"x")
    finally:
        os.umask(old)

    def mode(name):
        return stat.S_IMODE((tmp_path / name).stat().st_mode)

    assert mode("plain.txt") == 0o666 & ~mask
    assert mode("report.md") == mode("model.pt") == mode("plain.txt")
    assert mode("pictures") == mode("plain") == 0o777 & ~mask


def test_a_failed_block_leaves_neither_the_target_nor_a_temporary(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_the_code_version_is_dirty_for_code_changes_only(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    for name in ("kitti_pipeline/a.py", "stages/s.py", "metrics/m.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("1\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    clean = git_version(tmp_path)
    assert len(clean) == 12 and "dirty" not in clean

    (tmp_path / "metrics/m.json").write_text("2\n")  # a stage's output
    assert git_version(tmp_path) == clean
    (tmp_path / "stages/new.py").write_text("")
    assert git_version(tmp_path) == f"{clean}-dirty"
    (tmp_path / "stages/new.py").unlink()
    (tmp_path / "kitti_pipeline/a.py").write_text("2\n")
    assert git_version(tmp_path) == f"{clean}-dirty"
