"""Where training computes: bf16 counts as native on a GPU and on CPUs with AMX or AVX512-BF16."""

import torch

from backfill_lib.training.compute import bf16_is_native


def test_bf16_is_native_on_a_gpu(monkeypatch):
    assert isinstance(bf16_is_native(), bool)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert bf16_is_native()
