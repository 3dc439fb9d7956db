"""The experiment pipeline end to end on the embedded default: the README's demo command, the
stages it runs, and what its outputs promise; the same on images left on disk."""

import json

import numpy as np
import pytest

from backfill_lib.cli import main
from backfill_lib.core.merge import single_space
from backfill_lib.core.metrics import evaluate_curve
from backfill_lib.data import folders
from backfill_lib.pipeline import experiment as experiment_module
from backfill_lib.pipeline.config import default_config
from backfill_lib.pipeline.experiment import Experiment
from backfill_lib.storage import load_torch
from tests.conftest import TREE_CLASSES, TREE_PER_CLASS

pytestmark = pytest.mark.slow  # trains the demo's models once per session


SCHEMA_KEYS = {
    "mAP",
    "top1",
    "auc_mAP",
    "auc_top1",
    "final_mAP",
    "relative_gain",
    "negative_flip_rate",
    "query_forward_passes",
}


@pytest.fixture(scope="session")
def demo(cache, tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--cache", str(cache), "--out", str(out)]) == 0
    return {
        "random": json.loads((out / "results.json").read_text()),
        "uncertainty": json.loads((out / "results-uncertainty.json").read_text()),
        "compatibility": json.loads((out / "compatibility.json").read_text()),
        "files": sorted(p.name for p in out.iterdir()),
        "out": out,
    }


def test_demo_writes_the_stable_schema_and_figures(demo):
    res = demo["random"]
    assert {"dataset", "setting", "order", "fractions", "methods"} <= set(res)
    assert res["dataset"] == "digits" and res["setting"] == "extended-class"
    assert len(res["fractions"]) == 21
    assert set(res["methods"]) == {
        "old/old",
        "new/new",
        "new/old",
        "drm",
        "bct",
        "advbct",
        "ract",
        "l2",
        "rt",
        "rt+mc",
        "rt+mc+rho",
        "bct+rt+mc",
        "rt-ls",
        "rt-procrustes",
        "fct",
        "fct+side",
        "fastfill",
    }
    for m in res["methods"].values():
        assert set(m) >= SCHEMA_KEYS and len(m["mAP"]) == 21
        assert all(0.0 <= v <= 1.0 for v in m["mAP"] + m["top1"])
    for name in (
        "curves-random.png",
        "compute-random.png",
        "curves-uncertainty.png",
        "compatibility.png",
        "compatibility-by-class.png",
        "results.md",
    ):
        assert name in demo["files"]


def test_every_method_records_what_it_spends_in_backbone_passes(demo):
    """results.json's costs (counted FLOPs, in passes of the new backbone; the old and the
    new digits model share one architecture): DRM's query runs both models, RT's adds psi
    (a small MLP), FCT pays h once per stored item and old/old backfills nothing."""
    costs = {
        m: (v["query_cost"], v["backfill_cost"], v["upfront_cost"])
        for m, v in demo["random"]["methods"].items()
    }
    assert costs["old/old"] == (1.0, 0.0, 0.0) and costs["new/new"] == (1.0, 1.0, 0.0)
    assert costs["drm"] == (2.0, 1.0, 0.0) and costs["bct"] == (1.0, 1.0, 0.0)
    assert 1.0 < costs["rt"][0] < 1.1 and costs["rt"][1:] == (1.0, 0.0)
    assert costs["fct"][:2] == (1.0, 1.0) and 0.0 < costs["fct"][2] < 0.1
    assert costs["fct+side"][2] > costs["fct"][2]  # h reads the side-information too


def test_every_auc_has_its_interval_and_every_two_methods_their_difference(demo):
    """METHOD.md section 5b: a paired bootstrap over queries for each method's AUCs and final
    mAP, for the difference of every two methods, and (uncertainty order) for each method's
    difference from the random order; the trapezoid AUC beside the mean of the points."""
    random, uncertainty = demo["random"], demo["uncertainty"]
    assert random["intervals"]["resamples"] == 1000 and random["intervals"]["level"] == 0.95
    for name, m in random["methods"].items():
        for metric in ("auc_mAP", "auc_top1", "final_mAP"):
            low, high = m[f"{metric}_interval"]
            assert low <= m[metric] <= high, (name, metric)
        assert abs(m["auc_mAP_trapezoid"] - m["auc_mAP"]) < 0.05
    names = list(random["methods"])
    assert len(random["differences"]) == len(names) * (len(names) - 1) // 2
    low, high = random["differences"]["rt+mc - drm"]["auc_mAP"]
    point = random["methods"]["rt+mc"]["auc_mAP"] - random["methods"]["drm"]["auc_mAP"]
    assert low <= point <= high
    assert random["differences"]["drm - new/new"]["final_mAP"] == [0.0, 0.0]  # no regret, exactly
    low, high = uncertainty["vs_random"]["drm"]["auc_mAP"]
    point = uncertainty["methods"]["drm"]["auc_mAP"] - random["methods"]["drm"]["auc_mAP"]
    assert low <= point <= high and "vs_random" not in random
    assert uncertainty["vs_random"]["old/old"]["auc_mAP"] == [0.0, 0.0]  # order-free


def test_results_record_every_model_and_its_test_accuracy(demo):
    models = demo["random"]["models"]
    assert list(models) == ["old", "new", "bct", "advbct", "ract", "l2"]
    assert models["old"]["classes"] == 5 and models["new"]["classes"] == 10
    for name, model in models.items():
        assert model["arch"] == "cnn-small" and model["epochs"] == 30
        chance = 1 / model["classes"]
        assert model["accuracy"] > 3 * chance, f"{name} learned well above chance"
    assert "## Models" in (demo["out"] / "results.md").read_text()


@pytest.mark.parametrize("order", ["random", "uncertainty"])
def test_online_backfilling_has_no_regret(demo, order):
    m = demo[order]["methods"]
    old_old, new_new = m["old/old"]["mAP"][0], m["new/new"]["mAP"][0]
    assert new_new > old_old
    # drm starts exactly at old/old; drm, rt and rt+mc end exactly at new/new
    assert m["drm"]["mAP"][0] == old_old
    for method in ("drm", "rt", "rt+mc"):
        assert m[method]["final_mAP"] == new_new
    assert m["drm"]["relative_gain"] > 0
    assert m["rt+mc"]["relative_gain"] > m["drm"]["relative_gain"]
    # the independent new model cannot search the old gallery
    assert m["new/old"]["mAP"][0] < 0.5 * old_old
    passes = {k: v["query_forward_passes"] for k, v in m.items()}
    assert passes["drm"] == 2 and passes["rt"] == passes["rt+mc"] == passes["bct"] == 1


def test_compatible_models_are_reported_beside_the_independent_one(demo):
    comp = demo["compatibility"]
    assert comp["models"] == ["old", "new", "bct", "advbct", "ract", "l2"]
    old_old = comp["matrix"]["old"]["old"]
    # BCT's criterion on the embedded default: BCT and AdvBCT meet it, the independent new
    # model does not (a training outcome with fixed seeds; docs/results.md, "Compatible training")
    assert not comp["methods"]["new"]["compatible"]
    assert comp["methods"]["bct"]["compatible"] and comp["methods"]["advbct"]["compatible"]
    for method in ("bct", "advbct", "ract", "l2"):
        summary = comp["methods"][method]
        assert summary["compatible"] == (summary["cross_mAP"] > old_old)
        res = demo["random"]["methods"][method]
        assert res["mAP"][0] == pytest.approx(summary["cross_mAP"])  # curve starts at M(new, old)
        assert res["final_mAP"] == pytest.approx(summary["self_mAP"])  # and ends at its new/new
    # per class against the old gallery: the old model's own queries do better on the classes
    # it was trained on than on the others
    by_class = {m: {int(c): v for c, v in ap.items()} for m, ap in comp["by_class"].items()}
    assert set(by_class) == {"old/old", "new/old", "bct", "advbct", "ract", "l2"}
    seen = [v for c, v in by_class["old/old"].items() if c < comp["old_classes"]]
    unseen = [v for c, v in by_class["old/old"].items() if c >= comp["old_classes"]]
    assert min(seen) > max(unseen)


def test_old_classifier_rows_sit_on_the_old_class_means(demo, cache):
    """BCT queries the old gallery through the old classifier's rows; they are only a good
    query where they point at the old model's own class means (why digits uses scale 2)."""
    exp = Experiment(default_config("digits"), cache_dir=cache)
    alignment = exp.classifier_alignment("old")
    assert sorted(alignment) == list(range(exp.data.split.old_classes))
    assert min(alignment.values()) > 0.9


def test_rt_at_t0_is_psi_query_against_the_old_gallery(cache):
    exp = Experiment(default_config("digits", methods=("rt",), orders=("random",)), cache_dir=cache)
    parts = exp.parts("rt")
    order = exp.order("random")
    curve = evaluate_curve(parts, exp.data.test_labels, order)
    transformed_only = evaluate_curve(
        single_space(parts.query_old, parts.gallery_old, parts.gallery_old),
        exp.data.test_labels,
        order,
    )
    assert curve.mAP[0] == transformed_only.mAP[0]
    np.testing.assert_array_equal(curve.top1_hits[0], transformed_only.top1_hits[0])


def test_a_rerun_reads_stored_curves_and_a_new_order_evaluates_afresh(cache, tmp_path, monkeypatch):
    for trained in ("checkpoints", "data", "embeddings"):  # share the models, not the curves
        (cache / trained).mkdir(parents=True, exist_ok=True)
        (tmp_path / trained).symlink_to(cache / trained)
    config = default_config("digits", methods=("old/old", "drm"), orders=("random",))
    first = Experiment(config, cache_dir=tmp_path).results("random")
    assert len(list((tmp_path / "curves").iterdir())) == len(first["methods"])  # + new/new
    evaluated = []

    def counting(*args, **kwargs):
        evaluated.append(args[0])
        return evaluate_curve(*args, **kwargs)

    monkeypatch.setattr(experiment_module, "evaluate_curve", counting)
    rerun = Experiment(config, cache_dir=tmp_path)
    assert rerun.results("random")["methods"] == first["methods"]
    assert evaluated == []
    rerun.results("uncertainty")  # old/old, new/new are one space (order-free): only drm
    assert len(evaluated) == 1 and not evaluated[0].one_space


def test_bad_input_through_the_cli(cache, tmp_path, capsys):
    assert main(["demo", "--methods", "magic", "--cache", str(cache), "--out", str(tmp_path)]) == 2
    assert "unknown method 'magic'" in capsys.readouterr().err
    assert (
        main(["demo", "--dataset", "cifar10", "--cache", str(cache), "--out", str(tmp_path)]) == 2
    )
    assert "--data-root" in capsys.readouterr().err
    fresh = tmp_path / "empty-cache"
    assert main(["train", "--model", "bct", "--cache", str(fresh)]) == 2
    assert "backfill train --model old" in capsys.readouterr().err


def test_a_damaged_checkpoint_is_named_and_damaged_curves_are_computed_again(
    demo, cache, tmp_path, capsys
):
    import shutil

    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    config = default_config("digits")
    for curve in (copy / "curves").glob("*.pt"):
        curve.write_bytes(b"")
    with pytest.warns(UserWarning, match="was damaged"):
        rerun = Experiment(config, cache_dir=copy).results("random")
    assert rerun["methods"] == demo["random"]["methods"]  # computed again, identical
    moved_aside = list((copy / "curves").glob("*.pt.corrupt"))
    assert moved_aside and all(p.with_suffix("").stat().st_size > 0 for p in moved_aside)
    checkpoint = Experiment(config, cache_dir=copy).artefacts.checkpoint_path("old")
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    assert main(["train", "--model", "old", "--cache", str(copy)]) == 2
    assert f"{checkpoint} cannot be read" in capsys.readouterr().err


def test_compatible_method_needs_equal_dims(tmp_path):
    from dataclasses import replace

    cfg = default_config("digits", methods=("bct",))
    cfg = replace(cfg, old=replace(cfg.old, embed_dim=16, epochs=1), new=replace(cfg.new, epochs=1))
    with pytest.raises(ValueError, match="equal embedding dims"):
        Experiment(cfg, cache_dir=tmp_path).model("bct")


def test_an_unknown_advbct_unseen_option_is_named(tmp_path):
    from dataclasses import replace

    losses = dict(default_config().compatible_losses)
    losses["advbct"] = {**losses["advbct"], "unseen": "ignore"}
    cfg = default_config("digits", methods=("advbct",), compatible_losses=losses)
    cfg = replace(cfg, old=replace(cfg.old, epochs=1), new=replace(cfg.new, epochs=1))
    with pytest.raises(ValueError, match="unseen must be 'skip' or 'synthesise', got 'ignore'"):
        Experiment(cfg, cache_dir=tmp_path).model("advbct")


def test_a_model_says_whether_it_was_trained_or_loaded(tmp_path, capsys):
    from dataclasses import replace

    cfg = default_config("digits", methods=())
    cfg = replace(cfg, old=replace(cfg.old, epochs=1))
    Experiment(cfg, cache_dir=tmp_path).model("old")
    assert "old: trained; top-1" in capsys.readouterr().out
    Experiment(cfg, cache_dir=tmp_path).model("old")
    out = capsys.readouterr().out
    assert "old: loaded from" in out and str(tmp_path) in out


def test_validation_mode_holds_out_a_fifth_of_the_training_images(tmp_path, capsys):
    from dataclasses import replace

    cfg = default_config("digits", validation=True, methods=())
    cfg = replace(cfg, old=replace(cfg.old, epochs=3), new=replace(cfg.new, epochs=3))
    experiment = Experiment(cfg, cache_dir=tmp_path)
    train = experiment.data.dataset.train_labels
    images, labels = experiment.data.labelled_test_data
    assert abs(len(labels) - 0.2 * len(train)) <= 10  # stratified: about 20% per class
    assert len(experiment.data.split.new_indices) + len(labels) == len(train)  # disjoint, complete
    assert len(experiment.data.test_labels) == len(labels)  # extended-class tests every class
    accuracy = experiment.artefacts.accuracy("new")
    captured = capsys.readouterr()
    assert "new: trained; top-1" in captured.out + captured.err
    assert 0.3 < accuracy <= 1.0  # three epochs learn well above chance (0.1)
    model = experiment.model("new")
    logits = model.classifier(model.eval()(images.float() / 255))
    assert accuracy == pytest.approx(float((logits.argmax(1) == labels).float().mean()))
    old_known = experiment.data.labelled_test_data[1] < 5
    assert "of its 5 classes" in experiment.artefacts.describe_accuracy("old")
    assert (
        f"on the {int(old_known.sum())} validation images"
        in experiment.artefacts.describe_accuracy("old")
    )


def test_a_stream_dataset_runs_the_demo_without_decoding_the_folder(
    image_tree, tmp_path, monkeypatch
):
    """``--dataset stream:PATH``: models, embeddings, psi and curves from files on disk."""

    def no_decoding(*args, **kwargs):
        raise AssertionError("the whole folder was decoded into memory")

    monkeypatch.setattr(folders, "_decode", no_decoding)
    args = ["demo", "--dataset", f"stream:{image_tree}", "--methods", "drm", "rt", "--epochs", "1"]
    out = tmp_path / "out"
    assert main([*args, "--cache", str(tmp_path / "cache"), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["gallery_size"] == TREE_CLASSES * TREE_PER_CLASS
    new_new = results["methods"]["new/new"]["final_mAP"]
    assert results["methods"]["rt"]["final_mAP"] == new_new  # no regret, from files too


@pytest.mark.parametrize(("profile", "arch"), [("gpu", "resnet18"), ("imagenet", "resnet50")])
def test_the_large_profiles_smoke_test_on_a_cpu(image_tree, tmp_path, capsys, profile, arch):
    """``--limit-images`` and ``--epochs 1``: a profile's models run end to end in seconds."""

    args = ["train", "--dataset", f"stream:{image_tree}", "--profile", profile, "--model", "old"]
    assert main([*args, "--limit-images", "32", "--epochs", "1", "--cache", str(tmp_path)]) == 0
    assert "old: trained" in capsys.readouterr().out
    (checkpoint,) = (tmp_path / "checkpoints").glob("old-*.pt")
    state = load_torch(checkpoint)
    assert state["config"]["train"]["arch"].startswith(arch) and len(state["history"]) == 1
    if profile == "imagenet":  # the standard stem: 7x7, stride 2, at 224 px
        assert state["model"]["backbone.conv1.weight"].shape[-1] == 7
        assert state["config"]["image_size"] == 224
