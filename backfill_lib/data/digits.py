"""scikit-learn's 8x8 digits: the embedded default dataset (it ships in sklearn's wheel)."""

from __future__ import annotations

import numpy as np
import torch

from .dataset import ImageDataset

__all__ = ["load_digits"]


def load_digits(test_fraction: float = 0.5, seed: int = 0) -> ImageDataset:
    """scikit-learn's 1,797 8x8 digits, split once (stratified, seeded) into train and test."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    digits = sk_load_digits()
    images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)[:, None]  # 0..16 -> 0..255
    idx_train, idx_test = train_test_split(
        np.arange(len(images)), test_size=test_fraction, stratify=digits.target, random_state=seed
    )
    images_t = torch.from_numpy(images)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    return ImageDataset(
        name="digits",
        train_images=images_t[idx_train],
        train_labels=labels[idx_train],
        test_images=images_t[idx_test],
        test_labels=labels[idx_test],
        class_names=[str(c) for c in range(10)],
    )
