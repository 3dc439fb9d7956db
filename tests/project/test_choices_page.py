"""docs/choices.md quotes the test split only from the committed figures: each such number,
computed here from figures/*/results.json, compatibility.json and summary.json, is on the
page as written."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = re.sub(r"\s+", " ", (ROOT / "docs" / "choices.md").read_text())
TINY, CIFAR = ROOT / "figures" / "tinyimagenet-dev100", ROOT / "figures" / "cifar10"


def results(folder: Path) -> dict:
    return json.loads((folder / "extended-class" / "results.json").read_text())


def methods(folder: Path) -> dict:
    return results(folder)["methods"]


def methods_uncertainty(folder: Path) -> dict:
    path = folder / "extended-class" / "results-uncertainty.json"
    return json.loads(path.read_text())["methods"]


def by_seed(folder: Path, method: str, key: str) -> tuple[float, float]:
    """Seeds 0 and 1 of a two-seed run (results.md: ``seeds [0, 1]``), in %: seed 0's
    results.json and the mean over both of summary.json."""
    assert "seeds [0, 1]" in (folder / "results.md").read_text()
    entry = methods(folder)[method]
    seed0 = entry["mAP"][0] if key == "mAP_t0" else entry[key]
    mean = json.loads((folder / "summary.json").read_text())["extended-class"]["random"]
    return 100 * seed0, 100 * (2 * mean[method][key]["mean"] - seed0)


def seen_classes_cross_mAP(folder: Path, method: str) -> float:
    """The mean over the old model's classes of a method's cross mAP against the old gallery."""
    compatibility = json.loads((folder / "extended-class" / "compatibility.json").read_text())
    per_class = compatibility["by_class"][method]
    return (
        100
        * sum(per_class[str(c)] for c in range(compatibility["old_classes"]))
        / (compatibility["old_classes"])
    )


def same(values: tuple[float, float]) -> float:
    """One number said of both seeds: they must round to it alike."""
    assert f"{values[0]:.1f}" == f"{values[1]:.1f}", values
    return values[0]


def quotes() -> dict[str, str]:
    """What the page must say, with the numbers computed from the committed JSON."""
    tiny, cifar, digits = (
        methods(TINY),
        methods(CIFAR),
        json.loads((ROOT / "figures" / "digits" / "results.json").read_text())["methods"],
    )
    new_final, ract_final = (
        by_seed(TINY, "new/new", "final_mAP"),
        by_seed(TINY, "ract", "final_mAP"),
    )
    gap = (new_final[0] - ract_final[0], new_final[1] - ract_final[1])
    seed_moves = [
        abs(seed0 - seed1) for seed0, seed1 in (by_seed(TINY, m, "auc_mAP") for m in tiny)
    ]
    ract_auc = by_seed(TINY, "ract", "auc_mAP")
    bct_final = by_seed(TINY, "bct", "final_mAP")
    return {
        "tiny: RACT's gap to the new model": (
            f"RACT now ends {same(gap):.1f} points below the new model on each"
        ),
        "tiny: RACT's AUC": f"AUC-mAP {ract_auc[0]:.1f} and {ract_auc[1]:.1f} random",
        "tiny: seed spread": f"AUC moves by up to {max(seed_moves):.1f} between two seeds",
        "tiny: BCT": (
            f"M(bct, old) {same(by_seed(TINY, 'bct', 'mAP_t0')):.1f} on both seeds, AUC-mAP "
            f"{same(by_seed(TINY, 'bct', 'auc_mAP')):.1f} random on both, final mAP "
            f"{bct_final[0]:.1f} and {bct_final[1]:.1f}, top-1 "
            f"{100 * results(TINY)['models']['bct']['accuracy']:.1f}% on seed 0"
        ),
        "tiny: AdvBCT": (
            f"AdvBCT stays incompatible ({100 * tiny['advbct']['mAP'][0]:.1f} < old/old "
            f"{100 * tiny['old/old']['final_mAP']:.1f}): its seen classes' mean cross mAP is "
            f"{seen_classes_cross_mAP(TINY, 'advbct'):.1f} (old/old "
            f"{seen_classes_cross_mAP(TINY, 'old/old'):.1f})"
        ),
        "cifar10: AdvBCT": (
            f"AdvBCT is compatible: {100 * cifar['advbct']['mAP'][0]:.1f} > "
            f"{100 * cifar['old/old']['final_mAP']:.1f} (own mAP "
            f"{100 * cifar['advbct']['final_mAP']:.1f}, AUC-mAP "
            f"{100 * cifar['advbct']['auc_mAP']:.1f} / "
            f"{100 * methods_uncertainty(CIFAR)['advbct']['auc_mAP']:.1f}), and the five seen "
            f"classes' mean cross mAP is {seen_classes_cross_mAP(CIFAR, 'advbct'):.1f} (old/old "
            f"{seen_classes_cross_mAP(CIFAR, 'old/old'):.1f})"
        ),
        "cifar10: RACT's gap": (
            "there RACT already ends within "
            f"{100 * (cifar['new/new']['final_mAP'] - cifar['ract']['final_mAP']):.1f} points"
        ),
        "digits: the models at scale 2": (
            f"old/old {100 * digits['old/old']['final_mAP']:.1f} and new/new "
            f"{100 * digits['new/new']['final_mAP']:.1f} now"
        ),
    }


QUOTES = quotes()


@pytest.mark.parametrize("name", list(QUOTES))
def test_a_test_split_number_on_the_page_is_the_committed_figures(name):
    assert QUOTES[name] in PAGE, f"docs/choices.md should say: {QUOTES[name]}"
