"""The text outputs: every table column is explained, and no "-0.0" is printed."""

from backfill_lib.reporting.tables import COLUMNS, column_glossary, format_compatibility


def test_every_table_column_is_explained():
    glossary = column_glossary()
    for name, _ in COLUMNS[1:]:
        assert f"- **{name}**: " in glossary


def test_a_cost_that_rounds_to_zero_is_printed_without_a_minus_sign():
    summary = {
        "compatible": True,
        "cross_mAP": 0.62,
        "update_gain": 3.0,
        "self_mAP": 0.9896,
        "cost_vs_independent_new": -0.0004,
    }
    names = ["old", "new", "bct"]
    matrix = {query: {gallery: 0.61 for gallery in names} for query in names}
    text = format_compatibility({"models": names, "matrix": matrix, "methods": {"bct": summary}})
    assert "(+0.0 vs the independent new model)" in text and "-0.0" not in text


def test_table_cells_that_round_to_zero_have_no_minus_sign():
    from backfill_lib.reporting.tables import table_rows

    method = {
        "mAP": [0.5, 0.6],
        "final_mAP": 0.6,
        "auc_mAP": 0.55,
        "auc_top1": 0.7,
        "relative_gain": -1e-9,
        "negative_flip_rate": -0.0,
        "query_forward_passes": 1,
    }
    (row,) = table_rows({"methods": {"old/old": method}})
    assert row[4:6] == ["-", "-"]  # results from before intervals: no interval, no trapezoid
    assert row[7:9] == ["0.0", "0.00"] and not any(cell.startswith("-0.0") for cell in row)
    method |= {"auc_mAP_interval": [-0.0001, 0.5567], "auc_mAP_trapezoid": 0.54}
    (row,) = table_rows({"methods": {"old/old": method}})
    assert row[3:6] == ["55.0", "[0.0, 55.7]", "54.0"]
