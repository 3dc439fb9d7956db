"""The artefact store's keys: a model that two settings train on the same images is one
checkpoint, and each setting embeds its own images with it."""

from dataclasses import replace

import pytest
import torch

from backfill_lib.pipeline import artefacts as artefacts_module
from backfill_lib.pipeline.config import default_config
from backfill_lib.pipeline.experiment import Experiment
from backfill_lib.pipeline.reproduce import setting_config


@pytest.mark.parametrize("validation", [False, True])
def test_a_model_trained_on_the_same_images_in_two_settings_has_one_checkpoint(
    tmp_path, validation
):
    """extended-data's new model trains on every image of every class, as extended-class's
    does: one cache key, while its old model, its compatible models (other old model) and
    its embeddings (other query/gallery set) stay its own."""
    artefacts = {}
    for name in ("extended-class", "extended-data", "open-class"):
        config = replace(setting_config("digits", "cpu", name), validation=validation)
        artefacts[name] = Experiment(config, cache_dir=tmp_path).artefacts
    data = {name: a.data for name, a in artefacts.items()}
    assert [d.training_setting("new") for d in data.values()] == [
        "extended-class",
        "extended-class",
        "open-class",
    ]
    assert [d.training_setting("old") for d in data.values()] == list(data)
    path = {name: a.checkpoint_path("new") for name, a in artefacts.items()}
    assert path["extended-data"] == path["extended-class"] != path["open-class"]
    old = {name: a.checkpoint_path("old") for name, a in artefacts.items()}
    assert len(set(old.values())) == 3


def test_a_shared_new_model_is_trained_once_and_embeds_each_settings_images(tmp_path):
    ext, data = (
        Experiment(
            replace(setting_config("digits", "cpu", name, epochs=1), limit_images=64),
            cache_dir=tmp_path,
        ).artefacts
        for name in ("extended-class", "extended-data")
    )
    assert data.model_key("new") == ext.model_key("new")
    assert len(list((tmp_path / "checkpoints").glob("new-*.pt"))) == 1
    assert torch.equal(ext.embeddings("new"), data.embeddings("new"))  # both test every class
    key = ext.model_key("new")
    assert {p.name for p in (tmp_path / "embeddings").glob("new-*")} == {
        f"new-{key}-test.pt",
        f"new-{key}-test-extended-data.pt",
    }


def test_the_cache_keys_of_the_default_digits_models_do_not_move(tmp_path):
    """A checkpoint's name is the hash of what determines it: a refactor that moves it (a
    renamed config field, another dataset fingerprint) would silently retrain every cached
    model and could change every committed number. These are the keys of the committed
    digits figures; change them only together with rerun figures."""
    artefacts = Experiment(default_config("digits"), cache_dir=tmp_path).artefacts
    assert artefacts.checkpoint_path("old").name == "old-8e3238ca7079687c.pt"
    assert artefacts.checkpoint_path("new").name == "new-6d02dc8db7b9b357.pt"


def test_a_model_another_process_trained_meanwhile_is_reported_loaded(
    tmp_path, capsys, monkeypatch
):
    """Two runs on one cache: the second waits on the checkpoint's lock while the first
    trains, then loads it, and says so (it used to say "trained": it looked before waiting)."""
    config = default_config("digits", methods=())
    config = replace(config, old=replace(config.old, epochs=1))
    first, second = (Experiment(config, cache_dir=tmp_path).artefacts for _ in range(2))
    real = artefacts_module.train_or_load

    def while_waiting(*args, **kwargs):
        monkeypatch.setattr(artefacts_module, "train_or_load", real)
        first.model("old")  # the other process trains it meanwhile
        capsys.readouterr()
        return real(*args, **kwargs)

    monkeypatch.setattr(artefacts_module, "train_or_load", while_waiting)
    second.model("old")
    out = capsys.readouterr().out
    assert "old: loaded from" in out and "trained" not in out
