"""The dataset every loader returns refuses what it could only be trained on wrongly."""

import pytest
import torch

from backfill_lib.data.dataset import ImageDataset


def dataset(train_labels, test_labels, classes=("a", "b")) -> ImageDataset:
    images = torch.zeros(len(train_labels), 1, 4, 4, dtype=torch.uint8)
    test_images = torch.zeros(len(test_labels), 1, 4, 4, dtype=torch.uint8)
    return ImageDataset(
        "toy", images, torch.tensor(train_labels), test_images, torch.tensor(test_labels),
        list(classes),
    )  # fmt: skip


def test_a_consistent_dataset_is_accepted():
    assert dataset([0, 1, 1], [1, 0]).num_classes == 2


@pytest.mark.parametrize(
    ("train", "test", "classes", "message"),
    [
        ([0, 0], [0], ("a",), "1 class"),
        ([0, 1, 2], [0], ("a", "b"), "train labels from 0 to 2, outside its 2 classes"),
        ([0, 1], [-1], ("a", "b"), "test labels from -1 to -1"),
    ],
)
def test_one_class_or_labels_outside_the_classes_are_refused(train, test, classes, message):
    with pytest.raises(ValueError, match=message):
        dataset(train, test, classes)


def test_images_and_labels_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="3 train images but 2 labels"):
        ImageDataset(
            "toy", torch.zeros(3, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]),
            torch.zeros(1, 1, 4, 4, dtype=torch.uint8), torch.tensor([1]), ["a", "b"],
        )  # fmt: skip
