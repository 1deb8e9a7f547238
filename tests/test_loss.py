import math

import torch

from fer_mine.amacnn.loss import HybridLoss, focal_loss, inverse_frequency_weights


def test_inverse_frequency_weights_by_hand():
    # counts 3, 1, 0 over K=3 classes, N=4: w = 4/(3*3), 4/(3*1), 0
    weights = inverse_frequency_weights([0, 0, 0, 1], 3)
    assert torch.allclose(weights, torch.tensor([4 / 9, 4 / 3, 0.0]))


def test_focal_loss_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # p = [0.25, 0.75]
    # target 1: -0.25 * (1 - 0.75)^2 * log(0.75)
    expected = -0.25 * 0.25**2 * math.log(0.75)
    assert math.isclose(focal_loss(logits, torch.tensor([1])).item(), expected, rel_tol=1e-6)
    # gamma 0, alpha 1 is plain cross-entropy
    ce = -math.log(0.25)
    assert math.isclose(focal_loss(logits, torch.tensor([0]), 0.0, 1.0).item(), ce, rel_tol=1e-6)


def test_hybrid_loss_is_weighted_ce_plus_focal_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    targets = torch.tensor([0, 1])
    weights = torch.tensor([2.0, 1.0])
    # weighted CE = (2 * -log .25 + 1 * -log .75) / (2 + 1)
    ce = (2 * -math.log(0.25) + -math.log(0.75)) / 3
    focal = (-0.25 * 0.75**2 * math.log(0.25) + -0.25 * 0.25**2 * math.log(0.75)) / 2
    loss = HybridLoss(weights, ce_weight=1.0, focal_weight=0.5)(logits, targets)
    assert math.isclose(loss.item(), ce + 0.5 * focal, rel_tol=1e-6)
    only_focal = HybridLoss(weights, ce_weight=0.0, focal_weight=1.0)(logits, targets)
    assert math.isclose(only_focal.item(), focal, rel_tol=1e-6)


def test_soft_targets_weight_each_image_by_its_majority_label():
    torch.manual_seed(0)
    logits = torch.randn(6, 3)
    labels = torch.tensor([0, 0, 0, 0, 1, 2])
    weights = inverse_frequency_weights(labels.tolist(), 3)  # 0.5, 2, 2
    loss = HybridLoss(weights)
    one_hot = torch.nn.functional.one_hot(labels, 3).float()
    # one-hot distributions are hard labels: the same loss, class weights included (with label
    # smoothing, torch weights the smoothed share by each class's weight, soft targets by the image's)
    assert math.isclose(loss(logits, one_hot).item(), loss(logits, labels).item(), rel_tol=1e-5)
    # a stray 10% vote for a rare class costs what it costs an unweighted loss, times the
    # weight of the image's own label; it does not take the rare class's weight
    stray = one_hot.clone()
    stray[:4] = torch.tensor([0.9, 0.1, 0.0])
    ce_only = HybridLoss(weights, focal_weight=0.0)
    log_p = torch.log_softmax(logits, dim=1)
    per_image = -(stray * log_p).sum(dim=1)
    expected = (weights[labels] * per_image).sum() / weights[labels].sum()
    assert math.isclose(ce_only(logits, stray).item(), expected.item(), rel_tol=1e-5)
