"""The method registry: one entry (plus its loss module) adds a method everywhere."""

import json

import pytest
import torch
from torch import nn

from backfill_lib import methods
from backfill_lib.cli import main
from backfill_lib.config import check_methods, default_config
from backfill_lib.methods import Method, compatible_parts, get_method, method_names, register


class CosineToOldLoss(nn.Module):
    """The toy method's module: pull each new embedding towards the old model's embedding of
    the same image, by cosine (a trivial compatibility loss)."""

    def forward(self, new_embeddings, labels, old_embeddings, **_):
        return (1 - (new_embeddings * old_embeddings).sum(1)).mean()


TOY = Method(
    name="toy",
    family="compatible",
    label="Toy (cosine to old)",
    style={"color": "#117733", "ls": "-.", "marker": "h", "mfc": "white"},
    parts=compatible_parts("toy"),
    models=("old", "toy"),
    loss=lambda training, options: CosineToOldLoss(**options),
    loss_options={"weight": 1.0},
)


@pytest.fixture
def registry(monkeypatch):
    """The registry, restored after the test (methods registered in it do not leak)."""
    monkeypatch.setattr(methods, "_REGISTRY", dict(methods._REGISTRY))
    return methods


def test_the_registry_lists_every_method_once_by_family():
    assert method_names() == tuple(
        ["old/old", "new/new", "new/old", "drm", "bct", "advbct", "ract", "l2", "rt", "rt+mc"]
    )
    assert method_names("compatible") == ("bct", "advbct", "ract", "l2")
    assert method_names("online") == ("drm", "rt", "rt+mc")
    assert get_method("rt+mc").transform == "rt_mc" and get_method("drm").transform is None
    assert default_config().compatible_losses["ract"] == {"weight": 1.0, "tau": 0.05}


def test_bad_entries_and_names_are_refused_by_name(registry):
    with pytest.raises(ValueError, match="unknown method 'rt-mc'; choose from old/old"):
        get_method("rt-mc")
    with pytest.raises(ValueError, match="already registered"):
        register(get_method("drm"))
    with pytest.raises(ValueError, match="family 'merge'"):
        Method("x", "merge", "X", {}, compatible_parts("x"), ("old",))
    with pytest.raises(ValueError, match="a compatible method needs a loss"):
        Method("x", "compatible", "X", {}, compatible_parts("x"), ("old", "x"))


@pytest.mark.slow
def test_a_registered_toy_method_runs_through_the_whole_demo(registry, tmp_path, capsys):
    register(TOY)
    assert check_methods(["toy"]) == ("old/old", "new/new", "toy")
    out = tmp_path / "out"
    argv = ["demo", "--methods", "toy", "--epochs", "3", "--cache", str(tmp_path / "cache")]
    assert main([*argv, "--out", str(out), "--orders", "random"]) == 0
    results = json.loads((out / "results.json").read_text())
    toy = results["methods"]["toy"]
    assert toy["query_forward_passes"] == 1 and len(toy["mAP"]) == 21
    assert results["models"]["toy"]["classes"] == 10
    assert results["config"]["compatible_losses"]["toy"] == {"weight": 1.0}
    matrix = json.loads((out / "compatibility.json").read_text())["matrix"]
    assert toy["mAP"][0] == pytest.approx(matrix["toy"]["old"])  # its queries on the old gallery
    assert toy["mAP"][-1] == pytest.approx(matrix["toy"]["toy"])  # ... and on its own
    assert "Toy (cosine to old)" in (out / "curves-random.svg").read_text()
    assert "| toy |" in (out / "results.md").read_text()
    assert (
        main(["train", "--model", "toy", "--epochs", "3", "--cache", str(tmp_path / "cache")]) == 0
    )
    assert "toy: " in capsys.readouterr().out


def test_the_toy_loss_pulls_new_embeddings_towards_the_old_ones():
    old = torch.nn.functional.normalize(torch.randn(8, 4), dim=1)
    assert CosineToOldLoss()(old, torch.zeros(8), old_embeddings=old) == pytest.approx(0, abs=1e-6)
    assert CosineToOldLoss()(-old, torch.zeros(8), old_embeddings=old) == pytest.approx(2)


def test_the_cpu_profile_takes_a_dataset_familys_own_choices():
    """Tiny-ImageNet chose its own tau, metric-compatible weight, BCT, RACT and L2 weights and
    RACT's tau on its validation split; other 32x32 datasets take CIFAR-10's; the CPU
    profile's options do not leak into digits."""
    chosen = {}
    for name in ("imagefolder:cifar10", "cifar100", "tinyimagenet:any-subset.tar", "digits"):
        config = default_config(name, "cpu")
        losses = config.compatible_losses
        chosen[name] = (
            config.rt_mc.tau,
            config.rt_mc.mc_weight,
            losses["ract"]["weight"],
            losses["l2"]["weight"],
            losses["bct"]["weight"],
            losses["ract"]["tau"],
        )
    assert chosen == {
        "imagefolder:cifar10": (0.2, 16.0, 0.01, 0.03, 0.3, 0.05),
        "cifar100": (0.2, 16.0, 0.01, 0.03, 0.3, 0.05),
        "tinyimagenet:any-subset.tar": (0.1, 4.0, 0.3, 1.0, 3.0, 0.2),
        "digits": (0.1, 4.0, 1.0, 1.0, 1.0, 0.05),
    }
    assert default_config("digits").compatible_losses["advbct"]["unseen"] == "synthesise"
