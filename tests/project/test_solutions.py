"""Every exercise's solution (notebooks/solutions/) holds on the embedded digits: an
implemented piece gives the library's numbers, a prediction comes true."""

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from backfill_lib.core.merge import distance_rank_merge, rank_gallery, single_space
from backfill_lib.core.metrics import evaluate_curve, negative_flip_rate
from backfill_lib.core.orders import backfilled_mask, random_order
from backfill_lib.core.transformation import MetricCompatibleLoss
from backfill_lib.methods.registry import method_names
from backfill_lib.pipeline.config import default_config
from backfill_lib.pipeline.experiment import Experiment
from backfill_lib.pipeline.pack import load_pack
from backfill_lib.pipeline.pack_experiment import PackExperiment
from backfill_lib.serving.index import BackfillIndex
from backfill_lib.serving.simulate import Simulation

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "notebooks"))
from solutions import ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex09  # noqa: E402

pytestmark = pytest.mark.slow  # the digits models of every notebook (cached per session)


@pytest.fixture(scope="module")
def experiment():
    return Experiment(default_config("digits", methods=method_names()))


@pytest.fixture(scope="module")
def results(experiment):
    return {order: experiment.results(order) for order in ("random", "uncertainty")}


def test_01_auc_and_relative_gain_and_the_naive_mix(results):
    methods = results["random"]["methods"]
    old_old, new_new = methods["old/old"]["auc_mAP"], methods["new/new"]["auc_mAP"]
    for entry in methods.values():
        assert ex01.area_under_curve(entry["mAP"]) == pytest.approx(entry["auc_mAP"])
        gain = ex01.relative_gain(entry["auc_mAP"], old_old, new_new)
        assert gain == pytest.approx(entry["relative_gain"])
    assert ex01.uncertainty_order_hurts_the_naive_mix(results)


def test_02_verdict_update_gain_and_a_lighter_bct(experiment):
    compatibility = experiment.compatibility()
    for method in method_names("compatible"):
        verdict, gain = ex02.compatibility_verdict(compatibility["matrix"], method)
        summary = compatibility["methods"][method]
        assert verdict == summary["compatible"] and gain == pytest.approx(summary["update_gain"])
    default = compatibility["methods"]["bct"]
    tenth, hundredth = ex02.bct_at_weight(0.1), ex02.bct_at_weight(0.01)
    assert tenth["compatible"] and tenth["update_gain"] < default["update_gain"] / 4
    assert not hundredth["compatible"]
    for lighter in (tenth, hundredth):  # its own mAP hardly moves on digits
        assert abs(lighter["self_mAP"] - default["self_mAP"]) < 0.01


def test_03_one_query_drm_merge_and_the_uncertainty_order(experiment, results):
    old, new = experiment.embeddings("old"), experiment.embeddings("new")
    mask = backfilled_mask(experiment.order("random"), 0.5)
    ids, _ = rank_gallery(experiment.parts("drm"), mask, 10, queries=torch.arange(20))
    for q in range(20):
        assert ex03.drm_top_k(old[q], new[q], old, new, mask, 10) == ids[q].tolist()
    assert ex03.uncertainty_order_helps_drm(results)


def test_04_closed_form_psi_and_psi_width(experiment):
    new, old = experiment.embeddings("new", "train"), experiment.embeddings("old", "train")
    expected = torch.linalg.lstsq(new.double(), old.double()).solution.float()
    torch.testing.assert_close(ex04.least_squares_psi(new, old), expected)
    assert ex04.rt_auc_by_psi_width(experiment, 0) > ex04.rt_auc_by_psi_width(experiment, 256)


def test_04_on_the_pack_the_linear_and_the_mlp_psi_land_within_a_point():
    """ex04's docstring on the notebook's default data, the CIFAR-10 pack's pictured images."""
    packed = PackExperiment(load_pack("cifar10"), methods=("drm", "rt"), pictured=True)
    linear, mlp = (ex04.rt_auc_by_psi_width(packed, hidden) for hidden in (0, 256))
    assert abs(linear - mlp) < 0.01


def test_05_the_loss_by_hand_and_what_tau_and_lambda_do(experiment, results):
    gen = torch.Generator().manual_seed(0)
    unit = [torch.nn.functional.normalize(torch.randn(12, 8, generator=gen), dim=1) for _ in "abc"]
    labels = torch.randint(0, 3, (12,), generator=gen)
    by_hand = ex05.metric_compatible_loss(unit[0], labels, unit[1], unit[2], tau=0.1)
    transformed, new, old = unit
    library = MetricCompatibleLoss(0.1)(new, labels, ref_emb=old, transformed=transformed)
    assert by_hand == pytest.approx(float(library))
    methods = results["random"]["methods"]
    assert ex05.rt_mc_auc(experiment, weight=0.0) == methods["rt"]["auc_mAP"]  # RT exactly
    default = ex05.rt_mc_auc(experiment)
    assert default == pytest.approx(methods["rt+mc"]["auc_mAP"])
    assert ex05.rt_mc_auc(experiment, tau=1.0) < default - 0.02


def test_06_procrustes_by_hand_both_ways_and_a_closed_form_forward_map(experiment, results):
    new, old = experiment.embeddings("new", "train"), experiment.embeddings("old", "train")
    library = experiment.transformation("rt-procrustes").psi.net.weight.T  # (d_n, d_o)
    torch.testing.assert_close(ex06.orthogonal_procrustes(new, old), library, atol=1e-5, rtol=0)
    methods = results["random"]["methods"]
    reverse, forward = ex06.procrustes_both_ways(experiment)
    assert reverse == pytest.approx(methods["rt-procrustes"]["auc_mAP"], abs=1e-6)
    assert forward == pytest.approx(reverse, abs=1e-6)  # a rotation: either side, one ranking
    closed_form = ex06.closed_form_forward_auc(experiment)
    assert methods["rt-ls"]["auc_mAP"] + 0.1 < closed_form < methods["new/new"]["auc_mAP"]
    assert closed_form > methods["fct"]["auc_mAP"] - 0.02  # nearly all of the learned h's


def test_07_flip_rate_and_who_fills_the_top_10(experiment):
    order, labels = experiment.order("random"), experiment.data.test_labels
    top1 = evaluate_curve(experiment.parts("rt"), labels, order).top1_hits
    reference = evaluate_curve(experiment.parts("old/old"), labels, order).top1_hits[0]
    flips = ex07.negative_flip_rate(reference, top1)
    assert flips == pytest.approx(negative_flip_rate(reference, top1)) and flips > 0
    shares = {m: ex07.new_share_of_the_strip(experiment, m, 0.5) for m in ("drm", "rt", "rt+mc")}
    assert max(shares, key=shares.get) == "rt+mc" and shares["rt+mc"] > 0.5 > shares["rt"]


def test_08_merging_two_lists_and_the_prefix_of_a_deeper_search(experiment):
    old, new = experiment.embeddings("old").numpy(), experiment.embeddings("new").numpy()
    order = experiment.order("random")
    n, queries = len(order), np.arange(len(order))
    forty = order[: 4 * n // 10]
    assert ex08.top_10_is_a_prefix_of_top_100(old, new, forty, new[queries], old[queries])
    queries = queries[:50]
    index = BackfillIndex(old, new_dim=new.shape[1])
    index.backfill(forty, new[forty])
    served = index.search(new[queries], k=10, old_query=old[queries]).ids
    moved = np.zeros(n, dtype=bool)
    moved[forty] = True
    old_ids, new_ids = np.flatnonzero(~moved), np.flatnonzero(moved)
    for q in queries:
        old_d, new_d = 2 - 2 * old[old_ids] @ old[q], 2 - 2 * new[new_ids] @ new[q]
        o, m = np.argsort(old_d, kind="stable")[:10], np.argsort(new_d, kind="stable")[:10]
        merged = ex08.merge_top_k(old_ids[o], old_d[o], new_ids[m], new_d[m], 10)
        distance = np.empty(n)
        distance[old_ids], distance[new_ids] = old_d, new_d
        # faiss and numpy round the last bit differently: compare the distances of the lists
        np.testing.assert_allclose(distance[merged], distance[served[q]], atol=1e-5)


def test_09_average_precision_at_k_and_the_depth_of_the_lists():
    items = Simulation().sample(400)
    parts = single_space(items.new, items.new, items.new)
    ids, _ = rank_gallery(parts, np.zeros(400, dtype=bool), 399, exclude_self=True)
    relevant = (items.labels[ids] == items.labels[:, None]).numpy()
    counts = torch.bincount(items.labels)[items.labels] - 1
    for k in (5, 50):
        ours = np.mean(
            [
                ex09.average_precision_at_k(r, int(c), k)
                for r, c in zip(relevant, counts, strict=True)
            ]
        )
        library = evaluate_curve(parts, items.labels, np.arange(400), 1, map_at=(k,))
        assert ours == pytest.approx(library.map_at[k][0], abs=1e-12)
    drm = distance_rank_merge(items.old, items.old, items.new, items.new)
    curves = ex09.curve_at_depths(drm, items.labels, random_order(400), k=20, depths=(20, 80))
    np.testing.assert_array_equal(curves[20].mAP, curves[80].mAP)
    np.testing.assert_array_equal(curves[20].recall, curves[80].recall)
    assert curves[20].exact_searches > 2 * curves[80].exact_searches


def test_05_capstone_a_per_part_calibration_lies_between_rt_and_rt_mc(experiment, results):
    for order in ("random", "uncertainty"):
        methods = results[order]["methods"]
        calibrated = ex05.calibrated_rt_auc(experiment, order)
        assert methods["rt"]["auc_mAP"] + 0.02 < calibrated < methods["rt+mc"]["auc_mAP"]


SOLUTIONS = dict(
    zip(
        ("01", "02", "03", "04", "05", "06", "07", "08", "09"),
        (ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex09),
        strict=True,
    )
)
NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("0*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_s_check_cells_pass_its_solutions_and_say_so(experiment, notebook):
    """Each check cell after an exercise stub, run with the solution in the stub's place
    (and the notebook's ``experiment``), asserts nothing false and prints "correct"; with
    the stub itself it prints "not done yet" (as nbval runs the notebooks)."""
    cells = ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]]
    solution = SOLUTIONS[notebook.stem[:2]]
    checks = [cells[i + 1] for i, c in enumerate(cells) if c.startswith("# Exercise 1 (implement)")]
    assert checks
    for check in checks:
        setup = {"experiment": experiment, "np": np, "torch": torch}
        setup.update(F=torch.nn.functional, MetricCompatibleLoss=MetricCompatibleLoss)
        setup["evaluate_curve"] = evaluate_curve
        for answer, said in ((vars(solution), "correct"), ({}, "not done yet")):
            stub = cells[cells.index(check) - 1]
            namespace = dict(setup)
            exec(stub, namespace)  # the stub's functions, which return None
            namespace.update({k: v for k, v in answer.items() if k in namespace})
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(check, namespace)
            assert said in printed.getvalue().split(":", 1)[1], printed.getvalue()
