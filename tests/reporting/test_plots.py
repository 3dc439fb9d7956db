"""Figures say what they show: titles, labelled axes, one line per method, named AUCs."""

import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from backfill_lib.methods.registry import get_method, method_names
from backfill_lib.reporting.plots import plot_curves, zoomed_limits

matplotlib.use("Agg")


GAIN_TITLE = "mAP gain delivered (0 = old/old, 100 = new/new)"
RESULTS = Path(__file__).resolve().parents[2] / "figures" / "cifar10" / "extended-class"


@pytest.fixture(scope="module")
def results() -> dict:
    path = RESULTS / "results.json"
    if not path.exists():
        pytest.skip("figures/cifar10 not committed")
    return json.loads(path.read_text())


def test_curve_panels_are_labelled_and_draw_every_method_once(results):
    fig = plot_curves(results)
    assert "cifar10" in fig._suptitle.get_text() and "imagefolder:" not in fig._suptitle.get_text()
    for ax, name in zip(
        fig.axes, ("mAP", "top-1 (CMC)", "share of the upgrade's mAP gain"), strict=True
    ):
        assert ax.get_ylabel().startswith(f"{name} (%") and ax.get_xlabel().startswith("backfilled")
        assert ax.get_title() in (f"{name} during backfilling", GAIN_TITLE)
        curves = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
        references = [line for line in ax.get_lines() if len(line.get_xdata()) == 2]
        assert len(curves) == len(results["methods"]) - 2 and len(references) == 2


def test_the_legend_names_the_metric_of_every_auc(results):
    fig = plot_curves(results)
    texts = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    rt_mc = results["methods"]["rt+mc"]
    expected = (
        f"{get_method('rt+mc').label}: AUC-mAP {100 * rt_mc['auc_mAP']:.1f}, "
        f"AUC-top1 {100 * rt_mc['auc_top1']:.1f}, gain {round(rt_mc['relative_gain'])}%"
    )
    assert expected in texts and len(texts) == len(results["methods"])


def _toy(methods: dict) -> dict:
    """A results.json of three curve points (t = 0, 0.5, 1) holding ``methods``."""
    return {
        "dataset": "toy",
        "setting": "extended-class",
        "order": "random",
        "fractions": [0.0, 0.5, 1.0],
        "methods": methods,
    }


def test_metric_panels_zoom_to_a_narrow_band_and_say_so():
    assert zoomed_limits([np.array([12.1, 20.9]), np.array([14.0, 18.3])]) == (10.0, 25.0)
    assert zoomed_limits([np.array([1.2, 20.9]), np.array([61.0, 83.0])]) == (0.0, 100.0)
    narrow = _toy(
        {
            "old/old": {"mAP": [0.12] * 3, "auc_mAP": 0.12, "relative_gain": 0.0},
            "new/new": {"mAP": [0.21] * 3, "auc_mAP": 0.21, "relative_gain": 100.0},
            "rt+mc": {"mAP": [0.18, 0.19, 0.21], "auc_mAP": 0.58 / 3, "relative_gain": 2200 / 27},
        }
    )
    fig = plot_curves(narrow, metrics=("mAP",))
    raw, gain = fig.axes
    assert raw.get_ylim() == (10.0, 25.0) and raw.get_ylabel() == "mAP (%, axis zoomed to 10-25)"
    assert gain.get_title() == GAIN_TITLE
    shares = {line.get_label().split(":")[0]: line.get_ydata() for line in gain.get_lines()}
    assert list(shares[get_method("old/old").label]) == pytest.approx([0, 0])
    assert list(shares[get_method("new/new").label]) == pytest.approx([100, 100])
    rt_mc = shares[get_method("rt+mc").label]
    assert list(rt_mc) == pytest.approx([100 * 6 / 9, 100 * 7 / 9, 100])
    assert np.mean(rt_mc) == pytest.approx(2200 / 27)  # the mean share is the relative gain


def test_a_curve_far_below_old_old_leaves_the_gain_axis_with_a_note(results):
    gain = plot_curves(results).axes[-1]
    assert gain.get_ylim()[0] == -50
    note = " ".join(text.get_text() for text in gain.texts)
    assert note.startswith("below the axis:\n" + get_method("new/old").label)


def test_the_palette_tells_every_method_apart():
    styles = [get_method(m).style for m in method_names()]
    drawn = [(s["color"], s["ls"], s.get("marker")) for s in styles]
    assert len(set(drawn)) == len(drawn)
    assert len({s["color"] for s in styles}) == len(styles)


def test_a_highlighted_method_stands_out_and_the_legend_can_sit_below(results):
    fig = plot_curves(results, highlight="drm", legend="below")
    assert fig.axes[-1].get_legend() is None and len(fig.legends) == 1
    assert len(fig.legends[0].get_texts()) == len(results["methods"])
    for ax in fig.axes:
        curves = {line.get_label().split(":")[0]: line for line in ax.get_lines()}
        drm, rt = curves[get_method("drm").label], curves[get_method("rt").label]
        assert drm.get_alpha() == 1.0 and rt.get_alpha() < 0.5
        assert drm.get_linewidth() > rt.get_linewidth()


def test_distance_histograms_count_pairs_on_a_log_axis():

    from backfill_lib.reporting.plots import plot_distance_histograms

    empty = {"relevant": np.array([]), "irrelevant": np.array([])}
    fig = plot_distance_histograms(
        {"relevant": np.full(10, 0.5), "irrelevant": np.full(90, 2.0)}, empty, "one part"
    )
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "pairs" in ax.get_ylabel()
    tops = sorted(patch.get_path().vertices[:, 1].max() for patch in ax.patches)
    assert tops == pytest.approx([10, 90])  # counts, not densities: 9 irrelevant per relevant


def test_distance_cdfs_rise_to_every_pair_of_each_part_and_kind():

    from backfill_lib.reporting.plots import plot_distance_cdfs

    old = {"relevant": np.array([0.5, 1.5]), "irrelevant": np.array([1.0, 2.0, 3.0, 3.5])}
    empty = {"relevant": np.array([]), "irrelevant": np.array([])}
    ax = plot_distance_cdfs(old, empty, "one part").axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"old part: relevant", "old part: irrelevant"}
    relevant = lines["old part: relevant"]
    assert list(relevant.get_xdata()) == [0.0, 0.5, 1.5]
    assert list(relevant.get_ydata()) == [0.0, 50.0, 100.0]  # shares of the part's pairs, %
    assert ax.get_yscale() == "linear" and ax.get_ylim() == (0, 100)


def test_a_saved_figure_gets_a_vector_twin_with_the_same_bytes_every_time(results, tmp_path):
    from backfill_lib.reporting.plots import save_figure

    fig = plot_curves(results)
    first = save_figure(fig, tmp_path / "a" / "curves.png")
    assert [p.name for p in first] == ["curves.png", "curves.svg"]
    svg = first[1].read_text()
    assert svg.startswith("<?xml") and "mAP during backfilling" in svg  # text kept as text
    second = save_figure(fig, tmp_path / "b" / "curves.png")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def _costed(results: dict, costs: dict[str, tuple[float, float, float]]) -> dict:
    """``results`` with each method's (query, backfill, upfront) cost."""
    keys = ("query_cost", "backfill_cost", "upfront_cost")
    methods = {m: v | dict(zip(keys, costs[m], strict=True)) for m, v in results["methods"].items()}
    return results | {"methods": methods}


def test_compute_spent_adds_the_upfront_cost_the_backfill_and_the_queries_served():
    from backfill_lib.reporting.plots import compute_spent, plot_quality_against_compute

    toy = _toy(
        {
            "old/old": {"mAP": [0.2] * 3},
            "new/new": {"mAP": [0.6] * 3},
            "drm": {"mAP": [0.2, 0.4, 0.6]},
            "fct": {"mAP": [0.5, 0.55, 0.6]},
        }
    )
    with pytest.raises(ValueError, match="record no costs"):
        plot_quality_against_compute(toy)
    costed = _costed(
        toy,
        {"old/old": (1, 0, 0), "new/new": (1, 1, 0), "drm": (2, 1, 0), "fct": (1, 1, 0.01)},
    )
    spent = compute_spent(costed, query_load=2.0)
    assert list(spent["drm"]) == pytest.approx([0, 2.5, 5])  # t (1 + 2 queries x 2 passes)
    assert list(spent["fct"]) == pytest.approx([0.01, 1.51, 3.01])  # h first, then as rt
    ax = plot_quality_against_compute(costed, query_load=2.0).axes[0]
    assert ax.get_title() == "Quality against compute on toy (extended-class, random order)"
    assert "2 queries per item backfilled" in ax.get_xlabel()
    lines = {line.get_label().split(":")[0]: line for line in ax.get_lines()}
    drm = lines[get_method("drm").label]
    assert list(drm.get_xdata()) == pytest.approx([0, 2.5, 5])
    assert list(drm.get_ydata()) == pytest.approx([0, 50, 100])  # shares of the gain


def test_a_dataset_is_named_without_its_loader_and_folders():
    from backfill_lib.reporting.plots import dataset_label

    assert dataset_label("digits") == "digits"
    assert dataset_label("imagefolder:../shared/datasets/cifar10/") == "cifar10"
    assert dataset_label("tinyimagenet:../data/tinyimagenet-dev100.tar") == "tinyimagenet-dev100"
