"""The settings' old/new training splits and the validation holdout."""

import pytest
import torch

from backfill_lib.data.load import load_dataset
from backfill_lib.data.splits import evaluation_set, make_split, validation_holdout


def test_splits():
    ds = load_dataset("digits")
    ext = make_split(ds, "extended-class")
    assert ext.old_classes == 5 and (ds.train_labels[ext.old_indices] < 5).all()
    assert len(ext.new_indices) == len(ds.train_labels)
    data = make_split(ds, "extended-data", seed=1)
    assert len(data.old_indices) == len(ds.train_labels) // 2 and data.old_classes == 10
    open_ = make_split(ds, "open-class")
    assert open_.test_classes == (8, 9) and (ds.train_labels[open_.new_indices] < 8).all()
    _, test_labels = evaluation_set(ds, open_)
    assert set(test_labels.tolist()) == {8, 9}
    with pytest.raises(ValueError, match="unknown setting"):
        make_split(ds, "extended-everything")


def test_validation_holdout_is_disjoint_and_stratified():
    labels = torch.arange(100) % 5
    fit, val = validation_holdout(labels, 0.2)
    assert len(set(fit.tolist()) & set(val.tolist())) == 0 and len(fit) + len(val) == 100
    assert torch.bincount(labels[val]).tolist() == [4] * 5
