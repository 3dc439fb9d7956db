"""A real-image pack (pipeline/pack.py, `backfill pack`) stores what the experiment computes:
the embeddings to fp16 precision, the same uncertainty order, the mAPs it records, and
pictures of the test images; a damaged or foreign file is named. On a pack,
PackExperiment gives the notebooks what Experiment gives them, to fp16 precision."""

import dataclasses

import numpy as np
import pytest
import torch

from backfill_lib.cli import main
from backfill_lib.core.orders import make_order
from backfill_lib.explorer import BackfillExplorer
from backfill_lib.pipeline.config import default_config
from backfill_lib.pipeline.experiment import Experiment
from backfill_lib.pipeline.notebook import notebook_experiment
from backfill_lib.pipeline.pack import build_pack, load_pack, pack_path, save_pack
from backfill_lib.pipeline.pack_experiment import PackExperiment

METHODS = ("new/old", "drm", "bct", "rt", "rt+mc")


@pytest.fixture(scope="module")
def experiment(cache):
    return Experiment(default_config("digits", methods=METHODS), cache_dir=cache)


@pytest.fixture(scope="module")
def pack_file(experiment, tmp_path_factory):
    """The digits models packed, BCT's too, with every training image (at most 1,000 a
    class) so that psi is fitted on what the experiment fits it on."""
    path = tmp_path_factory.mktemp("pack") / "digits.npz"
    pack = build_pack(experiment, ("old", "new", "bct"), 1000, thumbnails_per_class=10)
    return save_pack(pack, path)


@pytest.fixture(scope="module")
def packed(pack_file):
    return load_pack(pack_file)


@pytest.mark.slow
def test_the_pack_holds_the_experiment_s_embeddings_order_and_mAPs(experiment, packed):
    for name in ("old", "new"):
        cosine = (packed.test[name] * experiment.embeddings(name)).sum(1)
        assert cosine.min() > 0.9999  # fp16, renormalised
    train_labels = experiment.data.training_data("new")[1]
    torch.testing.assert_close(packed.train_labels, train_labels)
    torch.testing.assert_close(packed.labels, experiment.data.test_labels)
    ours = make_order("uncertainty", len(packed.labels), uncertainty=packed.uncertainty)
    np.testing.assert_array_equal(ours, experiment.order("uncertainty"))
    assert experiment.retrieval_mAP("bct", "old") == pytest.approx(
        packed.meta["mAP"]["bct/old"], abs=1e-3
    )
    results = experiment.results("random")["methods"]
    for name in ("old/old", "new/new"):
        assert packed.meta["mAP"][name] == pytest.approx(results[name]["final_mAP"], abs=1e-3)
    assert packed.meta["class_names"] == list(experiment.data.dataset.class_names)


@pytest.mark.slow
def test_the_thumbnails_are_the_test_images(experiment, packed):
    images = experiment.data.test_data[0][torch.from_numpy(packed.thumbnail_items)]
    expected = images.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).numpy().astype(float)
    assert packed.thumbnails.shape == expected.shape
    assert np.abs(packed.thumbnails - expected).mean() < 8  # JPEG at quality 90
    counts = np.bincount(packed.labels.numpy()[packed.thumbnail_items])
    assert (counts == 10).all()


def test_a_foreign_or_damaged_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="backfill pack"):
        load_pack(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", old=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="is not a pack: it lacks"):
        load_pack(tmp_path / "other.npz")


@pytest.mark.slow
def test_arrays_that_disagree_are_refused_before_writing(packed, tmp_path):
    shorter = dataclasses.replace(packed, test={**packed.test, "new": packed.test["new"][:-1]})
    with pytest.raises(ValueError, match=r"test\[new\] has"):
        save_pack(shorter, tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()


def test_a_shipped_pack_is_named_by_its_name_and_a_wrong_name_lists_them(tmp_path, monkeypatch):
    monkeypatch.setattr("backfill_lib.pipeline.pack.SHIPPED_PACKS", tmp_path)
    (tmp_path / "tiny.npz").write_bytes(b"")
    assert pack_path("tiny") == tmp_path / "tiny.npz"
    assert pack_path(tmp_path / "tiny.npz") == tmp_path / "tiny.npz"
    with pytest.raises(FileNotFoundError, match=r"nor a pack the library ships \(tiny\)"):
        pack_path("other")
    with pytest.raises(FileNotFoundError, match="no such pack file"):
        pack_path("somewhere/tiny")  # a path is not a name


def test_backfill_pack_wants_an_npz_file(tmp_path, capsys):
    assert main(["pack", "--out", str(tmp_path / "pack.txt")]) == 2
    assert "an .npz file" in capsys.readouterr().err


@pytest.mark.slow
def test_the_pack_s_experiment_gives_the_experiment_s_results(experiment, pack_file):
    packed = PackExperiment(pack_file, methods=METHODS)
    for order in ("random", "uncertainty"):
        ours, theirs = packed.results(order), experiment.results(order)
        assert ours["gallery_size"] == theirs["gallery_size"]
        for method in ("old/old", "new/new", *METHODS):
            assert ours["methods"][method]["auc_mAP"] == pytest.approx(
                theirs["methods"][method]["auc_mAP"], abs=0.005
            ), (order, method)
        assert ours["differences"].keys() == theirs["differences"].keys()
    rt = packed.results("random")["methods"]["rt"]
    assert rt["final_mAP"] == packed.results("random")["methods"]["new/new"]["final_mAP"]
    labels = packed.data.training_data("new")[1]  # what the exercises' solutions read
    expected = experiment.data.training_data("new")[1]  # every one: 1,000 a class packed
    assert torch.equal(torch.bincount(labels), torch.bincount(expected))


@pytest.mark.slow
def test_notebooks_and_the_explorer_read_a_pack(pack_file, monkeypatch):
    monkeypatch.setenv("BACKFILL_DATASET", f"pack:{pack_file}")
    packed = notebook_experiment(methods=("drm", "rt"))
    assert isinstance(packed, PackExperiment) and packed.config.methods == ("drm", "rt")
    monkeypatch.delenv("BACKFILL_DATASET")  # a notebook's own default, pictured for the explorer
    pictured = notebook_experiment(("drm",), default=f"pack:{pack_file}", pictured=True)
    assert len(pictured.data.test_labels) == 10 * 10
    monkeypatch.setenv("BACKFILL_DATASET", "digits")  # the environment decides over it
    assert isinstance(notebook_experiment(("drm",), default=f"pack:{pack_file}"), Experiment)
    pictured = PackExperiment(pack_file, methods=("drm", "rt+mc"), pictured=True)
    assert len(pictured.data.test_labels) == 10 * 10
    explorer = BackfillExplorer(pictured, top_k=4)
    assert explorer.view.value.count("data:image/png;base64,") == 2 + 5  # every tile pictured
    with pytest.raises(ValueError, match="backfill pack --models advbct"):
        PackExperiment(pack_file, methods=("advbct",))
