"""Your own upgrade (pipeline/upgrade.py, `backfill evaluate`): the online methods on two
models' embeddings reproduce what the library computes for the models it trains, any
module embeds an image folder, and every bad input is named before any work."""

import json
import os
from dataclasses import asdict

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from backfill_lib.cli import main
from backfill_lib.methods.registry import get_method
from backfill_lib.pipeline.config import default_config
from backfill_lib.pipeline.experiment import Experiment
from backfill_lib.pipeline.upgrade import (
    UPGRADE_METHODS,
    check_upgrade_inputs,
    embed_image_folder,
    evaluate_upgrade,
    load_psi,
    split_items,
)

from ..conftest import unit

CURVE_KEYS = ("mAP", "top1", "top5")


@pytest.fixture(scope="module")
def exported(cache, tmp_path_factory):
    """The digits models' embeddings, exported as a user would: the new model's training
    images (the training part) then the test images (the evaluation part), as .npy files,
    beside the experiment that made them."""
    config = default_config("digits", methods=("new/old", *UPGRADE_METHODS))
    experiment = Experiment(config, cache_dir=cache)
    folder = tmp_path_factory.mktemp("exported")
    arrays = {
        name: torch.cat([experiment.embeddings(name, "train"), experiment.embeddings(name)]).numpy()
        for name in ("old", "new")
    }
    train_labels = experiment.data.training_data("new")[1]
    arrays["labels"] = torch.cat([train_labels, experiment.data.test_labels]).numpy()
    arrays["split"] = np.r_[np.ones(len(train_labels)), np.zeros(len(experiment.data.test_labels))]
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    return experiment, arrays, folder


@pytest.mark.slow
def test_the_embeddings_reproduce_the_demo_s_curves(exported):
    experiment, arrays, _ = exported
    demo = experiment.results("random")["methods"]
    report = evaluate_upgrade(
        arrays["old"], arrays["new"], arrays["labels"], arrays["split"].astype(bool)
    )
    ours = report.results["methods"]
    assert set(ours) == {"old/old", "new/new", "new/old", *UPGRADE_METHODS}
    for method, entry in ours.items():
        for key in CURVE_KEYS:
            np.testing.assert_allclose(entry[key], demo[method][key], atol=1e-6, err_msg=method)
        assert entry["auc_mAP_interval"][0] <= entry["auc_mAP"] <= entry["auc_mAP_interval"][1]


@pytest.mark.slow
def test_on_cifar10_the_exported_embeddings_reproduce_the_experiment_s_curves(shared_datasets):
    """The same on CIFAR-10 (extended-class) from models already trained into
    ``$BACKFILL_CIFAR10_CACHE`` (`backfill train --cache`: about 100 minutes on a 2-core CPU,
    so skipped without them): drm, rt and rt+mc with the experiment's options, 50,000
    training and 10,000 evaluation items (3 to 17 minutes). Recorded in docs/upgrade.md."""
    cache = os.environ.get("BACKFILL_CIFAR10_CACHE")
    if not cache:
        pytest.skip("set $BACKFILL_CIFAR10_CACHE to a cache holding CIFAR-10's trained models")
    methods = ("drm", "rt", "rt+mc")
    config = default_config(f"imagefolder:{shared_datasets / 'cifar10'}", methods=methods)
    experiment = Experiment(config, cache_dir=cache)
    if not all(experiment.artefacts.checkpoint_path(m).exists() for m in ("old", "new")):
        pytest.skip(f"{cache} holds no trained CIFAR-10 old and new models (`backfill train`)")
    old, new = (
        torch.cat([experiment.embeddings(m, "train"), experiment.embeddings(m)]).numpy()
        for m in ("old", "new")
    )
    train_labels, test_labels = experiment.data.training_data("new")[1], experiment.data.test_labels
    split = np.r_[np.ones(len(train_labels), bool), np.zeros(len(test_labels), bool)]
    psi = {  # the experiment's options where they are not the registry's (an options file's)
        m: {
            k: v
            for k, v in asdict(config.transformations[m]).items()
            if v != asdict(get_method(m).transformation)[k]
        }
        for m in ("rt", "rt+mc")
    }
    labels = torch.cat([train_labels, test_labels]).numpy()
    ours = evaluate_upgrade(old, new, labels, split, methods, psi_options=psi).results["methods"]
    demo = experiment.results("random")["methods"]
    for method in ("old/old", "new/new", *methods):
        for key in CURVE_KEYS:
            np.testing.assert_allclose(ours[method][key], demo[method][key], atol=1e-6)


@pytest.mark.slow
def test_backfill_evaluate_writes_the_demo_s_outputs_and_a_psi_to_serve_with(
    exported, tmp_path, capsys
):
    experiment, arrays, folder = exported
    out = tmp_path / "out"
    files = [f"--{name}={folder / f'{name}.npy'}" for name in ("old", "new", "labels", "split")]
    assert main(["evaluate", *files, "--out", str(out)]) == 0
    assert "none were tuned on these embeddings" in capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    demo = experiment.results("random")["methods"]
    for method in UPGRADE_METHODS:
        np.testing.assert_allclose(
            results["methods"][method]["mAP"], demo[method]["mAP"], atol=1e-6
        )
    assert (out / "curves-random.png").is_file() and (out / "results.md").is_file()
    psi = load_psi(out / "psi-rt-mc.pt")
    new, old = experiment.embeddings("new"), experiment.embeddings("old")
    torch.testing.assert_close(
        psi.transform(new), experiment.transformation("rt+mc").transform(new)
    )
    h = load_psi(out / "h-fastfill.pt")  # FastFill's h and its uncertainty head
    fitted = experiment.transformation("fastfill")
    torch.testing.assert_close(h.transform(old), fitted.transform(old))
    torch.testing.assert_close(h.uncertainty(old), fitted.uncertainty(old))
    np.testing.assert_array_equal(
        np.argsort(-h.uncertainty(old).numpy(), kind="stable"), experiment.order("fastfill")
    )


def test_any_module_embeds_an_image_folder_and_an_upgrade_between_two_is_evaluated(
    image_tree,
):
    """Two torchvision networks at random initialisation as the old and the new model (no
    weights downloaded): the report's schema, and no regret at either end."""
    torchvision = pytest.importorskip("torchvision")
    from torchvision import transforms

    small = transforms.Compose(
        [transforms.Resize(32), transforms.CenterCrop(32), transforms.ToTensor()]
    )
    torch.manual_seed(0)
    old_model = torchvision.models.resnet18(num_classes=24)
    new_model = torchvision.models.mobilenet_v3_small(num_classes=32)
    old, labels, paths = embed_image_folder(old_model, image_tree / "train", small)
    new, labels_again, _ = embed_image_folder(new_model, image_tree / "train", small)
    assert old.shape == (len(paths), 24) and new.shape == (len(paths), 32)
    np.testing.assert_array_equal(labels, labels_again)
    np.testing.assert_allclose(np.linalg.norm(old, axis=1), 1, atol=1e-5)
    report = evaluate_upgrade(old, new, labels, split_items(labels, 0.5))
    methods = report.results["methods"]
    for method in UPGRADE_METHODS:
        entry = methods[method]
        assert entry["final_mAP"] == methods["new/new"]["final_mAP"]  # no regret
        assert {"auc_mAP", "relative_gain", "negative_flip_rate", "auc_mAP_interval"} <= set(entry)
    assert methods["drm"]["mAP"][0] == methods["old/old"]["mAP"][0]
    assert report.results["gallery_size"] + report.results["training_items"] == len(labels)
    assert set(report.transformations) == set(UPGRADE_METHODS) - {"drm"}


def test_a_split_keeps_two_items_of_every_class_to_evaluate_on():
    labels = np.repeat(np.arange(5), [3, 10, 10, 10, 40])
    train = split_items(labels, 0.9, seed=1)
    for label in range(5):
        assert (~train[labels == label]).sum() >= 2
    assert (split_items(labels, 0.9, seed=1) == train).all()
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_items(labels, 1.5)


def _inputs(n: int = 60):
    labels = np.arange(n) % 3
    train = np.arange(n) < n // 2
    return unit(n, 8).numpy(), unit(n, 6, seed=1).numpy(), labels, train


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda o, n, y, t: (o[:-1], n, y, t[:-1]), "all must describe the same items"),
        (
            lambda o, n, y, t: (np.where(np.arange(len(o))[:, None] == 4, np.nan, o), n, y, t),
            "row 4",
        ),
        (
            lambda o, n, y, t: (o, np.where(np.arange(len(n))[:, None] == 7, 0.0, n), y, t),
            "all zeros",
        ),
        (lambda o, n, y, t: (2 * o, n, y, t), "not unit vectors"),
        (lambda o, n, y, t: (o, n, np.where(np.arange(len(y)) == 59, 9, y), t), "class 9"),
        (lambda o, n, y, t: (o, n, y, np.arange(len(y)) < 10), "at least 20"),
        (lambda o, n, y, t: (o, n, y, np.ones(len(y), dtype=bool)), "evaluation part"),
        (lambda o, n, y, t: (o, n, y.astype(float), t), "integer array of class ids"),
        (lambda o, n, y, t: (o[:, :, None], n, y, t), "2-D float array"),
    ],
    ids=[
        "counts",
        "nan",
        "zero",
        "norm",
        "one-item-class",
        "few-training",
        "no-evaluation",
        "labels",
        "shape",
    ],
)
def test_bad_inputs_are_named_with_their_fix_before_any_work(damage, message):
    names = ("--old a.npy", "--new b.npy", "--labels c.npy")
    with pytest.raises(ValueError, match=message) as error:
        check_upgrade_inputs(*damage(*_inputs()), names)
    named = any(name in str(error.value) for name in names)
    assert named or "part:" in str(error.value)


def test_backfill_evaluate_says_what_is_wrong_in_one_line_and_reads_safetensors(tmp_path, capsys):
    old, new, labels, _ = _inputs()
    save_file({"embeddings": old}, str(tmp_path / "old.safetensors"))
    np.save(tmp_path / "new.npy", 3 * new)
    np.save(tmp_path / "labels.npy", labels)
    files = ["--old", str(tmp_path / "old.safetensors"), "--new", str(tmp_path / "new.npy")]
    files += ["--labels", str(tmp_path / "labels.npy"), "--out", str(tmp_path / "out")]
    assert main(["evaluate", *files]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 2 and "--new" in error[-1] and "--normalise" in error[-1]
    assert main(["evaluate", *files, "--normalise", "--methods", "drm"]) == 0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["gallery_size"] == 30
    assert main(["evaluate", *files[:2], "--new", str(tmp_path / "missing.npy"), *files[4:]]) == 2
    assert "--new" in capsys.readouterr().err.splitlines()[-1]


def test_an_options_file_sets_psi_s_options_and_results_json_says_so(tmp_path):
    old, new, labels, _ = _inputs()
    for name, array in (("old", old), ("new", new), ("labels", labels)):
        np.save(tmp_path / f"{name}.npy", array)
    options = {
        "format": "backfill-options/1",
        "dataset": "digits",
        "profile": "cpu",
        "fingerprint": "0" * 16,
        "compatible_losses": {},
        "transformations": {"rt+mc": {"tau": 0.2, "mc_weight": 16.0}},
    }
    (tmp_path / "options.json").write_text(json.dumps(options))
    files = [f"--{name}={tmp_path / f'{name}.npy'}" for name in ("old", "new", "labels")]
    out = tmp_path / "out"
    argv = ["evaluate", *files, "--options", str(tmp_path / "options.json"), "--out", str(out)]
    assert main([*argv, "--methods", "rt+mc"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["options"].startswith(f"tuned: {tmp_path / 'options.json'}")
    psi = results["config"]["transformations"]["rt+mc"]
    assert (psi["tau"], psi["mc_weight"]) == (0.2, 16.0)
