"""The cache of trained models: one checkpoint per configuration, trained once (even by two
processes at once), then loaded; refused when it belongs to another configuration."""

from dataclasses import replace

import pytest
import torch

from backfill_lib.storage import ConfigMismatchError, load_torch, save_torch
from backfill_lib.training.checkpoints import train_or_load
from backfill_lib.training.compute import numerics
from tests.conftest import SMALL_CNN, fresh_model

CONCURRENT_TRAINER = """
import os, pathlib, sys, time
from dataclasses import replace
import torch
from backfill_lib.data.load import load_dataset
from backfill_lib.training import checkpoints
from tests.conftest import SMALL_CNN, fresh_model

cache, log, ready = (pathlib.Path(a) for a in sys.argv[1:])
real_fit = checkpoints.fit

def counting_fit(*args, **kwargs):
    with open(log, "a") as fh:
        fh.write("trained\\n")
    time.sleep(2)  # long enough for the other process to look for the checkpoint
    return real_fit(*args, **kwargs)

checkpoints.fit = counting_fit
torch.set_num_threads(1)
ds = load_dataset("digits")
(ready / str(os.getpid())).touch()
while len(list(ready.iterdir())) < 2:  # start both at once
    time.sleep(0.05)
model = checkpoints.train_or_load(
    "old", {"k": "concurrent"}, *fresh_model(ds), ds.train_images[:512], ds.train_labels[:512],
    replace(SMALL_CNN, epochs=2), cache,
).model
print(sum(float(t.double().sum()) for t in model.state_dict().values()))
"""


@pytest.mark.slow
def test_two_processes_on_one_cache_train_a_model_once(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "ready").mkdir()
    args = [str(tmp_path / "cache"), str(tmp_path / "log"), str(tmp_path / "ready")]
    root = Path(__file__).resolve().parents[2]
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_TRAINER, *args],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert (tmp_path / "log").read_text().splitlines() == ["trained"]
    assert outputs[0] == outputs[1]  # the second process loaded the first one's model


def test_checkpoints_are_cached_by_config(digits, tmp_path, monkeypatch):
    data = (digits.train_images, digits.train_labels)
    cfg = replace(SMALL_CNN, epochs=1)
    first = train_or_load("old", {"k": 1}, *fresh_model(digits), *data, cfg, tmp_path)
    assert first.trained_here

    def no_training(*a, **k):
        raise AssertionError("a cached configuration was retrained")

    monkeypatch.setattr("backfill_lib.training.checkpoints.fit", no_training)
    again = train_or_load("old", {"k": 1}, *fresh_model(digits), *data, cfg, tmp_path)
    assert not again.trained_here and again.history == first.history
    for a, b in zip(
        first.model.state_dict().values(), again.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    with pytest.raises(AssertionError, match="retrained"):  # another config trains
        train_or_load("old", {"k": 2}, *fresh_model(digits), *data, cfg, tmp_path)


def test_checkpoints_record_how_they_were_computed(digits, tmp_path, other_thread_count):
    args = (*fresh_model(digits), digits.train_images[:256], digits.train_labels[:256])
    cfg = replace(SMALL_CNN, epochs=1)
    train_or_load("old", {"k": 1}, *args, cfg, tmp_path)
    path = next((tmp_path / "checkpoints").glob("old-*.pt"))
    assert load_torch(path)["trained_with"] == numerics()
    assert set(numerics()) == {"device", "threads", "processes", "torch"}
    other_thread_count()
    with pytest.warns(UserWarning, match=rf"{path.name} was computed with threads .*delete"):
        train_or_load("old", {"k": 1}, *args, cfg, tmp_path)  # loaded, not retrained


def test_a_checkpoint_from_another_config_is_refused(tmp_path):
    save_torch({"config": {"arch": "resnet20", "epochs": 30}, "model": {}}, tmp_path / "c.pt")
    with pytest.raises(ConfigMismatchError, match="epochs"):
        load_torch(tmp_path / "c.pt", {"arch": "resnet20", "epochs": 10})
