"""The method registry: one entry (plus its loss module) adds a method everywhere."""

import json
import runpy
from pathlib import Path

import pytest
import torch

from backfill_lib.cli import main
from backfill_lib.core.transformation import TransformConfig
from backfill_lib.methods import registry
from backfill_lib.methods.registry import (
    Method,
    compatible_parts,
    get_method,
    method_names,
    register,
)
from backfill_lib.pipeline.config import check_methods, default_config

TOY_METHODS = Path(__file__).with_name("toy_methods.py")


@pytest.fixture
def toys(monkeypatch):
    """A copy of the registry with the toy methods registered in it (restored after the test,
    so they do not leak), and the toy module's namespace."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    return runpy.run_path(str(TOY_METHODS))


def test_the_registry_lists_every_method_once_by_family():
    assert method_names() == (
        *("old/old", "new/new", "new/old", "drm", "bct", "advbct", "ract", "l2"),
        *("rt", "rt+mc", "rt+mc+rho", "bct+rt+mc", "rt-ls", "rt-procrustes"),
        *("fct", "fct+side", "fastfill"),
    )
    assert method_names("compatible") == ("bct", "advbct", "ract", "l2")
    assert method_names("online") == (
        *("drm", "rt", "rt+mc", "rt+mc+rho", "bct+rt+mc", "rt-ls", "rt-procrustes"),
    )
    assert method_names("forward") == ("fct", "fct+side", "fastfill")
    assert get_method("rt+mc").transformation == TransformConfig(mc_weight=4.0)
    assert get_method("rt").transformation == TransformConfig()  # regression only
    assert get_method("drm").transformation is None and get_method("bct").transformation is None
    assert default_config().compatible_losses["ract"] == {"weight": 1.0, "tau": 0.05}
    assert default_config().transformations == {
        "rt": TransformConfig(),
        "rt+mc": TransformConfig(mc_weight=4.0),
        "rt+mc+rho": TransformConfig(mc_weight=4.0, learn_new_head=True),
        "bct+rt+mc": TransformConfig(mc_weight=4.0),
        "rt-ls": TransformConfig(hidden=0, solver="least_squares"),
        "rt-procrustes": TransformConfig(hidden=0, solver="procrustes"),
        "fct": TransformConfig(direction="forward"),
        "fct+side": TransformConfig(direction="forward", side_information=4),
        "fastfill": TransformConfig(
            direction="forward", discriminative_weight=1.0, learn_uncertainty=True
        ),
    }


def test_bad_entries_and_names_are_refused_by_name(toys):
    with pytest.raises(ValueError, match="unknown method 'rt-mc'; choose from old/old"):
        get_method("rt-mc")
    with pytest.raises(ValueError, match="already registered"):
        register(get_method("drm"))
    with pytest.raises(ValueError, match="family 'merge'"):
        Method("x", "merge", "X", {}, compatible_parts("x"), ("old",))
    with pytest.raises(ValueError, match="a compatible method needs a loss"):
        Method("x", "compatible", "X", {}, compatible_parts("x"), ("old", "x"))


@pytest.mark.slow
def test_a_toy_module_adds_a_compatible_and_a_transformation_method_everywhere(
    toys, tmp_path, capsys
):
    """One module with two registrations and nothing else: both methods run through the demo,
    results.json, the compatibility matrix, the figures and tables, and `backfill train`."""
    assert check_methods(["toy-rt", "toy"]) == ("old/old", "new/new", "toy", "toy-rt")
    out, cache = tmp_path / "out", str(tmp_path / "cache")
    argv = ["demo", "--methods", "toy", "toy-rt", "new/old", "--epochs", "3", "--cache", cache]
    assert main([*argv, "--out", str(out), "--orders", "random"]) == 0
    results = json.loads((out / "results.json").read_text())
    toy, toy_rt = results["methods"]["toy"], results["methods"]["toy-rt"]
    assert toy["query_forward_passes"] == toy_rt["query_forward_passes"] == 1
    assert len(toy["mAP"]) == len(toy_rt["mAP"]) == 21
    assert results["models"]["toy"]["classes"] == 10
    assert results["config"]["compatible_losses"]["toy"] == {"weight": 1.0}
    assert results["config"]["transformations"]["toy-rt"]["hidden"] == 0
    matrix = json.loads((out / "compatibility.json").read_text())["matrix"]
    assert toy["mAP"][0] == pytest.approx(matrix["toy"]["old"])  # its queries on the old gallery
    assert toy["mAP"][-1] == pytest.approx(matrix["toy"]["toy"])  # ... and on its own
    # the transformation: at t = 0 its linear psi maps new queries into the old space (far
    # better than the new model's own queries there), and no regret at t = 1
    assert toy_rt["mAP"][0] > results["methods"]["new/old"]["mAP"][0] + 0.1
    assert toy_rt["final_mAP"] == results["methods"]["new/new"]["final_mAP"]
    svg = (out / "curves-random.svg").read_text()
    assert "Toy (cosine to old)" in svg and "Toy RT (linear psi)" in svg
    assert "| toy |" in (out / "results.md").read_text()
    assert "| toy-rt |" in (out / "results.md").read_text()
    assert main(["train", "--model", "toy", "--epochs", "3", "--cache", cache]) == 0
    assert "toy: " in capsys.readouterr().out


def test_the_toy_loss_pulls_new_embeddings_towards_the_old_ones(toys):
    loss, old = toys["CosineToOldLoss"](), torch.nn.functional.normalize(torch.randn(8, 4), dim=1)
    labels = torch.zeros(8)
    assert loss(old, labels, ref_emb=old) == pytest.approx(0, abs=1e-6)
    assert loss(-old, labels, ref_emb=old) == pytest.approx(2)
