"""``backfill tune``: the candidates, the rule, the options file, and a search that never
reads a test image."""

import json
import math
from dataclasses import asdict

import pytest
import torch

import backfill_lib.data.splits as splits
import backfill_lib.pipeline.tune as tune_module
from backfill_lib.cli import main
from backfill_lib.methods.registry import get_method
from backfill_lib.pipeline.config import default_config
from backfill_lib.pipeline.experiment import Experiment
from backfill_lib.pipeline.options import load_options
from backfill_lib.pipeline.tune import Candidate, candidates, choose, tunable_methods


@pytest.mark.parametrize("method", tunable_methods())
def test_the_candidates_start_from_the_current_options_and_never_repeat(method):
    start = default_config().compatible_losses.get(method) or asdict(
        default_config().transformations[method]
    )
    space = get_method(method).search_space
    drawn = candidates(method, start, budget=1000, seed=3)
    assert drawn[0] == start
    assert len({json.dumps(c, sort_keys=True) for c in drawn}) == len(drawn)
    assert all(c[k] in values for c in drawn[1:] for k, values in space.items())
    assert len(drawn) <= 1 + math.prod(map(len, space.values()))
    # a larger budget extends a smaller one's list; another seed draws others
    assert candidates(method, start, 4, seed=3) == drawn[:4]
    assert candidates(method, start, 6, seed=4) != drawn[:6]


def test_every_compatible_method_searches_the_same_weights():
    weights = {m: get_method(m).search_space["weight"] for m in ("bct", "advbct", "ract", "l2")}
    assert len(set(weights.values())) == 1, weights


def scored(*points):
    return [Candidate({"i": i}, auc, t0, 0.5) for i, (auc, t0) in enumerate(points)]


def test_the_rule_takes_the_best_compatible_candidate_over_a_better_incompatible_one():
    # candidate 1 scores highest but drops below old/old at t = 0
    assert choose(scored((0.70, 0.6), (0.80, 0.4), (0.75, 0.55))) == 2


def test_without_a_compatible_candidate_the_rule_takes_the_best_and_ties_go_to_the_first():
    assert choose(scored((0.70, 0.4), (0.80, 0.4), (0.75, 0.3))) == 1
    assert choose(scored((0.70, 0.6), (0.70, 0.6))) == 0


class Unreadable(torch.Tensor):
    """A tensor that fails on any use: a test split the search must not open."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise AssertionError(f"the test split was read ({getattr(func, '__name__', func)})")


@pytest.fixture
def unreadable_test_split(monkeypatch):
    """Every dataset the experiments load has a test split that cannot be read."""
    load = splits.load_dataset

    def load_without_test(*args, **kwargs):
        dataset = load(*args, **kwargs)
        dataset.test_images = dataset.test_images.as_subclass(Unreadable)
        dataset.test_labels = dataset.test_labels.as_subclass(Unreadable)
        return dataset

    monkeypatch.setattr(splits, "load_dataset", load_without_test)


def test_the_search_never_reads_a_test_image(unreadable_test_split, tmp_path, capsys):
    out, cache = tmp_path / "options.json", tmp_path / "cache"
    common = ["--dataset", "digits", "--epochs", "1", "--limit-images", "150"]
    args = ["tune", *common, "--methods", "bct", "rt", "--budget", "2", "--cache", str(cache)]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "bct " in printed and "rt " in printed and f"--options {out}" in printed
    record = json.loads(out.read_text())
    assert [len(record["search"][m]["candidates"]) for m in ("bct", "rt")] == [2, 2]
    assert record["fingerprint"] == splits.load_dataset("digits").fingerprint(("train",))
    options = load_options(out)
    assert set(options.methods) == {"bct", "rt"}
    # the same data in a reported run reads the test split, so the check above can fail
    config = default_config("digits", options=options, methods=("bct",), limit_images=150)
    with pytest.raises(AssertionError, match="the test split was read"):
        len(Experiment(config, cache_dir=cache).data.test_labels)


def _small_tune(tmp_path, *args, cache="cache", budget="2"):
    """``backfill tune`` on 150 digits images, 1 epoch, into ``tmp_path/options.json``."""
    common = ["--dataset", "digits", "--epochs", "1", "--limit-images", "150", "--budget", budget]
    out = ["--cache", str(tmp_path / cache), "--out", str(tmp_path / "options.json")]
    return main(["tune", *common, *out, *args])


def test_an_interrupted_search_resumes_from_its_options_file_on_an_empty_cache(
    tmp_path, monkeypatch
):
    score = tune_module.validation_scores
    scored = []

    def interrupted_after_one(experiment, method):
        if scored:
            raise KeyboardInterrupt
        scored.append(method)
        return score(experiment, method)

    monkeypatch.setattr(tune_module, "validation_scores", interrupted_after_one)
    with pytest.raises(KeyboardInterrupt):
        _small_tune(tmp_path, "--methods", "rt", "bct")
    out = tmp_path / "options.json"
    first = json.loads(out.read_text())
    assert first["pending"] == ["rt", "bct"] and first["transformations"] == {}
    assert [len(first["search"][m]["candidates"]) for m in ("rt", "bct")] == [1, 0]
    assert first["search"]["rt"]["candidates"][0]["minutes"] > 0  # old and new models included
    with pytest.raises(ValueError, match=r"unfinished \(rt, bct pending\); run `backfill tune`"):
        load_options(out)
    scored.clear()
    counting = lambda experiment, method: scored.append(method) or score(experiment, method)  # noqa: E731
    monkeypatch.setattr(tune_module, "validation_scores", counting)
    # another machine: nothing cached, only the file; the scored candidate is not trained again
    assert _small_tune(tmp_path, "--methods", "rt", "bct", cache="empty") == 0
    assert scored == ["rt", "bct", "bct"]
    record = json.loads(out.read_text())
    assert "pending" not in record and set(load_options(out).methods) == {"bct", "rt"}
    assert record["search"]["rt"]["candidates"][0] == first["search"]["rt"]["candidates"][0]


def test_a_search_runs_in_parts_into_one_file_and_refuses_one_on_other_terms(tmp_path, capsys):
    assert _small_tune(tmp_path, "--methods", "rt") == 0
    assert _small_tune(tmp_path, "--methods", "bct") == 0
    options = load_options(tmp_path / "options.json")
    assert set(options.methods) == {"bct", "rt"}
    capsys.readouterr()
    assert _small_tune(tmp_path, "--methods", "rt", budget="3") == 2
    error = capsys.readouterr().err
    assert "holds a search made on other terms ('budget'" in error
    assert f"remove {tmp_path / 'options.json'} to start the search over" in error


def test_an_options_file_sets_the_methods_it_names_and_says_so(tmp_path):
    record = {
        "format": "backfill-options/1",
        "dataset": "digits",
        "profile": "cpu",
        "fingerprint": "0123456789abcdef",
        "compatible_losses": {"bct": {"weight": 0.3, "unseen": "skip"}},
        "transformations": {"rt+mc": {"tau": 0.2, "mc_weight": 16}},
    }
    (tmp_path / "options.json").write_text(json.dumps(record))
    options = load_options(tmp_path / "options.json")
    config = default_config("digits", options=options)
    assert config.compatible_losses["bct"] == {"weight": 0.3, "unseen": "skip"}
    assert config.compatible_losses["ract"] == default_config().compatible_losses["ract"]
    rt_mc = config.transformations["rt+mc"]
    assert (rt_mc.tau, rt_mc.mc_weight, rt_mc.hidden) == (0.2, 16, 256)
    assert config.options.startswith(f"tuned: {tmp_path / 'options.json'} (bct, rt+mc;")
    assert "rt+mc+rho, bct+rt+mc, rt-ls, rt-procrustes, fct, fct+side, fastfill: fallback" in (
        config.options
    )
    assert default_config("digits").options.startswith("fallback: the registry's options")


def test_an_untuned_run_says_so_once_on_stderr_and_a_tuned_one_not(capsys, tmp_path):
    args = ["train", "--model", "old", "--epochs", "1", "--limit-images", "50"]
    assert main([*args, "--cache", str(tmp_path / "cache")]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "options:" in line]
    assert len(said) == 1 and said[0].startswith("backfill: options: the registry's options")
    assert "`backfill tune --dataset digits`" in said[0]
    record = {"format": "backfill-options/1", "dataset": "digits", "profile": "cpu"}
    (tmp_path / "options.json").write_text(json.dumps(record | {"fingerprint": "0"}))
    options = ["--options", str(tmp_path / "options.json")]
    assert main([*args, "--cache", str(tmp_path / "cache"), *options]) == 0
    assert "options:" not in capsys.readouterr().err


@pytest.mark.slow
def test_tune_on_digits_writes_the_options_that_drive_the_demo(cache, tmp_path, capsys):
    """The issue's acceptance run: `backfill tune --dataset digits` on a small budget, then
    `backfill demo --options FILE`, whose results.json records and uses the choices."""
    options = tmp_path / "options.json"
    tune = ["tune", "--dataset", "digits", "--budget", "2", "--epochs", "5", "--cache", str(cache)]
    assert main([*tune, "--out", str(options)]) == 0
    record = json.loads(options.read_text())
    assert set(record["search"]) == set(tunable_methods())
    for search in record["search"].values():
        chosen = search["candidates"][search["chosen"]]
        assert search["chosen_options"] == chosen["options"]
        assert search["compatible"] == (chosen["val_mAP_t0"] > chosen["val_old_old_mAP"])
    demo = ["demo", "--methods", "bct", "rt+mc", "--orders", "random", "--cache", str(cache)]
    assert main([*demo, "--options", str(options), "--out", str(tmp_path / "demo")]) == 0
    assert "backfill: options:" not in capsys.readouterr().err
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert results["options"].startswith(
        f"tuned: {options} (bct, advbct, ract, l2, rt, rt+mc, rt+mc+rho, fct, fct+side, fastfill;"
    )
    assert results["config"]["compatible_losses"]["bct"] == record["compatible_losses"]["bct"]
    assert results["config"]["transformations"]["rt+mc"] == record["transformations"]["rt+mc"]
