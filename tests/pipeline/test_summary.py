"""What each method spends (results.json's costs): from counted FLOPs, by the method's
family, in passes of the new model's backbone."""

import pytest
import torch

from backfill_lib.core.merge import TwoPartEmbeddings
from backfill_lib.pipeline.summary import method_costs

BACKBONES = {"old": 300, "new": 1000, "bct": 1000}  # FLOPs per image: a cheaper old model
MAPS = {"rt": 10, "bct+rt+mc": 20, "fct": 50}  # FLOPs of each fitted map on one embedding


def _parts(passes: int) -> TwoPartEmbeddings:
    item = torch.zeros(1, 2)  # (1, d): the costs do not read the embeddings
    return TwoPartEmbeddings(item, item, item, item, forward_passes=passes)


def test_every_family_pays_what_it_runs():
    passes = {"old/old": 1, "new/new": 1, "drm": 2, "bct": 1, "rt": 1, "bct+rt+mc": 1, "fct": 1}
    costs = method_costs({m: (_parts(p), None) for m, p in passes.items()}, BACKBONES, MAPS)
    cost = {m: (c["query_cost"], c["backfill_cost"], c["upfront_cost"]) for m, c in costs.items()}
    assert cost["old/old"] == (0.3, 0.0, 0.0)  # the old model per query; nothing backfilled
    assert cost["new/new"] == (1.0, 1.0, 0.0)
    assert cost["drm"] == (1.3, 1.0, 0.0)  # the query through both models
    assert cost["bct"] == (1.0, 1.0, 0.0)  # its own model, for queries and the backfill
    assert cost["rt"] == pytest.approx((1.01, 1.0, 0.0))  # psi on every query
    assert cost["bct+rt+mc"] == pytest.approx((1.02, 1.0, 0.0))  # psi on BCT's model
    assert cost["fct"] == pytest.approx((1.0, 1.0, 0.05))  # h once per stored item
