"""``backfill reproduce``: the settings' configs, the claims, the spread over seeds, and a
run on digits that can be interrupted and resumed."""

import json

import pytest

from backfill_lib.cli import main
from backfill_lib.pipeline.experiment import Experiment
from backfill_lib.pipeline.reproduce import check_claims, setting_config, spread_over_seeds
from backfill_lib.reporting.plots import setting_label


def test_setting_configs():
    het = setting_config("cifar10", "cpu", "heterogeneous", classes=10)
    assert (het.old.arch, het.new.arch, het.setting) == (
        "airbench-half",
        "airbench",
        "extended-class",
    )
    gpu = setting_config("cifar10", "gpu", "heterogeneous", classes=10)
    assert (gpu.old.arch, gpu.new.arch) == ("resnet18", "resnet50")
    assert "bct" not in setting_config("cifar10", "cpu", "open-class", classes=10).methods
    assert "bct" in setting_config("digits", "cpu", "open-class").methods
    seeded = setting_config("digits", "cpu", "extended-class", seed=3)
    assert (seeded.old.seed, seeded.new.seed, seeded.order_seed) == (6, 7, 3)
    with pytest.raises(ValueError, match="unknown setting"):
        setting_config("digits", "cpu", "sideways")


def fake(order, drm, rt, rtmc, bct_final=0.5, half_width=0.01):
    """One order's results with ``differences`` whose intervals are the point difference
    +- ``half_width`` (what the bootstrap would give on a very stable experiment)."""
    curve = lambda a, b: {"mAP": [a, b], "auc_mAP": (a + b) / 2, "final_mAP": b}  # noqa: E731
    methods = {
        "old/old": curve(0.3, 0.3),
        "new/new": curve(0.6, 0.6),
        "drm": curve(0.3, 0.6),
        "rt": curve(0.35, 0.6),
        "rt+mc": curve(0.45, 0.6),
        "bct": curve(0.32, bct_final),
    }
    methods["drm"]["auc_mAP"], methods["rt"]["auc_mAP"], methods["rt+mc"]["auc_mAP"] = drm, rt, rtmc
    names = list(methods)
    differences = {
        f"{a} - {b}": {
            metric: [d - half_width, d + half_width]
            for metric in ("auc_mAP", "final_mAP")
            for d in [methods[a][metric] - methods[b][metric]]
        }
        for i, a in enumerate(names)
        for b in names[:i]
    }
    return {"order": order, "methods": methods, "differences": differences}


def orders(random, uncertainty, half_width=0.01):
    """``{order: results}`` with the uncertainty order's ``vs_random`` intervals."""
    uncertainty["vs_random"] = {
        m: {"auc_mAP": [d - half_width, d + half_width]}
        for m in uncertainty["methods"]
        for d in [uncertainty["methods"][m]["auc_mAP"] - random["methods"][m]["auc_mAP"]]
    }
    return {"random": random, "uncertainty": uncertainty}


def test_claims_report_what_holds_what_fails_and_what_is_a_tie():
    results = orders(fake("random", 0.40, 0.45, 0.5), fake("uncertainty", 0.42, 0.47, 0.52))
    assert [c.verdict for c in check_claims(results)] == ["holds"] * 5
    results = orders(
        fake("random", 0.40, 0.45, 0.5), fake("uncertainty", 0.42, 0.41, 0.52, bct_final=0.7)
    )
    verdicts = {c.text[:3]: c.verdict for c in check_claims(results)}
    # (b): rt beats drm in the random order, loses in the uncertainty one: the orders disagree;
    # (e): uncertainty beats random for drm and rt+mc, not for rt (0.41 < 0.45)
    assert verdicts == {"(a)": "holds", "(b)": "tie", "(c)": "holds", "(d)": "holds", "(e)": "tie"}
    results = orders(
        fake("random", 0.40, 0.35, 0.5, bct_final=0.7), fake("uncertainty", 0.42, 0.37, 0.52)
    )
    verdicts = {c.text[:3]: c.verdict for c in check_claims(results)}
    assert verdicts["(b)"] == "fails" and verdicts["(d)"] == "fails"  # below 0 in every part
    del results["random"]["methods"]["bct"]  # the CPU profile's further settings
    (d,) = [c for c in check_claims(results) if c.text.startswith("(d)")]
    assert d.holds and "no compatible method" in d.text


def test_a_difference_smaller_than_its_interval_is_a_tie_not_a_win():
    """rt ahead of drm by 0.1 point, with intervals 0.5 wide: a tie, in both orders; the same
    lead with intervals 0.04 wide holds."""
    wide = orders(
        fake("random", 0.400, 0.401, 0.5, half_width=0.005),
        fake("uncertainty", 0.42, 0.421, 0.52, half_width=0.005),
        half_width=0.005,
    )
    assert {c.text[:3]: c.verdict for c in check_claims(wide)}["(b)"] == "tie"
    narrow = orders(
        fake("random", 0.400, 0.401, 0.5, half_width=0.0002),
        fake("uncertainty", 0.42, 0.421, 0.52, half_width=0.0002),
        half_width=0.0002,
    )
    assert {c.text[:3]: c.verdict for c in check_claims(narrow)}["(b)"] == "holds"


def test_spread_is_the_mean_and_sample_sd_over_seeds():
    per_seed = [{"random": fake("random", drm, 0.45, 0.5)} for drm in (0.40, 0.44, 0.48)]
    for results, gain, bct_t0 in zip(per_seed, (0.1, 0.2, 0.6), (0.32, 0.28, 0.31), strict=True):
        for method in results["random"]["methods"].values():
            method["relative_gain"] = gain
        results["random"]["methods"]["bct"]["mAP"][0] = bct_t0  # old/old is 0.3 on every seed
    spread = spread_over_seeds(per_seed)["random"]
    assert spread["drm"]["auc_mAP"]["mean"] == pytest.approx(0.44)
    assert spread["drm"]["auc_mAP"]["sd"] == pytest.approx(0.04)  # n - 1 in the denominator
    assert spread["rt"]["relative_gain"] == pytest.approx({"mean": 0.3, "sd": 0.264575}, rel=1e-5)
    assert spread["bct"]["mAP_t0"] == pytest.approx(
        {"mean": 0.91 / 3, "sd": 0.020817, "above_old_old": 2}, rel=1e-4
    )
    assert spread_over_seeds(per_seed[:1])["random"]["drm"]["auc_mAP"] == {"mean": 0.40, "sd": 0.0}


def test_the_heterogeneous_setting_is_labelled_with_its_architectures():
    results = {"setting": "extended-class", "config": {}}
    for name, label in [
        ("extended-class", "extended-class"),
        ("heterogeneous", "extended-class, airbench-half -> airbench"),
    ]:
        cfg = setting_config("imagefolder:cifar10", "cpu", name, classes=10)
        results["config"] = {"old": {"arch": cfg.old.arch}, "new": {"arch": cfg.new.arch}}
        assert setting_label(results) == label


@pytest.mark.slow
def test_reproduce_on_digits_writes_every_setting(tmp_path, cache, monkeypatch):
    out = tmp_path / "figs"
    args = [
        "reproduce",
        "--dataset",
        "digits",
        "--epochs",
        "3",
        "--seeds",
        "0",
        "1",
        "--settings",
        "extended-class",
        "open-class",
        "--cache",
        str(cache),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    for setting in ("extended-class", "open-class"):
        res = json.loads((out / setting / "results.json").read_text())
        assert res["setting"] == setting and len(res["fractions"]) == 21
        assert (out / setting / "curves-uncertainty.png").exists()
    open_class = json.loads((out / "open-class" / "results.json").read_text())
    assert open_class["gallery_size"] < 250  # only the two held-out classes are tested
    # the summary aggregates the seeds' own results (read back from the cache, not recomputed)
    summary = json.loads((out / "summary.json").read_text())["extended-class"]["random"]
    per_seed = [
        Experiment(
            setting_config("digits", "cpu", "extended-class", seed, 3), cache_dir=cache
        ).results("random")["methods"]
        for seed in (0, 1)
    ]
    for method in ("rt+mc", "bct"):
        gains = [m[method]["relative_gain"] for m in per_seed]
        assert gains[0] != gains[1]  # two seeds, two models
        assert summary[method]["relative_gain"]["mean"] == pytest.approx(sum(gains) / 2)
        assert summary[method]["relative_gain"]["sd"] == pytest.approx(
            abs(gains[0] - gains[1]) / 2**0.5
        )
    assert summary["bct"]["mAP_t0"]["above_old_old"] == sum(
        m["bct"]["mAP"][0] > m["old/old"]["mAP"][0] for m in per_seed
    )
    text = (out / "results.md").read_text()
    assert "(a) drm rises" in text and "Mean ± sd over seeds" in text
    assert "Compatibility over the 2 seeds, M(new, old) %" in text
    assert "Still to run" not in text
    claims = [line for line in text.splitlines() if line.startswith("- ") and "(a)" in line]
    assert len(claims) == 2 and all("seed 0: " in c and "; seed 1: " in c for c in claims)
    assert all(
        c.split(":")[0] in ("- **holds** on all 2 seeds", "- **fails** on all 2 seeds")
        or c.startswith("- **tie** (seed 0 ")
        for c in claims
    )
    verdicts = json.loads((out / "verdicts.json").read_text())
    assert list(verdicts) == ["extended-class", "open-class"]
    (a,) = [c for c in verdicts["extended-class"] if c["text"].startswith("(a)")]
    assert a["verdict"] in ("holds", "fails", "tie") and set(a["seeds"]) == {"0", "1"}
    # another machine, nothing cached: every seed is read from its file, nothing runs again
    assert sorted(p.name for p in (out / "open-class" / "seeds").iterdir()) == ["0.json", "1.json"]
    monkeypatch.setattr(Experiment, "run", lambda self: pytest.fail("a seed ran again"))
    assert main([*args[:11], "--cache", str(tmp_path / "empty"), *args[13:]]) == 0
    assert (out / "results.md").read_text() == text
    assert json.loads((out / "verdicts.json").read_text()) == verdicts
    monkeypatch.undo()
    # a setting rerun on its own replaces its section and keeps the other's
    assert main([*args[:5], "--seeds", "1", "--settings", "open-class", *args[11:]]) == 0
    text = (out / "results.md").read_text()
    assert text.index("## extended-class") < text.index("## open-class")
    assert "--settings extended-class --seeds 0 1`" in text
    assert "--settings open-class --seeds 1`" in text and "seeds [1];" in text
    rerun = json.loads((out / "summary.json").read_text())
    assert rerun["extended-class"]["random"] == summary
    assert rerun["open-class"]["random"]["drm"]["auc_mAP"]["sd"] == 0.0


@pytest.mark.slow
def test_an_interrupted_reproduce_leaves_the_finished_settings_readable(
    tmp_path, cache, monkeypatch
):
    import backfill_lib.pipeline.reproduce as rep

    def interrupted(results, compatibility, out):
        if out.name == "open-class":
            raise KeyboardInterrupt
        return write_outputs(results, compatibility, out)

    write_outputs = rep.write_outputs
    monkeypatch.setattr(rep, "write_outputs", interrupted)
    out = tmp_path / "figs"
    with pytest.raises(KeyboardInterrupt):
        rep.reproduce(
            "digits", out, settings=("extended-class", "open-class"), cache_dir=cache, epochs=3
        )
    text = (out / "results.md").read_text()
    assert "## extended-class" in text and "**Still to run:** open-class" in text
    assert list(json.loads((out / "summary.json").read_text())) == ["extended-class"]
