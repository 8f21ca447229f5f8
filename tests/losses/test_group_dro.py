"""GroupDROLoss against hand computations (Sagawa et al. 2020 online update)."""

from __future__ import annotations

import math

import pytest
import torch

from spatialspec.losses import GroupDROLoss


def _softmax(values):
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def test_one_step_by_hand():
    loss_fn = GroupDROLoss(n_groups=3, step_size=0.5)
    losses = torch.tensor([1.0, 3.0, 2.0, 4.0])
    groups = torch.tensor([0, 1, 1, 0])
    # group means: L0 = (1 + 4) / 2 = 2.5, L1 = (3 + 2) / 2 = 2.5, L2 absent = 0
    # logits: [0.5 * 2.5, 0.5 * 2.5, 0] = [1.25, 1.25, 0]
    q = _softmax([1.25, 1.25, 0.0])
    out = loss_fn(losses, groups)
    assert loss_fn.q.tolist() == pytest.approx(q, abs=1e-6)
    assert out.item() == pytest.approx(q[0] * 2.5 + q[1] * 2.5, abs=1e-6)


def test_two_steps_with_size_adjustment_and_counts():
    loss_fn = GroupDROLoss(n_groups=2, step_size=0.1, size_adjustment=3.0, group_counts=[100, 4])
    loss_fn(torch.tensor([1.0, 2.0]), torch.tensor([0, 1]))
    loss_fn(torch.tensor([0.5, 0.5, 1.0]), torch.tensor([0, 0, 1]))
    # step 1: logit0 += 0.1 * (1 + 3/10) = 0.13, logit1 += 0.1 * (2 + 3/2) = 0.35
    # step 2: logit0 += 0.1 * (0.5 + 0.3) = 0.08 -> 0.21, logit1 += 0.1 * (1 + 1.5) = 0.25 -> 0.60
    assert loss_fn.logits.tolist() == pytest.approx([0.21, 0.60], abs=1e-6)
    assert loss_fn.q.tolist() == pytest.approx(_softmax([0.21, 0.60]), abs=1e-6)


def test_absent_groups_move_by_their_size_adjustment_as_in_the_reference():
    """Sagawa et al.'s LossComputer.compute_robust_loss updates every group on every batch: an absent group has loss 0
    and still gains its adjustment C / sqrt(n_g); a group without training samples (n_g = 0) stays put."""
    loss_fn = GroupDROLoss(n_groups=4, step_size=0.5, size_adjustment=2.0, group_counts=[4, 16, 100, 0])
    out = loss_fn(torch.tensor([1.0, 3.0, 0.5]), torch.tensor([0, 0, 1]))
    # L0 = 2, L1 = 0.5, L2 = L3 = 0 (absent); adjustments 2/2 = 1, 2/4 = 0.5, 2/10 = 0.2, none for the empty group
    logits = [0.5 * (2.0 + 1.0), 0.5 * (0.5 + 0.5), 0.5 * (0.0 + 0.2), 0.0]
    assert loss_fn.logits.tolist() == pytest.approx(logits, abs=1e-6)
    q = _softmax(logits)
    # the returned loss leaves out the constant sum_g q_g C / sqrt(n_g) the reference adds to its value
    assert out.item() == pytest.approx(q[0] * 2.0 + q[1] * 0.5, abs=1e-6)
    # a second batch of group 0 alone: the absent groups 1 and 2 keep growing by their adjustment
    loss_fn(torch.tensor([1.0]), torch.tensor([0]))
    logits = [logits[0] + 0.5 * (1.0 + 1.0), logits[1] + 0.5 * 0.5, logits[2] + 0.5 * 0.2, 0.0]
    assert loss_fn.logits.tolist() == pytest.approx(logits, abs=1e-6)
    # an empty group that does appear in a batch counts as one sample
    loss_fn(torch.tensor([2.0]), torch.tensor([3]))
    assert loss_fn.logits[3].item() == pytest.approx(0.5 * (2.0 + 2.0))


def test_absent_groups_without_adjustment_keep_their_weight():
    # C = 0: an absent group's step is its loss, 0, as before
    loss_fn = GroupDROLoss(n_groups=3, step_size=1.0, group_counts=[5, 5, 5])
    loss_fn(torch.tensor([1.0, 2.0]), torch.tensor([0, 1]))
    assert loss_fn.logits.tolist() == pytest.approx([1.0, 2.0, 0.0])


def test_batch_counts_used_without_group_counts():
    loss_fn = GroupDROLoss(n_groups=2, step_size=1.0, size_adjustment=2.0)
    loss_fn(torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0]), torch.tensor([0, 0, 0, 0, 1]))
    # logit0 = 2 / sqrt(4) = 1, logit1 = 2 / sqrt(1) = 2
    assert loss_fn.logits.tolist() == pytest.approx([1.0, 2.0])


def test_equal_losses_keep_q_uniform():
    loss_fn = GroupDROLoss(n_groups=4, step_size=0.3)
    for _ in range(5):
        loss_fn(torch.full((8,), 0.7), torch.arange(8) % 4)
    assert loss_fn.q.tolist() == pytest.approx([0.25] * 4)


def test_eval_mode_does_not_update_and_gradient_flows_through_losses_only():
    loss_fn = GroupDROLoss(n_groups=2, step_size=1.0)
    loss_fn(torch.tensor([1.0, 0.0]), torch.tensor([0, 1]))
    q = loss_fn.q.clone()
    loss_fn.eval()
    x = torch.tensor([5.0, 1.0], requires_grad=True)
    out = loss_fn(x, torch.tensor([0, 1]))
    assert torch.equal(loss_fn.q, q)
    out.backward()
    assert x.grad.tolist() == pytest.approx(q.tolist())


@pytest.mark.parametrize(
    "kwargs, message",
    [({"n_groups": 0}, "n_groups"), ({"n_groups": 2, "step_size": -1}, "step_size"),
     ({"n_groups": 2, "size_adjustment": -1}, "size_adjustment"),
     ({"n_groups": 2, "group_counts": [1, 2, 3]}, "group_counts"), ({"n_groups": 2, "group_counts": [-1, 2]},
                                                                    "group_counts")],
)
def test_invalid_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GroupDROLoss(**kwargs)


def test_invalid_inputs():
    loss_fn = GroupDROLoss(n_groups=2)
    with pytest.raises(ValueError, match="group ids"):
        loss_fn(torch.tensor([1.0]), torch.tensor([2]))
    with pytest.raises(ValueError, match="same length"):
        loss_fn(torch.tensor([1.0, 2.0]), torch.tensor([0]))
