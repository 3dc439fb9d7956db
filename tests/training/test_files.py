"""Images read from disk as training goes: the loader shards an epoch over processes, and
fit_files trains from files that are never held in memory at once, resuming exactly."""

import pytest
import torch

from backfill_lib.data import folders
from backfill_lib.data.files import ImageFiles
from backfill_lib.models.embedding import EmbeddingModel
from backfill_lib.storage import load_torch
from backfill_lib.training.files import fit_files, loader
from backfill_lib.training.objectives import ClassifierObjective
from backfill_lib.training.trainer import TrainConfig
from tests.conftest import TREE_CLASSES

STREAMING = TrainConfig(arch="cnn-small", embed_dim=16, epochs=3, batch_size=30, lr=0.05)


def test_an_epoch_is_split_over_the_processes_once(image_tree, monkeypatch):
    files = ImageFiles.from_folder(image_tree, "test", image_size=8, train=False)
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


def tree_model() -> tuple[EmbeddingModel, ClassifierObjective]:
    """A seeded small model for ``image_tree``'s classes, and its objective."""
    torch.manual_seed(0)
    model = EmbeddingModel("cnn-small", 16, TREE_CLASSES, 3, [0.5] * 3, [0.25] * 3, 2.0)
    return model, ClassifierObjective()


@pytest.mark.slow
def test_fit_files_learns_without_decoding_the_folder(image_tree, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("the whole folder was decoded into memory")

    monkeypatch.setattr(folders, "_decode", no_decoding)
    files = ImageFiles.from_folder(image_tree, "train", image_size=16, train=True)
    history = fit_files(*tree_model(), files, STREAMING, workers=1)
    assert len(history) == 3 and history[-1] < 0.7 * history[0]


@pytest.mark.slow
def test_an_interrupted_streaming_run_resumes_to_the_same_weights(image_tree, tmp_path):
    files = ImageFiles.from_folder(image_tree, "train", image_size=16, train=True)
    reference, objective = tree_model()
    fit_files(reference, objective, files, STREAMING, workers=1)

    class Interrupt(ClassifierObjective):
        calls = 0

        def forward(self, *args):
            Interrupt.calls += 1
            if Interrupt.calls > 6:  # 4 steps per epoch: dies in the second epoch
                raise KeyboardInterrupt
            return super().forward(*args)

    checkpoint = tmp_path / "run.pt"
    model, _ = tree_model()
    with pytest.raises(KeyboardInterrupt):
        fit_files(model, Interrupt(), files, STREAMING, checkpoint, {"run": 1}, workers=1)
    assert load_torch(tmp_path / "run.partial.pt")["epoch"] == 1
    resumed, objective = tree_model()
    fit_files(resumed, objective, files, STREAMING, checkpoint, {"run": 1}, workers=1)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
