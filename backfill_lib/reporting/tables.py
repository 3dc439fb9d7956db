"""Tables: what ``backfill demo`` prints, and the Markdown of its ``results.md``.

Every table reads the ``results.json`` dictionary (or ``compatibility.json``'s); metrics
are printed in %. :data:`COLUMN_MEANINGS` says what each column means.
"""

from __future__ import annotations

from .plots import setting_label

__all__ = [
    "COLUMN_MEANINGS",
    "COLUMNS",
    "column_glossary",
    "format_compatibility",
    "format_models",
    "format_table",
    "markdown_table",
    "models_markdown",
    "table_rows",
]

COLUMNS = (
    ("method", "{}"),
    ("mAP@t=0", "{:.1f}"),
    ("final mAP", "{:.1f}"),
    ("AUC-mAP", "{:.1f}"),
    ("95% interval", "[{:.1f}, {:.1f}]"),
    ("trapezoid", "{:.1f}"),
    ("AUC-top1", "{:.1f}"),
    ("rel. gain %", "{:.1f}"),
    ("NFR %", "{:.2f}"),
    ("passes", "{}"),
    ("h per item", "{}"),
)


def table_rows(results: dict) -> list[list[str]]:
    """One row of formatted cells per method (metrics in %; a cell the results do not hold,
    such as an interval of results made before intervals were drawn, is "-")."""
    rows = []
    for name, m in results["methods"].items():
        interval = m.get("auc_mAP_interval")
        values = (
            name,
            100 * m["mAP"][0],
            100 * m["final_mAP"],
            100 * m["auc_mAP"],
            None if interval is None else [100 * v for v in interval],
            None if "auc_mAP_trapezoid" not in m else 100 * m["auc_mAP_trapezoid"],
            100 * m["auc_top1"],
            m["relative_gain"],
            100 * m["negative_flip_rate"],
            m["query_forward_passes"],
            m.get("gallery_transform_passes"),
        )
        rows.append([_number(fmt, v) for (_, fmt), v in zip(COLUMNS, values, strict=True)])
    return rows


def _number(fmt: str, value: object) -> str:
    """``fmt.format(value)`` (``*value`` for a list), except that a number that rounds to
    zero is printed as zero (``0.0`` or ``+0.0``, never ``-0.0``); ``-`` for ``None``."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return fmt.format(*(float(_number("{:.1f}", v)) for v in value))
    text = fmt.format(value)
    return fmt.format(0.0) if isinstance(value, float) and float(text) == 0 else text


COLUMN_MEANINGS = {
    "mAP@t=0": "mAP before anything is backfilled (for a compatible model: M(new, old))",
    "final mAP": "mAP once the whole gallery is backfilled (t = 1)",
    "AUC-mAP": "area under the mAP curve over t in [0, 1]: the quality users get, on average, "
    "during the whole backfill",
    "95% interval": "of AUC-mAP: a paired bootstrap over the queries (1,000 resamples); two "
    "methods whose difference's interval holds 0 are a tie (results.json, `differences`)",
    "trapezoid": "AUC-mAP by the trapezoid rule (the curve's two ends weigh half), beside the "
    "mean of its points",
    "AUC-top1": "the same for top-1 accuracy (is the first result relevant?)",
    "rel. gain %": "(AUC-mAP - old/old) / (new/new - old/old): 0 is no better than not "
    "backfilling, 100 is the new model's quality from the first day; below 0, worse than the "
    "old system",
    "NFR %": "negative flip rate: share of queries whose first result was right under old/old "
    "and is wrong at t, averaged over the curve (regressions users notice)",
    "passes": "backbone forward passes per query (DRM embeds each query with both models)",
    "h per item": "transformation passes per stored gallery item before serving: 1 for a "
    "forward transformation (FCT's h upgrades every old embedding first; bench/forward_cost.py "
    "puts one at about 1/3,000 of a backbone pass), 0 for every other method",
}


def column_glossary() -> str:
    """A Markdown list saying what each column of :func:`format_table` means."""
    return "\n".join(f"- **{name}**: {COLUMN_MEANINGS[name]}" for name, _ in COLUMNS[1:])


def format_table(results: dict) -> str:
    """A fixed-width text table of one results dictionary."""
    header = [c for c, _ in COLUMNS]
    rows = table_rows(results)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        f"{results['dataset']} | {setting_label(results)} | {results['order']} order | "
        f"{results['gallery_size']} gallery items (metrics in %)",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def markdown_table(results: dict) -> str:
    header = [c for c, _ in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(results)]
    return "\n".join(lines)


def models_markdown(results: dict) -> str:
    """The trained models: architecture, epochs, classes and top-1 test accuracy."""
    lines = ["| model | architecture | epochs | classes | top-1 % |", "|---|---|---|---|---|"]
    for name, m in results.get("models", {}).items():
        lines.append(
            f"| {name} | {m['arch']} | {m['epochs']} | {m['classes']} | {100 * m['accuracy']:.1f} |"
        )
    return "\n".join(lines)


def format_models(results: dict) -> str:
    """One line per trained model with its top-1 test accuracy."""
    return "\n".join(
        f"{name}: {m['arch']}, {m['epochs']} epochs, {m['classes']} classes, "
        f"top-1 {100 * m['accuracy']:.1f}% on the test images of its classes"
        for name, m in results.get("models", {}).items()
    )


def format_compatibility(compatibility: dict) -> str:
    """The compatibility matrix (rows query, columns gallery) and the criterion per method."""
    names = compatibility["models"]
    width = max(len(n) for n in names) + 2
    lines = [
        "cross-model mAP (%), rows = query model, columns = gallery model",
        " " * width + "".join(n.rjust(width) for n in names),
    ]
    for q in names:
        row = compatibility["matrix"][q]
        cells = "".join((f"{100 * row[g]:.1f}" if g in row else "-").rjust(width) for g in names)
        lines.append(q.ljust(width) + cells)
    old_old = compatibility["matrix"]["old"]["old"]
    for m, s in compatibility["methods"].items():
        if s["cross_mAP"] is None:
            continue
        verdict = "compatible" if s["compatible"] else "NOT compatible"
        lines.append(
            f"{m}: M({m}, old) = {100 * s['cross_mAP']:.1f} vs M(old, old) = {100 * old_old:.1f} "
            f"-> {verdict}; update gain {_number('{:.1f}', s['update_gain'])}%; "
            f"own mAP {100 * s['self_mAP']:.1f} "
            f"({_number('{:+.1f}', 100 * s['cost_vs_independent_new'])} vs the independent new "
            "model)"
        )
    return "\n".join(lines)
