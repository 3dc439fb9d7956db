"""The options files committed beside the figures are searches this library reads: each
finished method's choice is the one the rule makes from its recorded candidates, and a
search still running (its ledger committed between sessions) names its pending methods."""

import json
from pathlib import Path

import pytest

from backfill_lib.methods.registry import get_method
from backfill_lib.pipeline.options import OPTIONS_FORMAT, load_options
from backfill_lib.pipeline.tune import Candidate, candidates, choose

ROOT = Path(__file__).resolve().parents[2]
OPTIONS_FILES = sorted((ROOT / "figures").glob("*/options.json"))


def test_the_real_image_figures_have_their_options_file():
    assert ROOT / "figures" / "cifar10" / "options.json" in OPTIONS_FILES


@pytest.mark.parametrize("path", OPTIONS_FILES, ids=lambda p: p.parent.name)
def test_a_committed_options_file_holds_the_rules_choices(path):
    record = json.loads(path.read_text())
    assert record["format"] == OPTIONS_FORMAT and "test" not in record["validation"]
    pending = set(record.get("pending", []))
    if pending:
        with pytest.raises(ValueError, match="unfinished"):
            load_options(path)
    else:
        assert set(load_options(path).methods) == set(record["search"])
    chosen = {**record["compatible_losses"], **record["transformations"]}
    assert set(chosen) == set(record["search"]) - pending
    budget, seed = record["budget"]["candidates_per_method"], record["budget"]["seed"]
    for method, search in record["search"].items():
        scored = [
            Candidate(c["options"], c["val_auc_mAP"], c["val_mAP_t0"], c["val_old_old_mAP"])
            for c in search["candidates"]
        ]
        assert all(set(get_method(method).search_space) <= set(c.options) for c in scored)
        if not scored:
            assert method in pending
            continue
        # the fallback first, then the seeded draws: all of them once the method is finished
        drawn = candidates(method, scored[0].options, budget, seed)
        if method in pending:
            assert [c.options for c in scored] == drawn[: len(scored)] != drawn
            continue
        assert [c.options for c in scored] == drawn and search["chosen"] == choose(scored)
        assert chosen[method] == search["chosen_options"] == scored[search["chosen"]].options
