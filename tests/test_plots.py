"""Figures say what they show: titles, labelled axes, one line per method, named AUCs."""

import json
from pathlib import Path

import matplotlib
import pytest

from backfill_lib.plots import STYLE, plot_curves

matplotlib.use("Agg")
RESULTS = Path(__file__).resolve().parents[1] / "figures" / "cifar10" / "extended-class"


@pytest.fixture(scope="module")
def results() -> dict:
    path = RESULTS / "results.json"
    if not path.exists():
        pytest.skip("figures/cifar10 not committed")
    return json.loads(path.read_text())


def test_curve_panels_are_labelled_and_draw_every_method_once(results):
    fig = plot_curves(results)
    assert "cifar10" in fig._suptitle.get_text() and "imagefolder:" not in fig._suptitle.get_text()
    for ax, name in zip(fig.axes, ("mAP", "top-1 (CMC)"), strict=True):
        assert ax.get_ylabel() == f"{name} (%)" and ax.get_xlabel().startswith("backfilled share")
        assert ax.get_title() == f"{name} during backfilling" and ax.get_ylim() == (0, 100)
        curves = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
        references = [line for line in ax.get_lines() if len(line.get_xdata()) == 2]
        assert len(curves) == len(results["methods"]) - 2 and len(references) == 2


def test_the_legend_names_the_metric_of_every_auc(results):
    fig = plot_curves(results)
    texts = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    rt_mc = results["methods"]["rt+mc"]
    expected = (
        f"{STYLE['rt+mc']['label']}: AUC-mAP {100 * rt_mc['auc_mAP']:.1f}, "
        f"AUC-top1 {100 * rt_mc['auc_top1']:.1f}"
    )
    assert expected in texts and len(texts) == len(results["methods"])


def test_the_palette_tells_every_method_apart():
    drawn = [(s["color"], s["ls"], s.get("marker")) for s in STYLE.values()]
    assert len(set(drawn)) == len(drawn)
    assert len({s["color"] for s in STYLE.values()}) == len(STYLE)
