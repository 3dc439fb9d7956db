"""Images read from disk as training goes: the loader shards an epoch over processes, and
fit_files trains from files that are never held in memory at once, resuming exactly."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from backfill_lib import folders
from backfill_lib.data import load_dataset
from backfill_lib.models import EmbeddingModel
from backfill_lib.storage import load_torch
from backfill_lib.streaming import ImageFiles, fit_files, loader
from backfill_lib.training import ClassifierObjective, TrainConfig

CLASSES, PER_CLASS = 3, 40
CONFIG = TrainConfig(arch="cnn-small", embed_dim=16, epochs=3, batch_size=30, lr=0.05)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """48 px images, each class a colour plus noise; a few are not square."""
    root = tmp_path_factory.mktemp("tree")
    rng = np.random.default_rng(0)
    colours = rng.integers(40, 215, (CLASSES, 3))
    for split in ("train", "test"):
        for c in range(CLASSES):
            (root / split / f"c{c}").mkdir(parents=True)
            for i in range(PER_CLASS):
                shape = (48, 64 if i % 5 == 0 else 48, 3)
                pixels = np.clip(colours[c] + rng.normal(0, 30, shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / f"c{c}" / f"{i}.png")
    return root


def test_files_decode_on_demand_to_the_requested_size(tree):
    files = ImageFiles.from_folder(tree, "test", image_size=16, train=False)
    assert len(files) == CLASSES * PER_CLASS and files.class_names == ["c0", "c1", "c2"]
    assert all(isinstance(path, type(tree)) for path, _ in files.items)  # paths, not pixels
    image, label = files[PER_CLASS + 5]  # a 64x48 image: resized, centre-cropped
    assert image.dtype == torch.uint8 and image.shape == (3, 16, 16) and label == 1
    assert torch.equal(files[7][0], files[7][0])  # evaluation transforms are deterministic
    memory = load_dataset(f"imagefolder:{tree}", image_size=16)
    assert torch.equal(files.labels, memory.test_labels)  # the same files, the same labels


def test_an_epoch_is_split_over_the_processes_once(tree, monkeypatch):
    files = ImageFiles.from_folder(tree, "test", image_size=8, train=False)
    everything = sorted(files[i][0].flatten().tolist() for i in range(len(files)))
    seen = []
    for rank in (0, 1):
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", str(rank))
        for images, _ in loader(files, batch_size=20, epoch=3, seed=0, workers=1):
            assert images.shape == (10, 3, 8, 8)  # half of the global batch each
            seen += [image.flatten().tolist() for image in images]
    assert sorted(seen) == everything  # 120 images, 6 global batches: each exactly once
    with pytest.raises(ValueError, match="divisible by the number of processes"):
        loader(files, batch_size=21, epoch=0, seed=0)


def build(files):
    torch.manual_seed(0)
    model = EmbeddingModel("cnn-small", 16, CLASSES, 3, [0.5] * 3, [0.25] * 3, 2.0)
    return model, ClassifierObjective()


@pytest.mark.slow
def test_fit_files_learns_without_decoding_the_folder(tree, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("the whole folder was decoded into memory")

    monkeypatch.setattr(folders, "_decode", no_decoding)
    files = ImageFiles.from_folder(tree, "train", image_size=16, train=True)
    history = fit_files(*build(files), files, CONFIG, workers=1)
    assert len(history) == 3 and history[-1] < 0.7 * history[0]


@pytest.mark.slow
def test_an_interrupted_streaming_run_resumes_to_the_same_weights(tree, tmp_path):
    files = ImageFiles.from_folder(tree, "train", image_size=16, train=True)
    reference, objective = build(files)
    fit_files(reference, objective, files, CONFIG, workers=1)

    class Interrupt(ClassifierObjective):
        calls = 0

        def forward(self, *args):
            Interrupt.calls += 1
            if Interrupt.calls > 6:  # 4 steps per epoch: dies in the second epoch
                raise KeyboardInterrupt
            return super().forward(*args)

    checkpoint = tmp_path / "run.pt"
    model, _ = build(files)
    with pytest.raises(KeyboardInterrupt):
        fit_files(model, Interrupt(), files, CONFIG, checkpoint, {"run": 1}, workers=1)
    assert load_torch(tmp_path / "run.partial.pt")["epoch"] == 1
    resumed, objective = build(files)
    fit_files(resumed, objective, files, CONFIG, checkpoint, {"run": 1}, workers=1)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


@pytest.mark.slow
def test_a_stream_dataset_runs_the_demo_without_decoding_the_folder(tree, tmp_path, monkeypatch):
    """``--dataset stream:PATH``: models, embeddings, psi and curves from files on disk."""
    from backfill_lib.cli import main

    def no_decoding(*args, **kwargs):
        raise AssertionError("the whole folder was decoded into memory")

    monkeypatch.setattr(folders, "_decode", no_decoding)
    args = ["demo", "--dataset", f"stream:{tree}", "--methods", "drm", "rt", "--epochs", "1"]
    out = tmp_path / "out"
    assert main([*args, "--cache", str(tmp_path / "cache"), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["gallery_size"] == CLASSES * PER_CLASS
    new_new = results["methods"]["new/new"]["final_mAP"]
    assert results["methods"]["rt"]["final_mAP"] == new_new  # no regret, from files too


@pytest.mark.slow
@pytest.mark.parametrize(("profile", "arch"), [("gpu", "resnet18"), ("imagenet", "resnet50")])
def test_the_large_profiles_smoke_test_on_a_cpu(tree, tmp_path, capsys, profile, arch):
    """``--limit-images`` and ``--epochs 1``: a profile's models run end to end in seconds."""
    from backfill_lib.cli import main

    args = ["train", "--dataset", f"stream:{tree}", "--profile", profile, "--model", "old"]
    assert main([*args, "--limit-images", "32", "--epochs", "1", "--cache", str(tmp_path)]) == 0
    assert "old: trained" in capsys.readouterr().out
    (checkpoint,) = (tmp_path / "checkpoints").glob("old-*.pt")
    state = load_torch(checkpoint)
    assert state["config"]["train"]["arch"].startswith(arch) and len(state["history"]) == 1
    if profile == "imagenet":  # the standard stem: 7x7, stride 2, at 224 px
        assert state["model"]["backbone.conv1.weight"].shape[-1] == 7
        assert state["config"]["image_size"] == 224
