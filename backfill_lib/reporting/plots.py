"""Figures: backfilling curves, AUC bars, the compatibility matrix, distance distributions.

Every function takes the ``results.json`` dictionary (or plain arrays), draws on a new
figure (or given axes), titles and labels it, and returns the figure. Each method's colour,
line and label come from the registry (:mod:`backfill_lib.methods.registry`), so a method looks the
same in every figure of the project.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any, cast

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..core.metrics import relative_gain
from ..methods.registry import get_method, method_names
from ..storage import atomic_write

__all__ = [
    "METRIC_NAMES",
    "QUERY_LOAD",
    "PART_COLOUR_NAMES",
    "PART_COLOURS",
    "compute_spent",
    "dataset_label",
    "gain_shares",
    "method_label",
    "plot_class_map",
    "plot_compatibility",
    "plot_curves",
    "plot_distance_cdfs",
    "plot_distance_histograms",
    "plot_gain_bars",
    "plot_quality_against_compute",
    "plot_image_grid",
    "save_figure",
    "setting_label",
    "zoomed_limits",
]

# The two parts of a backfilling gallery, in every figure and in the explorer.
PART_COLOURS = {"old": "#0072B2", "new": "#D55E00"}  # Okabe-Ito blue and vermillion
PART_COLOUR_NAMES = {"old": "blue", "new": "orange"}
# The query load of the quality-against-compute figure: queries served per gallery item
# backfilled (a service that answers as many queries as it re-embeds items).
QUERY_LOAD = 1.0
METRIC_NAMES = {"mAP": "mAP", "top1": "top-1 (CMC)", "top5": "top-5 (CMC)"}


def _style(method: str) -> dict:
    """A method's line style and ``label`` (from the registry; plain for unknown names)."""
    if method not in method_names():
        return {"color": None, "ls": "-", "label": method}
    registered = get_method(method)
    return {**registered.style, "label": registered.label}


def _curve_style(style: dict) -> dict[str, Any]:
    """The ``ax.plot`` keywords of a method's curve, from its :func:`_style`."""
    return {
        "color": style["color"],
        "ls": style["ls"],
        "marker": style.get("marker"),
        "mfc": style.get("mfc", style["color"]),
        "ms": style.get("ms", 4),
        "lw": style.get("lw", 1.8),
    }


def method_label(method: str) -> str:
    """A method's display name: ``"rt+mc"`` -> ``"RT+MC (Seo et al.)"``."""
    return _style(method)["label"]


def dataset_label(name: str) -> str:
    """A dataset's name without its loader and folders:
    ``imagefolder:../shared/datasets/cifar10`` -> ``cifar10``,
    ``tinyimagenet:data/tinyimagenet-dev100.tar`` -> ``tinyimagenet-dev100``."""
    return Path(name.split(":", 1)[-1].rstrip("/")).name.removesuffix(".tar")


def setting_label(results: dict) -> str:
    """The setting's name, with the architectures when they differ (heterogeneous upgrade).

    ``"extended-class"``, or ``"extended-class, resnet20 -> resnet56"``.
    """
    archs = {part: results.get("config", {}).get(part, {}).get("arch") for part in ("old", "new")}
    if archs["old"] == archs["new"]:
        return results["setting"]
    return f"{results['setting']}, {archs['old']} -> {archs['new']}"


def save_figure(fig: plt.Figure, path: str | Path) -> list[Path]:
    """Save a figure atomically (PNG or anything matplotlib knows by suffix); a PNG gets an
    SVG of the same name beside it (vector, text kept as text) for print and zooming.
    Neither records a date, so the same figure always gives the same bytes. Returns the
    paths written."""
    path = Path(path)
    formats = [path] + ([path.with_suffix(".svg")] if path.suffix == ".png" else [])
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "backfill_lib"}):
        return [
            atomic_write(
                target,
                partial(
                    fig.savefig,
                    format=target.suffix[1:],
                    dpi=130,
                    bbox_inches="tight",
                    metadata={"Date": None},
                ),
            )
            for target in formats
        ]


def plot_curves(
    results: dict,
    metrics: tuple[str, ...] = ("mAP", "top1"),
    methods: list[str] | None = None,
    axes: list[plt.Axes] | None = None,
    highlight: str | None = None,
    legend: str = "right",
    gain_panel: bool = True,
) -> plt.Figure:
    """Metric against backfill fraction for every method, one panel per metric, and (with
    ``gain_panel``) a last panel of the mAP curves as shares of the upgrade's gain.

    old/old and new/new are drawn as horizontal reference lines; the legend (shared by the
    panels) gives each method's AUC under every drawn metric, named, and its relative gain.
    The metric panels' y axes span 0-100% unless every curve lies in a narrower band: then
    they zoom to it and the axis label says so. The gain panel puts every dataset on one
    scale: 0 = old/old, 100 = new/new (:func:`gain_shares`). ``axes``: one per panel.
    ``highlight`` draws that method bold and the others faded (the explorer). ``legend``:
    ``"right"`` of the panels, or ``"below"`` them in two columns (narrow figures).
    """
    methods = methods or list(results["methods"])
    panels = [*metrics, *(["gain"] if gain_panel else [])]
    if axes is None:
        _, grid = plt.subplots(1, len(panels), figsize=(5.4 * len(panels), 4.3), squeeze=False)
        axes = list(grid[0])
    fig = cast(Figure, axes[0].figure)
    t = 100 * np.asarray(results["fractions"])
    shares = gain_shares(results) if gain_panel else {}
    for ax, panel in zip(axes, panels, strict=True):
        drawn = {  # in %
            m: shares[m] if panel == "gain" else 100 * np.asarray(results["methods"][m][panel])
            for m in methods
        }
        for m in methods:
            values = drawn[m]
            st = _style(m)
            aucs = ", ".join(
                f"AUC-{name} {100 * _auc(results['methods'][m], name):.1f}" for name in metrics
            )
            gain = f", gain {round(results['methods'][m]['relative_gain'])}%" if gain_panel else ""
            label = f"{st['label']}: {aucs}{gain}"
            faded = highlight is not None and m != highlight
            emphasis: dict[str, Any] = {
                "alpha": 0.35 if faded else 1.0,
                "zorder": 3 if m == highlight else 2,
            }
            if m in method_names("reference"):
                ax.axhline(values[0], color=st["color"], ls=st["ls"], lw=1.2, label=label)
            else:
                line = _curve_style(st) | emphasis
                line["lw"] += 1.5 if m == highlight else 0
                ax.plot(t, values, label=label, **line)
        if panel == "gain":
            _label_gain_panel(ax, drawn)
        else:
            _label_metric_panel(ax, METRIC_NAMES.get(panel, panel), drawn)
        ax.set(xlabel="backfilled share of the gallery t (%)", xlim=(0, 100))
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"Online backfilling on {dataset_label(results['dataset'])} ({setting_label(results)}, "
        f"{results['order']} order, {results.get('gallery_size', '?')} gallery items)"
    )
    if legend == "below":
        handles, labels = axes[-1].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=6, frameon=False)
        legend_height = 0.13 * math.ceil(len(labels) / 2) + 0.1  # inches
        fig.tight_layout(rect=(0, legend_height / fig.get_figheight(), 1, 1))
    else:
        axes[-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
        fig.tight_layout()
    return fig


def gain_shares(results: dict, metric: str = "mAP") -> dict[str, np.ndarray]:
    """Each method's ``metric`` curve as a share of the upgrade's gain, in percent:
    ``100 (M(t) - M(old/old)) / (M(new/new) - M(old/old))``, so 0 is old/old and 100 is
    new/new on every dataset (the mean of a method's mAP shares is its relative gain)."""
    old_old = results["methods"]["old/old"][metric][0]
    new_new = results["methods"]["new/new"][metric][0]
    return {
        m: np.array([relative_gain(value, old_old, new_new) for value in values[metric]])
        for m, values in results["methods"].items()
    }


def zoomed_limits(values: list[np.ndarray], step: float = 5.0) -> tuple[float, float]:
    """y limits in % that hold every curve in ``values`` (in %): the whole 0-100 unless the
    curves span less than half of it, then their band widened to multiples of ``step``."""
    low, high = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
    if high - low >= 50:
        return 0.0, 100.0
    return max(0.0, step * math.floor((low - 1) / step)), min(
        100.0, step * math.ceil((high + 1) / step)
    )


def _label_metric_panel(ax: plt.Axes, name: str, curves: dict[str, np.ndarray]) -> None:
    """A metric panel's title, y label and y range (zoomed to the curves, in %, said so)."""
    low, high = zoomed_limits(list(curves.values()))
    zoom = "" if (low, high) == (0.0, 100.0) else f", axis zoomed to {low:g}-{high:g}"
    ax.set(ylabel=f"{name} (%{zoom})", ylim=(low, high), title=f"{name} during backfilling")


def _label_gain_panel(ax: plt.Axes, shares: dict[str, np.ndarray]) -> None:
    """The gain panel's title, y label and y range: from at most 50 below old/old (a
    curve that starts lower, such as new/old's, leaves the axis there and a note names its
    lowest share) to at least 110."""
    lowest = {m: float(v.min()) for m, v in shares.items()}
    low = max(-50.0, min(-10.0, 10 * math.floor(min(lowest.values()) / 10)))
    high = max(110.0, 10 * math.ceil(max(float(v.max()) for v in shares.values()) / 10))
    ax.set(
        ylabel="share of the upgrade's mAP gain (%)",
        ylim=(low, high),
        title="mAP gain delivered (0 = old/old, 100 = new/new)",
    )
    below = [f"{method_label(m)} (lowest {v:.0f})" for m, v in lowest.items() if v < low]
    if below:  # one per line, at most three named: the note stays inside the panel
        more = [f"and {len(below) - 3} more"] if len(below) > 3 else []
        note = "\n".join(["below the axis:", *below[:3], *more])
        ax.text(0.98, 0.02, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=6)


def compute_spent(results: dict, query_load: float = QUERY_LOAD) -> dict[str, np.ndarray]:
    """Each method's compute spent by each point of its curve, per gallery item, in passes
    of the new model's backbone: its ``upfront_cost`` (FCT's h over the stored gallery),
    then at backfill fraction t, ``t`` times the ``backfill_cost`` and the queries served
    meanwhile, ``query_load`` per item backfilled, at ``query_cost`` each. A method whose
    results record no costs (made before costs were) is left out."""
    t = np.asarray(results["fractions"])  # (S + 1,)
    return {
        m: v["upfront_cost"] + t * (v["backfill_cost"] + query_load * v["query_cost"])
        for m, v in results["methods"].items()
        if "query_cost" in v
    }


def plot_quality_against_compute(results: dict, query_load: float = QUERY_LOAD) -> plt.Figure:
    """The share of the upgrade's mAP gain (:func:`gain_shares`) against the compute spent
    to reach it (:func:`compute_spent`): what each family pays for its quality. The
    backward-compatible family starts above 0 having spent nothing on the gallery, forward
    transformation pays h before serving, online backfilling pays backbone passes as it
    goes (DRM a second pass per query). old/old and new/new are the 0 and 100 lines."""
    spent, shares = compute_spent(results, query_load), gain_shares(results)
    if not spent:
        raise ValueError(
            "these results record no costs (query_cost, backfill_cost, upfront_cost): "
            "rerun the experiment with this version of backfill_lib to record them"
        )
    fig, ax = plt.subplots(figsize=(7.6, 4.6))
    for m, x in spent.items():
        st = _style(m)
        label = f"{st['label']}: {x[-1]:.2f} passes per item at t = 100%"
        if m in method_names("reference"):
            ax.axhline(shares[m][0], color=st["color"], ls=st["ls"], lw=1.2, label=st["label"])
            continue
        ax.plot(x, shares[m], label=label, **_curve_style(st))
    _label_gain_panel(ax, {m: shares[m] for m in spent})
    ax.set(
        xlabel=f"compute per gallery item (new-backbone passes; {query_load:g} "
        f"quer{'y' if query_load == 1 else 'ies'} per item backfilled)",
        xlim=(0, None),
        title=f"Quality against compute on {dataset_label(results['dataset'])} "
        f"({setting_label(results)}, {results['order']} order)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def _auc(method: dict, metric: str) -> float:
    """A method's stored AUC under ``metric`` (the mean over the fractions when not stored)."""
    return method.get(f"auc_{metric}", float(np.mean(method[metric])))


def plot_gain_bars(results: dict, methods: list[str] | None = None) -> plt.Figure:
    """Relative gain (% of the upgrade's mAP gain delivered during backfilling) per method."""
    methods = [m for m in (methods or results["methods"]) if m not in ("old/old", "new/new")]
    gains = [results["methods"][m]["relative_gain"] for m in methods]
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(methods), 3.8))
    bars = ax.bar(range(len(methods)), gains, color=[_style(m)["color"] for m in methods])
    ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.axhline(0, color="#7f7f7f", lw=1)
    ax.axhline(100, color="#000", lw=1, ls="--")
    ax.set_xticks(range(len(methods)), methods, rotation=30)
    ax.set(
        ylabel="relative gain in AUC-mAP (%)",
        title=f"Share of the upgrade's gain delivered during backfilling "
        f"({results['order']} order)",
    )
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_compatibility(compatibility: dict) -> plt.Figure:
    """The cross-model mAP matrix: rows query model, columns gallery model (blank: dims differ)."""
    names = compatibility["models"]
    m = np.full((len(names), len(names)), np.nan)
    for i, q in enumerate(names):
        for j, g in enumerate(names):
            m[i, j] = compatibility["matrix"][q].get(g, np.nan)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(names), 1.0 + 0.8 * len(names)))
    im = ax.imshow(100 * m, cmap="viridis", vmin=0, vmax=100)
    for i in range(len(names)):
        for j in range(len(names)):
            if not np.isnan(m[i, j]):
                ax.text(
                    j,
                    i,
                    f"{100 * m[i, j]:.1f}",
                    ha="center",
                    va="center",
                    color="white" if m[i, j] < 0.6 else "black",
                    fontsize=8,
                )
    ax.set_xticks(range(len(names)), names, rotation=30)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="gallery model", ylabel="query model", title="Cross-model mAP (%)")
    fig.colorbar(im, ax=ax, fraction=0.046, label="mAP (%)")
    fig.tight_layout()
    return fig


def plot_class_map(
    per_class: dict[str, dict[int, float]],
    old_classes: int,
    class_names: list[str] | None = None,
) -> plt.Figure:
    """mAP per query class for each method: ``{method: {class: mAP}}``, e.g. ``old/old``,
    ``new/old`` and the compatible models against the old gallery.

    Classes below ``old_classes`` (those the old model was trained on) are shaded. Up to
    20 classes are drawn as grouped bars labelled with ``class_names`` (when given); more
    are drawn as one line of points per method, classes in index order.
    """
    per_class = {m: {int(c): v for c, v in values.items()} for m, values in per_class.items()}
    names = list(per_class)  # (class ids read from compatibility.json are strings: made int)
    classes = sorted(per_class[names[0]])
    many = len(classes) > 20
    width = 0.8 / len(names)
    size = (11.0, 4.0) if many else (max(6.0, 0.7 * len(classes) * (1 + 0.15 * len(names))), 4.0)
    fig, ax = plt.subplots(figsize=size)
    seen = [c for c in classes if c < old_classes]
    if seen:
        ax.axvspan(
            -0.5, len(seen) - 0.5, color="#eeeeee", zorder=0, label="classes the old model saw"
        )
    for i, name in enumerate(names):
        style = _style(name)
        values = [100 * per_class[name][c] for c in classes]
        if many:
            ax.plot(
                values,
                ls="-",
                lw=0.8,
                marker=style.get("marker", "o"),
                ms=3,
                color=style["color"],
                label=style["label"],
                zorder=2,
            )
        else:
            x = np.arange(len(classes)) + (i - (len(names) - 1) / 2) * width
            ax.bar(x, values, width, label=style["label"], color=style["color"], zorder=2)
    if many:
        ax.set_xlim(-0.5, len(classes) - 0.5)
        ax.set_xlabel("query class (index)")
    else:
        labels = [class_names[c] if class_names else str(c) for c in classes]
        long = max(len(label) for label in labels) > 3
        ax.set_xticks(
            range(len(classes)),
            labels,
            rotation=30 if long else 0,
            ha="right" if long else "center",
        )
        ax.set_xlabel("query class")
    ax.set(ylabel="mAP (%)", ylim=(0, 100))
    ax.set_title("Cross-model mAP per class (query model vs the old gallery)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def plot_distance_histograms(
    old_part: dict[str, np.ndarray],
    new_part: dict[str, np.ndarray],
    title: str,
    ax: plt.Axes | None = None,
) -> plt.Figure:
    """Distances of relevant / irrelevant items in the old and the new part.

    ``old_part`` and ``new_part`` map ``"relevant"`` and ``"irrelevant"`` to 1-D arrays of
    distances. A merge is well calibrated when the relevant distances of both parts sit
    below the irrelevant distances of both parts. Counts (query, item pairs) on a log axis:
    irrelevant items outnumber relevant ones (about 9:1 with ten classes), and it is the
    irrelevant tail reaching under the other part's relevant distances that misranks.
    On a given ``ax`` the caller lays out the figure.
    """
    created = ax is None
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.8))
    bins = np.linspace(0, 4, 61).tolist()
    for part, data in (("old", old_part), ("new", new_part)):
        for kind, fill in (("relevant", True), ("irrelevant", False)):
            if len(data[kind]):
                ax.hist(
                    data[kind],
                    bins=bins,
                    histtype="stepfilled" if fill else "step",
                    alpha=0.35 if fill else 1.0,
                    color=PART_COLOURS[part],
                    lw=1.5,
                    label=f"{part} part: {kind}",
                )
    ax.set_yscale("log")
    ax.set(
        xlabel="distance to the query  d = ||q - g||²",
        ylabel="(query, item) pairs, log scale",
        xlim=(0, 4),
        title=title,
    )
    ax.legend(fontsize=8)
    fig = cast(Figure, ax.figure)
    if created:
        fig.tight_layout()
    return fig


def plot_distance_cdfs(
    old_part: dict[str, np.ndarray],
    new_part: dict[str, np.ndarray],
    title: str,
    ax: plt.Axes | None = None,
) -> plt.Figure:
    """The distances of :func:`plot_distance_histograms` as cumulative shares: for each part
    and kind, the share of its (query, item) pairs within distance d.

    On a linear axis, where two methods' small differences show (log-count histograms look
    alike). A merge is well calibrated when both parts' relevant curves (solid) rise before
    both parts' irrelevant curves (dashed): where one part's irrelevant curve climbs while
    the other part's relevant curve is still low, irrelevant items of the first part outrank
    relevant items of the second. On a given ``ax`` the caller lays out the figure.
    """
    created = ax is None
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.8))
    for part, data in (("old", old_part), ("new", new_part)):
        for kind, style in (("relevant", "-"), ("irrelevant", "--")):
            distances = np.sort(np.asarray(data[kind], dtype=float))  # (P,) ascending
            if len(distances):
                shares = 100 * np.arange(1, len(distances) + 1) / len(distances)
                ax.step(
                    np.concatenate([[0.0], distances]),
                    np.concatenate([[0.0], shares]),
                    where="post",
                    ls=style,
                    color=PART_COLOURS[part],
                    lw=1.8,
                    label=f"{part} part: {kind}",
                )
    ax.set(
        xlabel="distance to the query  d = ||q - g||²",
        ylabel="pairs within distance d (%)",
        xlim=(0, 4),
        ylim=(0, 100),
        title=title,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig = cast(Figure, ax.figure)
    if created:
        fig.tight_layout()
    return fig


def plot_image_grid(
    images: np.ndarray, labels: np.ndarray, class_names: list[str], title: str, per_row: int = 10
) -> plt.Figure:
    """A grid of uint8 images ``(n, C, H, W)`` captioned with their class names."""
    images, labels = np.asarray(images), np.asarray(labels)
    rows = -(-len(images) // per_row)
    fig, axes = plt.subplots(rows, per_row, figsize=(1.1 * per_row, 1.25 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label in zip(axes.flat, images, labels, strict=False):
        hwc = image.transpose(1, 2, 0)
        gray = hwc.shape[2] == 1
        ax.imshow(hwc[..., 0] if gray else hwc, cmap="gray_r" if gray else None)
        ax.set_title(class_names[label], fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
