"""FLOPs are counted, not timed: a linear map's count is known in closed form."""

import torch
from torch import nn

from backfill_lib.models.flops import forward_flops


def test_a_linear_map_costs_two_flops_per_multiply_add():
    layer = nn.Linear(64, 32, bias=False)
    assert forward_flops(layer, torch.zeros(1, 64)) == 2 * 64 * 32
    assert forward_flops(layer, torch.zeros(5, 64)) == 5 * 2 * 64 * 32


def test_element_wise_work_is_not_counted():
    assert forward_flops(torch.relu, torch.zeros(1, 1000)) == 0
