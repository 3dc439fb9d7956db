"""Drive the explorer's widgets by value and check what it displays against the evaluator."""

import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from backfill_lib.core.merge import part_distances, rank_gallery
from backfill_lib.core.orders import backfilled_mask
from backfill_lib.explorer import BackfillExplorer
from backfill_lib.pipeline.config import default_config
from backfill_lib.pipeline.experiment import Experiment

pytestmark = pytest.mark.slow  # the explorer trains the digits models when the cache is cold


@pytest.fixture(scope="module")
def explorer(cache):
    config = replace(default_config("digits"), methods=("drm", "rt", "rt+mc", "new/old"))
    return BackfillExplorer(Experiment(config, cache_dir=cache), top_k=6, histogram_queries=100)


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
        expected = explorer.experiment.results(order)["methods"][method]
        assert state["step"] == step and state["mAP"] == expected["mAP"][step]
        assert state["top1"] == expected["top1"][step]
        shown = re.search(r"mAP <b>([\d.]+)%", explorer.view.value).group(1)
        assert float(shown) == pytest.approx(100 * expected["mAP"][step], abs=0.005)


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


def test_histograms_split_the_gallery_by_part(explorer):
    parts, labels, sample = explorer.parts["rt+mc"], explorer.labels, explorer._sample
    none, everything = np.zeros(len(labels), bool), np.ones(len(labels), bool)
    old0, new0 = part_distances(parts, labels, none, sample)
    old1, new1 = part_distances(parts, labels, everything, sample)
    assert len(new0["relevant"]) == 0 and len(old1["irrelevant"]) == 0
    n_pairs = len(old0["relevant"]) + len(old0["irrelevant"])
    assert n_pairs == len(new1["relevant"]) + len(new1["irrelevant"])
    assert np.all((old0["relevant"] >= -1e-5) & (old0["relevant"] <= 4 + 1e-5))


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
