"""The words of README.md and docs/results.md follow the verdicts of the committed figures
(issue 46, item 4). Wherever the pages state a claim's verdict they write it as
``claim (c) **holds** on CIFAR-10 extended-class``, and docs/results.md tables every
verdict; both are read back here against the committed files.

Figures made with the intervals carry ``verdicts.json`` (METHOD.md section 5b: holds,
fails or tie). Figures made before them state each claim per seed by points (``holds on all
2 seeds``, ``holds on seed 1 only``, ``does NOT hold on any of the 2 seeds``); what points
alone decide is written as such: a claim whose seeds or parts disagree is a **tie** whatever
the intervals, one ahead on every seed and part is **holds or tie**, one behind on every
seed and part **fails or tie**; an exact equality (claim (d) without compatible methods)
**holds**."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURES = {
    "digits": ROOT / "figures" / "digits" / "reproduce",
    "CIFAR-10": ROOT / "figures" / "cifar10",
    "Tiny-ImageNet": ROOT / "figures" / "tinyimagenet-dev100",
}
VERDICT = r"holds or tie|fails or tie|holds|fails|tie"
SETTING = r"extended-class|open-class|extended-data|heterogeneous"
STATED = re.compile(
    rf"[Cc]laim \(([a-e])\) \*\*({VERDICT})\*\* on ({'|'.join(FIGURES)}) ({SETTING})"
)
BOLD_VERDICT = re.compile(rf"\*\*({VERDICT})\*\*")
PAGES = {"README.md": ROOT / "README.md", "docs/results.md": ROOT / "docs" / "results.md"}


def point_verdict(line: str) -> str:
    """What a pre-interval claim line of a figures' results.md decides, as the module
    docstring says. The evidence lists ``A vs B`` for claims (b), (c), (e), and each
    compatible method's final mAP beside new/new's for (d)."""
    words, claim = line[2:].split(": ", 1)
    if words.startswith("holds on seed "):  # the seeds disagree
        return "tie"
    if "(no compatible method in this setting)" in claim:
        return "holds" if words.startswith("holds") else "fails"
    if words.startswith("holds"):
        return "holds or tie"
    if claim.startswith("(d)"):
        new_new = [float(v) for v in re.findall(r"new/new (\d+\.\d)", claim)]
        seeds = claim.split("; seed ")
        ahead = [
            new_new[i] > float(v)
            for i, seed in enumerate(seeds)
            for v in re.findall(r"(?:bct|advbct|ract|l2) (\d+\.\d)", seed)
        ]
    else:
        ahead = [float(a) > float(b) for a, b in re.findall(r"(\d+\.\d) vs (\d+\.\d)", claim)]
    return "tie" if any(ahead) else "fails or tie"


def committed_verdicts() -> dict[tuple[str, str, str], str]:
    """``{(dataset, setting, claim letter): verdict}`` of every committed reproduction."""
    verdicts = {}
    for dataset, folder in FIGURES.items():
        if (folder / "verdicts.json").exists():
            for setting, claims in json.loads((folder / "verdicts.json").read_text()).items():
                for claim in claims:
                    verdicts[dataset, setting, claim["text"][1]] = claim["verdict"]
            continue
        setting = None
        for line in (folder / "results.md").read_text().splitlines():
            if line.startswith("## "):
                setting = line[3:].strip()
            elif line.startswith("- ") and re.search(r": \([a-e]\) ", line):
                letter = re.search(r": \(([a-e])\) ", line).group(1)
                verdicts[dataset, setting, letter] = point_verdict(line)
    return verdicts


VERDICTS = committed_verdicts()


def test_every_committed_reproduction_has_its_verdicts():
    for dataset in FIGURES:
        settings = {s for d, s, _ in VERDICTS if d == dataset}
        assert "extended-class" in settings, dataset
        for setting in settings:
            letters = {c for d, s, c in VERDICTS if (d, s) == (dataset, setting)}
            assert letters == set("abcde"), (dataset, setting, letters)


@pytest.mark.parametrize("page", PAGES)
def test_every_verdict_a_page_states_is_the_committed_one(page):
    text = " ".join(PAGES[page].read_text().split())  # a statement may wrap lines
    stated = STATED.findall(text)
    assert stated, f"{page} states no claim's verdict"
    for letter, verdict, dataset, setting in stated:
        assert VERDICTS[dataset, setting, letter] == verdict, (
            f"{page}: claim ({letter}) on {dataset} {setting} is "
            f"{VERDICTS[dataset, setting, letter]!r} in the committed figures, not {verdict!r}"
        )


@pytest.mark.parametrize("page", PAGES)
def test_a_page_writes_a_verdict_only_where_this_test_can_read_it(page):
    """A bold verdict word outside ``claim (x) **...** on DATASET SETTING`` or the verdict
    table would escape the check above."""
    text = " ".join(PAGES[page].read_text().split())
    bold, read = len(BOLD_VERDICT.findall(text)), len(STATED.findall(text))
    assert bold == read, f"{page}: {bold} bold verdict words, {read} of them in a checked statement"


def verdict_table() -> dict[tuple[str, str, str], str]:
    """docs/results.md's table: ``| dataset | setting | (a) | ... | (e) |``."""
    table = {}
    for line in PAGES["docs/results.md"].read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0] in FIGURES and re.fullmatch(SETTING, cells[1]):
            for letter, cell in zip("abcde", cells[2:], strict=True):
                table[cells[0], cells[1], letter] = cell
    return table


def test_the_results_page_tables_every_committed_verdict():
    assert verdict_table() == VERDICTS


@pytest.mark.parametrize(
    ("line", "verdict"),
    [
        ("- holds on all 2 seeds: (c) rt+mc beats rt. seed 0: 71.1 vs 60.6", "holds or tie"),
        ("- holds on seed 1 only (of [0, 1]): (a) drm rises. seed 0: ...", "tie"),
        ("- does NOT hold on any of the 2 seeds: (b) x. 15.2 vs 15.3; 16.8 vs 16.6", "tie"),
        (
            "- does NOT hold on any of the 2 seeds: (c) x. 71.8 vs 72.5; 71.9 vs 73.1",
            "fails or tie",
        ),
        (
            "- does NOT hold on any of the 2 seeds: (d) x. seed 0: rt+mc final 20.9 = new/new "
            "20.9; bct 25.1, ract 20.2; seed 1: rt+mc final 21.1 = new/new 21.1; bct 25.0",
            "tie",
        ),
        ("- holds on all 2 seeds: (d) x (no compatible method in this setting). y", "holds"),
    ],
)
def test_what_points_alone_decide(line, verdict):
    assert point_verdict(line) == verdict
