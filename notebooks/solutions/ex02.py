"""Notebook 02, backward-compatible training: solutions."""

from __future__ import annotations

import numpy as np


def compatibility_verdict(matrix: dict[str, dict[str, float]], method: str) -> tuple[bool, float]:
    """Exercise 1 (implement). From the cross-model mAP matrix (``matrix[query][gallery]``),
    the compatibility criterion M(new, old) > M(old, old) for ``method``'s new model and its
    update gain (M(new, old) - M(old, old)) / (M(new, new) - M(old, old)) in percent, where
    M(new, new) is the *independent* new model's."""
    cross, old_old, new_new = matrix[method]["old"], matrix["old"]["old"], matrix["new"]["new"]
    return cross > old_old, 100.0 * (cross - old_old) / (new_new - old_old)


def seen_and_unseen_map(by_class: dict[str, float], old_classes: int) -> tuple[float, float]:
    """Exercise 2 (predict). Against the old gallery, where is a compatible model's mAP
    lower: on the classes the old model was trained on, or on those it never saw?

    Prediction: on the unseen classes, by far. The old model put the images of classes it
    never saw wherever its features happened to send them, with no class structure to be
    compatible with; BCT reaches them only through rows synthesised from those scattered
    class means. On digits BCT's queries score 95.6 on the seen classes and 57.6 on the
    unseen ones (old/old itself: 95.2 and 27.4). ``by_class`` is one entry of
    ``compatibility()["by_class"]``; returns (seen, unseen) mean mAP.
    """
    seen = [v for c, v in by_class.items() if int(c) < old_classes]
    unseen = [v for c, v in by_class.items() if int(c) >= old_classes]
    return float(np.mean(seen)), float(np.mean(unseen))
