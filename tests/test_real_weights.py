import hashlib
from types import SimpleNamespace

import pytest
import torch

from kitti_pipeline.classify import model_files
from kitti_pipeline.classify.models import build_classifier
from kitti_pipeline.pretrain import real_weights as weights


@pytest.fixture
def hub_dir(tmp_path):
    """An empty torch hub cache, so the tests never see a real one."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def test_file_names_come_from_the_torchvision_weights_api():
    assert weights.imagenet_file_name("resnet18") == "resnet18-f37072fd.pth"
    assert weights.imagenet_file_name("mobilenet_v2") == "mobilenet_v2-b0353104.pth"


def test_missing_weights_say_where_to_put_them(tmp_path, hub_dir):
    with pytest.raises(FileNotFoundError) as err:
        weights.find_imagenet_file("resnet18", tmp_path / "mine")
    message = str(err.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(tmp_path / "mine") in message and str(hub_dir / "checkpoints") in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message


def _fake_imagenet_file(folder, arch, monkeypatch):
    """An ImageNet-shaped state dict saved under a torchvision-style `name-<sha256[:8]>.pth`."""
    model = build_classifier(arch, 1000)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp.pth"
    torch.save(model.state_dict(), tmp)
    prefix = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    path = folder / f"{arch}-{prefix}.pth"
    tmp.rename(path)
    monkeypatch.setitem(
        weights.IMAGENET_WEIGHTS, arch, SimpleNamespace(url=f"https://example.invalid/{path.name}")
    )
    return model, path


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_loads_from_a_local_folder(tmp_path, hub_dir, monkeypatch, arch):
    model, path = _fake_imagenet_file(tmp_path / "mine", arch, monkeypatch)
    state = weights.load_imagenet_state(arch, tmp_path / "mine")
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_loads_from_the_hub_cache(tmp_path, hub_dir, monkeypatch):
    _, path = _fake_imagenet_file(hub_dir / "checkpoints", "resnet18", monkeypatch)
    assert weights.find_imagenet_file("resnet18", None) == path


def test_damaged_file_is_refused(tmp_path, hub_dir, monkeypatch):
    _, path = _fake_imagenet_file(tmp_path / "mine", "resnet18", monkeypatch)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="does not match .* the download is damaged"):
        weights.load_imagenet_state("resnet18", tmp_path / "mine")


def test_a_pinned_sha256_replaces_the_name_check(tmp_path, hub_dir):
    """A file under torchvision's name whose digest is not the name's prefix (a generated one)
    loads when its full sha256 is pinned, and a wrong pin is refused naming the param."""
    model = build_classifier("resnet18", 1000)
    path = tmp_path / "mine" / weights.imagenet_file_name("resnet18")
    path.parent.mkdir()
    torch.save(model.state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="does not match f37072fd in its name"):
        weights.load_imagenet_state("resnet18", path.parent)
    state = weights.load_imagenet_state("resnet18", path.parent, digest.upper())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="classifier.init.imagenet_sha256 pins 00ff for resnet18"):
        weights.load_imagenet_state("resnet18", path.parent, "00ff")


def test_init_file_round_trip_and_arch_check(tmp_path):
    state = {"w": torch.arange(3.0)}
    model_files.save_init(tmp_path / "init.pt", "resnet18", "synthetic", state, {"epochs": 1})
    data = model_files.load_init(tmp_path / "init.pt", "resnet18")
    assert torch.equal(data["state_dict"]["w"], state["w"]) and data["info"] == {"epochs": 1}
    with pytest.raises(ValueError, match="holds resnet18 weights, not mobilenet_v2"):
        model_files.load_init(tmp_path / "init.pt", "mobilenet_v2")


def test_fetch_weights_from_a_path_checks_the_sha256(tmp_path):
    path = tmp_path / "yolov3.weights"
    path.write_bytes(b"darknet")
    digest = hashlib.sha256(b"darknet").hexdigest()
    assert weights.fetch_weights(str(path), digest) == path
    assert weights.fetch_weights(str(path), None) == path
    with pytest.raises(ValueError, match="damaged"):
        weights.fetch_weights(str(path), "0" * 64)
    with pytest.raises(FileNotFoundError, match="other.weights not found"):
        weights.fetch_weights(str(tmp_path / "other.weights"), None)


def test_fetch_weights_from_a_url_uses_the_hub_cache(hub_dir):
    url = "http://127.0.0.1:9/files/yolov3.weights"  # nothing listens on port 9
    with pytest.raises(FileNotFoundError) as err:
        weights.fetch_weights(url, None)
    assert str(hub_dir / "checkpoints" / "yolov3.weights") in str(err.value)
    (hub_dir / "checkpoints" / "yolov3.weights").write_bytes(b"coco")
    found = weights.fetch_weights(url, hashlib.sha256(b"coco").hexdigest())
    assert found == hub_dir / "checkpoints" / "yolov3.weights"


@pytest.mark.parametrize("amp", [True, False])
def test_the_imagenet_stand_in_trains_with_the_params_autocast(monkeypatch, amp):
    from kitti_pipeline.core.params import ClassifierInitParams
    from kitti_pipeline.pretrain import imagenet

    seen = []
    real_fit = imagenet.fit

    def spy(model, regime, train, val, cfg, *args, **kwargs):
        seen.append(cfg.amp)
        return real_fit(model, regime, train, val, cfg, *args, **kwargs)

    monkeypatch.setattr(imagenet, "fit", spy)
    cfg = ClassifierInitParams("synthetic", None, None, 0, 20, 32, 1, 10, 0.001)
    state, info = imagenet.init_classifier_weights("mobilenet_v2", cfg, 3, "cpu", amp)
    assert seen == [amp] and info["epochs"] == 1
    assert "classifier.1.weight" not in state


def test_the_kitti_subset_is_never_committed():
    import subprocess

    from .conftest import ROOT

    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "data/kitti_subset/images/000000.png"], cwd=ROOT
    )
    assert ignored.returncode == 0
