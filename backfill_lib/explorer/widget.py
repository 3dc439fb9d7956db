"""An ipywidgets explorer that scrubs through an online backfill.

``BackfillExplorer(experiment)`` (the models the library trained) or
``BackfillExplorer(report, image_paths=...)`` (your own upgrade: the
:class:`~backfill_lib.pipeline.upgrade.UpgradeReport` of :func:`evaluate_upgrade`, its
evaluation part, with thumbnails when you give each item's image file and numbered tiles
when you do not) shows, for a method, a backfill order, a query and a backfilled fraction t:

- the backfilling curves (mAP and top-1) of every method, the selected one highlighted, with
  a marker at t;
- the current mAP / top-1 of the selected method (the evaluator's numbers);
- the query image and its top-k results, each framed by the part it came from (old or new)
  and marked by whether it is relevant;
- the distances from a fixed sample of queries to each part at t (relevant vs irrelevant,
  counts on a log axis): a calibrated merge puts both parts' relevant distances left of both
  parts' irrelevant ones.

Everything below the controls is ONE HTML widget whose value is swapped in one assignment,
so the text, the marker, the retrieved images and the histogram always show the same
position (a "rendering…" note stands beside the slider while a new position is computed).
The curves are drawn once per (order, method) and the marker is a CSS line placed over
them; the retrieved images are HTML thumbnails encoded once per item; only the histogram
is drawn per position, and every panel is memoised, so scrubbing back is instant.
:meth:`state` returns what is displayed, for tests and for programmatic use.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from ..core.merge import part_distances, rank_gallery
from ..core.orders import backfilled_mask
from ..methods.registry import method_names
from ..pipeline.experiment import Experiment
from ..pipeline.pack_experiment import PackExperiment
from ..pipeline.upgrade import UpgradeReport
from ..reporting.plots import (
    PART_COLOUR_NAMES,
    PART_COLOURS,
    method_label,
    plot_curves,
    plot_distance_histograms,
)
from .data import THUMBNAIL_PX, ExplorerData

__all__ = ["BackfillExplorer"]

_ROW = "display:flex; flex-wrap:wrap; gap:12px; align-items:flex-start"
_MARKER = "position:absolute; border-left:2px dashed #222; pointer-events:none"


def _png_base64(fig: plt.Figure, dpi: int = 100) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _img(data: str, width: int, height: int, style: str = "", css_class: str = "") -> str:
    return (
        f'<img class="{css_class}" src="data:image/png;base64,{data}" width="{width}" '
        f'height="{height}" style="display:block;{style}">'
    )


def _small_text(ax: plt.Axes) -> None:
    """Shrink a panel's title, axis labels and ticks for the explorer's small figures."""
    ax.title.set_fontsize(8)
    ax.xaxis.label.set_fontsize(7)
    ax.yaxis.label.set_fontsize(7)
    ax.tick_params(labelsize=6)


class BackfillExplorer:
    """Widgets over an :class:`~backfill_lib.pipeline.experiment.Experiment`, your own
    upgrade's :class:`~backfill_lib.pipeline.upgrade.UpgradeReport` (``image_paths`` and
    ``class_names``: :meth:`ExplorerData.from_upgrade`) or any :class:`ExplorerData` (see the
    module doc)."""

    def __init__(
        self,
        source: Experiment | PackExperiment | UpgradeReport | ExplorerData,
        top_k: int = 8,
        histogram_queries: int = 300,
        image_paths: Sequence[str | Path] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        source = ExplorerData.of(source, image_paths, class_names)
        self.data = source
        self.steps = source.steps
        self.results, self.orders, self.parts = source.results, source.orders, source.parts
        self.methods = [m for m in source.parts if m not in method_names("reference")]
        self.labels = source.labels
        self.top_k = top_k
        n = len(self.labels)
        sample = np.random.default_rng(0).permutation(n)[: min(histogram_queries, n)]
        self._sample = torch.as_tensor(np.sort(sample))
        self._render_curves = lru_cache(maxsize=64)(self._curves_figure)
        self._render_histogram = lru_cache(maxsize=512)(self._histogram_figure)
        self._examples = lru_cache(maxsize=64)(self._curated_queries)
        self._thumbnail = lru_cache(maxsize=4096)(self._thumbnail_png)

        default = "rt+mc" if "rt+mc" in self.methods else self.methods[0]
        self.fraction = widgets.FloatSlider(
            value=0.0,
            min=0.0,
            max=1.0,
            step=1.0 / self.steps,
            description="backfilled t",
            readout_format=".0%",
            continuous_update=False,
            layout=widgets.Layout(width="420px"),
        )
        self.method = widgets.Dropdown(
            options=self.methods, value=default, description="method", layout={"width": "190px"}
        )
        self.order = widgets.Dropdown(
            options=list(self.orders), description="order", layout={"width": "200px"}
        )
        self.example = widgets.Dropdown(description="example", layout={"width": "380px"})
        examples = self._examples(default, self.order.value)
        self.query = widgets.BoundedIntText(  # start on an instructive query
            value=examples[0][1] if examples else 0,
            min=0,
            max=n - 1,
            description="query #",
            layout={"width": "160px"},
        )
        self.status = widgets.HTML()
        self.view = widgets.HTML()
        self._update_examples()
        for control in (self.fraction, self.method, self.order, self.query):
            control.observe(self._refresh, names="value")
        for control in (self.method, self.order):
            control.observe(self._update_examples, names="value")
        self.example.observe(self._pick_example, names="value")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.method, self.order, self.query]),
                widgets.HBox([self.fraction, self.example, self.status]),
                self.view,
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

    def _retrieved(
        self, method: str, order: str, step: int, query: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mask = backfilled_mask(self.orders[order], step / self.steps)
        ranked, _ = rank_gallery(
            self.parts[method], mask, self.top_k, queries=torch.tensor([query]), exclude_self=True
        )
        ids = ranked[0].numpy()
        return ids, mask[ids], (self.labels[ids] == self.labels[query]).numpy()

    # curated queries ---------------------------------------------------------------------

    def _top1_correct(self, method: str, order: str, step: int) -> np.ndarray:
        """``(N,)`` whether each query's first result is relevant at ``step``."""
        mask = backfilled_mask(self.orders[order], step / self.steps)
        ids, _ = rank_gallery(self.parts[method], mask, 1, exclude_self=True)
        return (self.labels[ids[:, 0]] == self.labels).numpy()

    def _curated_queries(self, method: str, order: str) -> tuple[tuple[str, int], ...]:
        """``(description, query)`` for the first query of each instructive kind, if any."""
        start, half, end = (
            self._top1_correct(method, order, s) for s in (0, self.steps // 2, self.steps)
        )
        kinds = (
            (
                "the merge gets it wrong at 50% (top-1 right at 0% and 100%)",
                start & ~half & end,
            ),
            ("the backfill fixes it (top-1 wrong at 0%, right at 50%, 100%)", ~start & half & end),
            ("it flips for good (top-1 right at 0%, wrong at 100%)", start & ~end),
        )
        return tuple((text, int(np.flatnonzero(hits)[0])) for text, hits in kinds if hits.any())

    def _update_examples(self, _change: object = None) -> None:
        examples = self._examples(self.method.value, self.order.value)
        self.example.options = [("choose a query that shows something…", -1)] + [
            (f"query {q}: {text}", q) for text, q in examples
        ]
        self.example.value = -1

    def _pick_example(self, change: dict) -> None:
        if change["new"] >= 0:
            self.query.value = change["new"]

    # rendering -----------------------------------------------------------------------------

    def _refresh(self, _change: object = None) -> None:
        self.status.value = "<i>rendering…</i>"
        s = self.state()
        title = method_label(s["method"])
        metrics = (
            f"<div class='bf-metrics' style='font-size:14px'>{html.escape(title)} · "
            f"{s['order']} order · backfilled <b>{100 * s['fraction']:.0f}%</b> · mAP "
            f"<b>{100 * s['mAP']:.2f}%</b> · top-1 <b>{100 * s['top1']:.2f}%</b> · query "
            f"{s['query']}: {sum(s['from_new'])} of {len(s['from_new'])} results from the new "
            "part</div>"
        )
        curves = self._curves_html(s["order"], s["method"], s["fraction"])
        histogram, width, height = self._render_histogram(s["method"], s["order"], s["step"])
        self.view.value = (
            f"{metrics}<div style='{_ROW}'>{curves}"
            f"{_img(histogram, width, height, css_class='bf-histogram')}</div>"
            f"{self._strip_html(s)}"
        )
        self.status.value = ""

    def _curves_figure(self, order: str, method: str) -> tuple[str, int, int, tuple]:
        """The curves PNG (base64) with ``method`` highlighted, its size in pixels, and each
        panel's pixel box ``(left, right, top, bottom)`` for placing the marker."""
        fig, axes = plt.subplots(1, 2, figsize=(5.2, 2.8))
        plot_curves(
            self.results[order], axes=list(axes), highlight=method, legend="below", gain_panel=False
        )
        fig.suptitle(f"{order} order, {method_label(method)} in bold", fontsize=8)
        for ax in axes:
            _small_text(ax)
        fig.tight_layout(rect=(0, 0.24, 1, 1), pad=0.3, w_pad=0.8)
        dpi = 100
        width, height = int(fig.bbox.width * dpi / fig.dpi), int(fig.bbox.height * dpi / fig.dpi)
        boxes = tuple(
            (
                box.x0 * dpi / fig.dpi,
                box.x1 * dpi / fig.dpi,
                height - box.y1 * dpi / fig.dpi,
                height - box.y0 * dpi / fig.dpi,
            )
            for box in (ax.get_window_extent() for ax in axes)
        )
        return _png_base64(fig, dpi), width, height, boxes

    def _curves_html(self, order: str, method: str, fraction: float) -> str:
        data, width, height, boxes = self._render_curves(order, method)
        markers = "".join(
            f"<div class='bf-marker' data-fraction='{fraction:.2f}' style='{_MARKER}; "
            f"left:{left + fraction * (right - left) - 1:.1f}px; top:{top:.1f}px; "
            f"height:{bottom - top:.1f}px'></div>"
            for left, right, top, bottom in boxes
        )
        return (
            f"<div class='bf-curves' style='position:relative; width:{width}px; "
            f"height:{height}px; flex:none'>{_img(data, width, height)}{markers}</div>"
        )

    def _histogram_figure(self, method: str, order: str, step: int) -> tuple[str, int, int]:
        mask = backfilled_mask(self.orders[order], step / self.steps)
        old, new = part_distances(self.parts[method], self.labels, mask, self._sample)
        fig, ax = plt.subplots(figsize=(3.7, 2.8))
        plot_distance_histograms(
            old,
            new,
            f"{method}: distances of {len(self._sample)} queries\nto each part at "
            f"t = {step / self.steps:.0%}",
            ax=ax,
        )
        _small_text(ax)
        legend = ax.get_legend()
        if legend is not None:
            for text in legend.get_texts():
                text.set_fontsize(6)
        fig.subplots_adjust(left=0.17, right=0.97, bottom=0.15, top=0.85)  # tight_layout: slow
        return _png_base64(fig), int(fig.bbox.width), int(fig.bbox.height)

    def _thumbnail_png(self, item: int) -> str | None:
        """The item's picture as a PNG thumbnail (base64), or ``None`` when it has none."""
        picture = self.data.picture(item)
        if picture is None:
            return None
        thumbnail = picture.resize((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.NEAREST)
        buffer = io.BytesIO()
        thumbnail.save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode()

    def _tile(self, item: int, caption: str, colour: str) -> str:
        name = html.escape(self.data.class_name(int(self.labels[item])))
        border = f"border:3px solid {colour}"
        png = self._thumbnail(item)
        picture = (
            _img(png, THUMBNAIL_PX, THUMBNAIL_PX, border)
            if png is not None
            else f"<div class='bf-numbered' style='{border}; width:{THUMBNAIL_PX}px; "
            f"height:{THUMBNAIL_PX}px; display:flex; align-items:center; "
            f"justify-content:center; background:#f4f4f4'>"
            f"{html.escape(self.data.item_name(item))}</div>"
        )
        return (
            f"<div style='text-align:center; width:{THUMBNAIL_PX + 6}px; font-size:11px; "
            f"color:{colour}'>{picture}{caption}<br>{name}</div>"
        )

    def _strip_html(self, s: dict) -> str:
        tiles = [self._tile(s["query"], "query", "#000")]
        for item, new, rel in zip(s["retrieved"], s["from_new"], s["relevant"], strict=True):
            part = "new" if new else "old"
            tiles.append(self._tile(item, f"{part} {'✓' if rel else '✗'}", PART_COLOURS[part]))
        title = (
            f"<div class='bf-strip-title' style='font-size:12px; margin-top:6px'>top-"
            f"{len(s['retrieved'])} of query {s['query']} at t = {100 * s['fraction']:.0f}% "
            f"({html.escape(method_label(s['method']))}): frame = part ("
            f"{PART_COLOUR_NAMES['old']} old, {PART_COLOUR_NAMES['new']} new), ✓ relevant</div>"
        )
        return f"{title}<div class='bf-strip' style='display:flex; gap:6px'>{''.join(tiles)}</div>"

    def _repr_mimebundle_(self, **kwargs: object) -> dict:
        """The live widget, and a snapshot of its view as HTML for a page without a kernel:
        JupyterLab shows the widget, a static page (the course site) the snapshot."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/html"] = (
            "<p><i>A snapshot of the explorer at its first state: run the notebook to move its "
            f"controls.</i></p>{self.view.value}"
        )
        return bundle
