"""An ipywidgets explorer that scrubs through an online backfill.

``BackfillExplorer(experiment)`` shows, for a method, a backfill order, a query and a
backfilled fraction t:

- the backfilling curves (mAP and top-1) of every method with a marker at t;
- the current mAP / top-1 of the selected method (the evaluator's numbers);
- the query image and its top-k results, each marked by the part it came from (old or new)
  and by whether it is relevant;
- the distance histograms of the two parts at t (relevant vs irrelevant) over a fixed
  sample of queries: a calibrated merge puts both parts' relevant distances left of both
  parts' irrelevant ones.

The curves of every method and order are computed once in the constructor; moving the
slider re-slices them and re-ranks one query, and rendered panels are memoised, so
scrubbing back and forth is instant. :meth:`state` returns what
is displayed, for tests and for programmatic use.
"""

from __future__ import annotations

import io
from functools import lru_cache

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from .backfill import backfilled_mask, part_distances, rank_gallery
from .experiments import REFERENCE_METHODS, Experiment
from .plots import STYLE, plot_curves, plot_distance_histograms

PART_COLOURS = {False: "#1f77b4", True: "#d62728"}  # old part blue, new part red


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


class BackfillExplorer:
    """Widgets over one :class:`~backfill_lib.experiments.Experiment` (see the module doc)."""

    def __init__(
        self, experiment: Experiment, top_k: int = 8, histogram_queries: int = 300
    ) -> None:
        self.experiment = experiment
        config = experiment.config
        self.steps = config.steps
        self.results = {order: experiment.results(order) for order in config.orders}
        self.methods = [m for m in config.methods if m not in REFERENCE_METHODS]
        self.orders = {order: experiment.order(order) for order in config.orders}
        self.parts = {m: experiment.parts(m) for m in self.methods}
        self.images, self.labels = experiment.test_data
        self.top_k = top_k
        n = len(self.labels)
        sample = np.random.default_rng(0).permutation(n)[: min(histogram_queries, n)]
        self._sample = torch.as_tensor(np.sort(sample))

        default = "rt+mc" if "rt+mc" in self.methods else self.methods[0]
        self.fraction = widgets.FloatSlider(
            value=0.0,
            min=0.0,
            max=1.0,
            step=1.0 / self.steps,
            description="backfilled t",
            readout_format=".0%",
            continuous_update=True,
            layout=widgets.Layout(width="420px"),
        )
        self.method = widgets.Dropdown(options=self.methods, value=default, description="method")
        self.order = widgets.Dropdown(options=list(self.orders), description="order")
        self.query = widgets.BoundedIntText(value=0, min=0, max=n - 1, description="query #")
        self.metrics = widgets.HTML()
        self.curves_image = widgets.Image(format="png")
        self.retrieval_image = widgets.Image(format="png")
        self.histogram_image = widgets.Image(format="png")
        for control in (self.fraction, self.method, self.order, self.query):
            control.observe(self._refresh, names="value")
        self._render_curves = lru_cache(maxsize=256)(self._curves_png)
        self._render_retrieval = lru_cache(maxsize=256)(self._retrieval_png)
        self._render_histograms = lru_cache(maxsize=256)(self._histogram_png)
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.method, self.order, self.query]),
                self.fraction,
                self.metrics,
                self.curves_image,
                self.retrieval_image,
                self.histogram_image,
            ]
        )
        self._refresh()

    @property
    def step(self) -> int:
        """The curve step shown: ``round(t * S)``."""
        return int(round(self.fraction.value * self.steps))

    def state(self) -> dict:
        """What the explorer displays now (metrics in [0, 1])."""
        method, order, step = self.method.value, self.order.value, self.step
        res = self.results[order]["methods"][method]
        ids, from_new, relevant = self._retrieved(method, order, step, self.query.value)
        return {
            "method": method,
            "order": order,
            "step": step,
            "fraction": step / self.steps,
            "mAP": res["mAP"][step],
            "top1": res["top1"][step],
            "query": self.query.value,
            "retrieved": ids.tolist(),
            "from_new": from_new.tolist(),
            "relevant": relevant.tolist(),
        }

    def _retrieved(self, method: str, order: str, step: int, query: int):
        mask = backfilled_mask(self.orders[order], step / self.steps)
        ids, _ = rank_gallery(
            self.parts[method], mask, self.top_k, queries=torch.tensor([query]), exclude_self=True
        )
        ids = ids[0].numpy()
        return ids, mask[ids], (self.labels[ids] == self.labels[query]).numpy()

    def _refresh(self, _change: object = None) -> None:
        s = self.state()
        self.metrics.value = (
            f"<span class='bf-metrics'>{s['method']} · {s['order']} order · backfilled "
            f"<b>{100 * s['fraction']:.0f}%</b> · mAP <b>{100 * s['mAP']:.2f}%</b> · top-1 "
            f"<b>{100 * s['top1']:.2f}%</b> · query {s['query']}: "
            f"{sum(s['from_new'])} of {len(s['from_new'])} results from the new part</span>"
        )
        self.curves_image.value = self._render_curves(s["order"], s["step"])
        self.retrieval_image.value = self._render_retrieval(
            s["method"], s["order"], s["step"], s["query"]
        )
        self.histogram_image.value = self._render_histograms(s["method"], s["order"], s["step"])

    def _curves_png(self, order: str, step: int) -> bytes:
        fig = plot_curves(self.results[order], marker_at=step / self.steps)
        return _png(fig)

    def _retrieval_png(self, method: str, order: str, step: int, query: int) -> bytes:
        ids, from_new, relevant = self._retrieved(method, order, step, query)
        fig, axes = plt.subplots(1, len(ids) + 1, figsize=(1.35 * (len(ids) + 1), 1.9))
        self._show(axes[0], query, "query", "#000000")
        for ax, item, new, rel in zip(axes[1:], ids, from_new, relevant, strict=True):
            mark = "✓" if rel else "✗"
            self._show(ax, item, f"{'new' if new else 'old'} {mark}", PART_COLOURS[bool(new)])
        fig.suptitle(
            f"top-{len(ids)} of query {query} at t = {step / self.steps:.0%} "
            f"({STYLE.get(method, {}).get('label', method)}): frame = part (blue old, red new)",
            fontsize=9,
        )
        return _png(fig)

    def _show(self, ax: plt.Axes, item: int, title: str, colour: str) -> None:
        image = self.images[item].permute(1, 2, 0).numpy()
        ax.imshow(
            image[..., 0] if image.shape[2] == 1 else image,
            cmap="gray_r" if image.shape[2] == 1 else None,
        )
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(3)
        ax.set_title(f"{title}\nclass {int(self.labels[item])}", fontsize=8, color=colour)

    def _histogram_png(self, method: str, order: str, step: int) -> bytes:
        mask = backfilled_mask(self.orders[order], step / self.steps)
        old, new = part_distances(self.parts[method], self.labels, mask, self._sample)
        fig = plot_distance_histograms(
            old,
            new,
            f"{method}: distances of {len(self._sample)} queries to each part at t = "
            f"{step / self.steps:.0%}",
        )
        return _png(fig)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
