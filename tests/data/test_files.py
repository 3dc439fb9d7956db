"""Images read from disk as training goes: the loader shards an epoch over processes, and
fit_files trains from files that are never held in memory at once, resuming exactly."""

import torch

from backfill_lib.data.files import ImageFiles
from backfill_lib.data.load import load_dataset
from tests.conftest import TREE_CLASSES, TREE_PER_CLASS


def test_files_decode_on_demand_to_the_requested_size(image_tree):
    files = ImageFiles.from_folder(image_tree, "test", image_size=16, train=False)
    assert len(files) == TREE_CLASSES * TREE_PER_CLASS and files.class_names == ["c0", "c1", "c2"]
    assert all(isinstance(path, type(image_tree)) for path, _ in files.items)  # paths, not pixels
    image, label = files[TREE_PER_CLASS + 5]  # a 64x48 image: resized, centre-cropped
    assert image.dtype == torch.uint8 and image.shape == (3, 16, 16) and label == 1
    assert torch.equal(files[7][0], files[7][0])  # evaluation transforms are deterministic
    memory = load_dataset(f"imagefolder:{image_tree}", image_size=16)
    assert torch.equal(files.labels, memory.test_labels)  # the same files, the same labels
