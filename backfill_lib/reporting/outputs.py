"""The files ``backfill demo`` writes into its output folder (:func:`write_outputs`):

- ``results.json``: the first order's results (random by default), in the stable schema;
  ``results-<order>.json`` for every further order.
- ``curves-<order>.png``: mAP and top-1 against the backfilled fraction, every method, and
  the mAP as a share of the upgrade's gain (0 = old/old, 100 = new/new).
- ``gains-<order>.png``: relative gain per method.
- ``compute-<order>.png``: the share of the gain against the compute spent (results that
  record each method's costs: those of an experiment that trained the models).
- ``compatibility.json`` / ``compatibility.png``: the cross-model mAP matrix;
  ``compatibility-by-class.png``: each model's mAP per class against the old gallery (not
  for ``backfill evaluate``, which has two models' embeddings and no compatible model).
- ``results.md``: every table above in Markdown.

Every figure has an SVG beside its PNG; every file is written atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt

from ..storage import atomic_write, load_json, save_json
from .plots import (
    compute_spent,
    plot_class_map,
    plot_compatibility,
    plot_curves,
    plot_gain_bars,
    plot_quality_against_compute,
    save_figure,
    setting_label,
)
from .tables import format_compatibility, markdown_table, models_markdown

__all__ = ["redraw_outputs", "write_outputs"]


def write_outputs(results: list[dict], compatibility: dict | None, out: Path) -> list[Path]:
    """Write the JSON files, the figures and ``results.md``; return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    md = []
    for i, res in enumerate(results):
        name = "results.json" if i == 0 else f"results-{res['order']}.json"
        written.append(save_json(res, out / name))
        figures: dict[str, Callable[[dict], plt.Figure]] = {
            "curves": plot_curves,
            "gains": plot_gain_bars,
        }
        if compute_spent(res):
            figures["compute"] = plot_quality_against_compute
        for stem, plot in figures.items():
            fig = plot(res)
            written += save_figure(fig, out / f"{stem}-{res['order']}.png")
            plt.close(fig)
        md += [
            f"## {res['order']} order",
            "",
            f"![curves](curves-{res['order']}.png)",
            "",
            *([f"![compute](compute-{res['order']}.png)", ""] if "compute" in figures else []),
            markdown_table(res),
            "",
        ]
    if compatibility is not None:  # (`backfill evaluate` brings no compatible models)
        written += _write_compatibility(compatibility, out, md)
    first = results[0]
    if first.get("models"):
        md += ["## Models", "", models_markdown(first), ""]
    title = (
        f"# {first['dataset']} — {setting_label(first)} ({first['gallery_size']} gallery items)\n\n"
    )
    written.append(
        atomic_write(out / "results.md", lambda tmp: tmp.write_text(title + "\n".join(md)))
    )
    return written


def redraw_outputs(folder: Path) -> list[Path]:
    """Write the figures and ``results.md`` of every results folder in ``folder`` (itself,
    or each setting's folder of ``backfill reproduce``) again from its JSON files, after a
    change to the plots: nothing is trained or evaluated. Returns the paths written."""
    folders = sorted(path.parent for path in Path(folder).rglob("results.json"))
    if not folders:
        raise ValueError(f"{folder}: no results.json in it or below; pass a results folder")
    written = []
    for results_folder in folders:
        first = load_json(results_folder / "results.json")
        others = [
            load_json(path)
            for order in first.get("config", {}).get("orders", [])
            if (path := results_folder / f"results-{order}.json").exists()
        ]
        compatibility = results_folder / "compatibility.json"
        written += write_outputs(
            [first, *others],
            load_json(compatibility) if compatibility.exists() else None,
            results_folder,
        )
    return written


def _write_compatibility(compatibility: dict, out: Path, md: list[str]) -> list[Path]:
    """The compatibility files, their section appended to ``md``; the paths written."""
    written = [save_json(compatibility, out / "compatibility.json")]
    fig = plot_compatibility(compatibility)
    written += save_figure(fig, out / "compatibility.png")
    plt.close(fig)
    md += [
        "## Compatibility",
        "",
        "![compatibility](compatibility.png)",
        "",
        "```",
        format_compatibility(compatibility),
        "```",
        "",
    ]
    if "by_class" in compatibility:
        fig = plot_class_map(
            compatibility["by_class"],
            compatibility["old_classes"],
            compatibility.get("class_names"),
        )
        written += save_figure(fig, out / "compatibility-by-class.png")
        plt.close(fig)
        md += ["![mAP per class against the old gallery](compatibility-by-class.png)", ""]
    return written
