"""stats.count_true's word-at-a-time byte sums against a plain sum of the mask, on every layout it
takes a branch for (S a multiple of 8 or not, S > 255, views that start mid-word, strided rows)."""

import pytest
import torch

from bnviz.hooks import stats


@pytest.mark.parametrize("s", [8, 64, 248, 63, 7, 256, 300])
def test_count_true_equals_a_plain_sum(s):
    g = torch.Generator().manual_seed(s)
    mask = torch.rand(3, 5, 17, s, generator=g) < 0.4
    mask[0, 0, 0] = True  # a full row: the largest count
    mask[0, 0, 1] = False
    truth = mask.sum(-1).float()
    assert torch.equal(stats.count_true(mask), truth)
    assert torch.equal(stats.count_true(mask[:, 1:4]), truth[:, 1:4])  # a view inside the buffer
    assert torch.equal(stats.count_true(mask[..., 1:]), mask[..., 1:].sum(-1).float())  # rows mid-word
    assert torch.equal(stats.count_true(mask[:, ::2]), truth[:, ::2])  # strided rows
