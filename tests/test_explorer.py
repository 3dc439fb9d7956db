"""Drive the explorer's widgets by value and check what it displays against the evaluator,
on the library's experiment and on your own upgrade's embeddings."""

import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from backfill_lib.core.merge import part_distances, rank_gallery
from backfill_lib.core.orders import backfilled_mask
from backfill_lib.explorer import BackfillExplorer
from backfill_lib.pipeline.config import default_config
from backfill_lib.pipeline.experiment import Experiment
from backfill_lib.pipeline.upgrade import UPGRADE_METHODS, evaluate_upgrade

from .conftest import unit


@pytest.fixture(scope="module")
def experiment(cache):
    """The digits experiment (slow: it trains the models when the cache is cold)."""
    config = replace(default_config("digits"), methods=("drm", "rt", "rt+mc", "new/old"))
    return Experiment(config, cache_dir=cache)


@pytest.fixture(scope="module")
def explorer(experiment):
    return BackfillExplorer(experiment, top_k=6, histogram_queries=100)


def _small_upgrade(n: int = 60):
    """A synthetic upgrade: 3 classes, the first half of the items to fit psi on."""
    labels = np.arange(n) % 3
    old, new = unit(n, 8).numpy(), unit(n, 6, seed=1).numpy()
    return evaluate_upgrade(old, new, labels, np.arange(n) < n // 2, steps=10)


def test_your_own_upgrade_explored_with_numbered_tiles_and_with_its_pictures(tmp_path):
    report = _small_upgrade()
    numbered = BackfillExplorer(report, top_k=4)
    assert list(numbered.orders) == ["random"] and numbered.methods == list(UPGRADE_METHODS)
    numbered.query.value, numbered.fraction.value = 0, 1.0
    assert numbered.state()["mAP"] == report.results["methods"]["new/new"]["mAP"][-1]
    view = numbered.view.value
    assert view.count("class='bf-numbered'") == 5 and "row 30" in view  # the query: row 30
    assert view.count("data:image/png;base64,") == 2  # the curves and the histogram only

    paths = []
    for row in range(60):  # one picture per row of the arrays, its colour its row
        paths.append(tmp_path / f"{row}.png")
        Image.new("RGB", (20, 30), (4 * row, 0, 0)).save(paths[-1])
    names = ["cat", "dog", "fox"]
    pictured = BackfillExplorer(report, top_k=4, image_paths=paths, class_names=names)
    pictured.query.value = 0
    view = pictured.view.value
    assert "bf-numbered" not in view and view.count("data:image/png;base64,") == 2 + 5
    assert "<br>cat</div>" in view  # row 30's label, 0
    assert pictured._thumbnail(0) == pictured._thumbnail_png(0)
    with pytest.raises(ValueError, match="one image file per row"):
        BackfillExplorer(report, image_paths=paths[:40])


def test_pictures_and_class_names_belong_to_an_upgrade_report():
    data = BackfillExplorer(_small_upgrade()).data
    with pytest.raises(ValueError, match="UpgradeReport"):
        BackfillExplorer(data, image_paths=["a.png"])


@pytest.mark.slow
def test_the_experiment_s_embeddings_exported_show_what_the_experiment_shows(experiment, explorer):
    """Your own upgrade on the digits models' exported embeddings (training images to fit
    psi, test images to evaluate): the same items retrieved as the experiment's explorer."""
    old, new = (
        torch.cat([experiment.embeddings(m, "train"), experiment.embeddings(m)]).numpy()
        for m in ("old", "new")
    )
    train_labels = experiment.data.training_data("new")[1]
    labels = torch.cat([train_labels, experiment.data.test_labels]).numpy()
    train = np.arange(len(labels)) < len(train_labels)
    own = BackfillExplorer(evaluate_upgrade(old, new, labels, train), top_k=6)
    explorer.order.value = "random"
    for method, fraction, query in (("drm", 0.3, 11), ("rt+mc", 0.6, 40)):
        for shown in (own, explorer):
            shown.method.value, shown.fraction.value, shown.query.value = method, fraction, query
        assert own.state()["retrieved"] == explorer.state()["retrieved"]
        assert own.state()["mAP"] == pytest.approx(explorer.state()["mAP"], abs=1e-6)


@pytest.mark.slow
def test_slider_and_selectors_show_the_evaluators_numbers(explorer):
    for method, order, fraction in (
        ("drm", "random", 0.5),
        ("rt+mc", "uncertainty", 0.25),
        ("rt", "random", 1.0),
    ):
        explorer.method.value = method
        explorer.order.value = order
        explorer.fraction.value = fraction
        state = explorer.state()
        step = round(fraction * 20)
        expected = explorer.results[order]["methods"][method]
        assert state["step"] == step and state["mAP"] == expected["mAP"][step]
        assert state["top1"] == expected["top1"][step]
        shown = re.search(r"mAP <b>([\d.]+)%", explorer.view.value).group(1)
        assert float(shown) == pytest.approx(100 * expected["mAP"][step], abs=0.005)


@pytest.mark.slow
def test_retrieved_items_come_from_the_right_part(explorer):
    explorer.method.value, explorer.order.value = "drm", "random"
    explorer.query.value = 17
    explorer.fraction.value = 0.4
    state = explorer.state()
    mask = backfilled_mask(explorer.orders["random"], 0.4)
    ids, _ = rank_gallery(
        explorer.parts["drm"], mask, 6, queries=torch.tensor([17]), exclude_self=True
    )
    assert state["retrieved"] == ids[0].tolist() and 17 not in state["retrieved"]
    assert state["from_new"] == mask[ids[0].numpy()].tolist()
    labels = explorer.labels
    assert state["relevant"] == (labels[ids[0]] == labels[17]).tolist()
    assert explorer.view.value.count("data:image/png;base64,") == 2 + 7  # curves, histogram


@pytest.mark.slow
def test_histograms_split_the_gallery_by_part(explorer):
    parts, labels, sample = explorer.parts["rt+mc"], explorer.labels, explorer._sample
    none, everything = np.zeros(len(labels), bool), np.ones(len(labels), bool)
    old0, new0 = part_distances(parts, labels, none, sample)
    old1, new1 = part_distances(parts, labels, everything, sample)
    assert len(new0["relevant"]) == 0 and len(old1["irrelevant"]) == 0
    n_pairs = len(old0["relevant"]) + len(old0["irrelevant"])
    assert n_pairs == len(new1["relevant"]) + len(new1["irrelevant"])
    assert np.all((old0["relevant"] >= -1e-5) & (old0["relevant"] <= 4 + 1e-5))


@pytest.mark.slow
def test_moving_the_slider_back_is_memoised_and_the_curves_are_drawn_once(explorer):
    explorer.fraction.value = 0.3
    curves, histograms = (
        explorer._render_curves.cache_info(),
        explorer._render_histogram.cache_info(),
    )
    explorer.fraction.value = 0.35
    explorer.fraction.value = 0.3
    assert explorer._render_histogram.cache_info().hits > histograms.hits
    assert explorer._render_curves.cache_info().misses == curves.misses  # only the marker moved


@pytest.mark.slow
def test_every_panel_shows_the_same_position_after_a_move(explorer):
    explorer.method.value, explorer.order.value, explorer.query.value = "rt", "uncertainty", 5
    for fraction in (0.15, 0.8):
        explorer.fraction.value = fraction
        view = explorer.view.value
        assert f"backfilled <b>{100 * fraction:.0f}%</b>" in view
        assert f"top-6 of query 5 at t = {100 * fraction:.0f}% (RT)" in view
        markers = re.findall(r"class='bf-marker' data-fraction='([\d.]+)'", view)
        assert markers == [f"{fraction:.2f}"] * 2  # one per curve panel
        assert explorer.status.value == ""  # "rendering…" is gone once the view is swapped


@pytest.mark.slow
def test_curated_queries_do_what_they_say(explorer):
    explorer.method.value, explorer.order.value = "drm", "random"
    examples = dict((q, text) for text, q in explorer.example.options if q >= 0)
    assert examples, "no instructive query found on digits"
    expected = {
        "the merge gets it wrong": (True, False, True),
        "the backfill fixes": (False, True, True),
    }
    checked = 0
    for query, text in examples.items():
        explorer.example.value = query
        assert explorer.query.value == query
        top1 = []
        for fraction in (0.0, 0.5, 1.0):
            explorer.fraction.value = fraction
            top1.append(explorer.state()["relevant"][0])
        for start, pattern in expected.items():
            if start in text:
                assert tuple(top1) == pattern, text
                checked += 1
    assert checked >= 1
