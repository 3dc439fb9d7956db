"""The README's method tables quote the committed results.json files, digit for digit."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# a column header -> (which order's file, how to read the number from one method's entry)
COLUMNS = {
    "mAP@t=0": ("random", lambda m: 100 * m["mAP"][0]),
    "final mAP": ("random", lambda m: 100 * m["final_mAP"]),
    "AUC-mAP (random)": ("random", lambda m: 100 * m["auc_mAP"]),
    "AUC-mAP random": ("random", lambda m: 100 * m["auc_mAP"]),
    "AUC-mAP uncertainty": ("uncertainty", lambda m: 100 * m["auc_mAP"]),
    "rel. gain (random)": ("random", lambda m: m["relative_gain"]),
    "rel. gain random": ("random", lambda m: m["relative_gain"]),
    "rel. gain (uncertainty)": ("uncertainty", lambda m: m["relative_gain"]),
    "rel. gain uncertainty": ("uncertainty", lambda m: m["relative_gain"]),
    "passes": ("random", lambda m: m["query_forward_passes"]),
}


def method_tables() -> list[tuple[Path, list[str], list[list[str]]]]:
    """``(results folder, header, rows)`` of every README table that starts with
    ``| method |``, paired with the ``curves-random.png`` figure shown above it."""
    lines = (ROOT / "README.md").read_text().splitlines()
    tables, folder = [], None
    for i, line in enumerate(lines):
        figure = re.search(r"\]\((figures/[^)]*)/curves-random\.png\)", line)
        if figure:
            folder = ROOT / figure.group(1)
        if line.startswith("| method |"):
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append([cell.strip().strip("*") for cell in row.strip("|").split("|")])
            tables.append((folder, [c.strip() for c in line.strip("|").split("|")], rows))
    return tables


TABLES = method_tables()


def test_the_readme_has_the_method_tables():
    assert len(TABLES) >= 2 and all(folder is not None for folder, _, _ in TABLES)


@pytest.mark.parametrize(("folder", "header", "rows"), TABLES, ids=[str(t[0]) for t in TABLES])
def test_a_readme_table_quotes_its_results_json(folder, header, rows):
    results = {
        "random": json.loads((folder / "results.json").read_text()),
        "uncertainty": json.loads((folder / "results-uncertainty.json").read_text()),
    }
    for row in rows:
        for column, cell in zip(header[1:], row[1:], strict=True):
            order, read = COLUMNS[column]
            value = read(results[order]["methods"][row[0]])
            assert cell.replace("−", "-") == f"{value:.1f}".replace("-0.0", "0.0") or (
                column == "passes" and cell == str(value)
            ), f"{folder.name} {row[0]} {column}: README {cell}, results {value:.2f}"
