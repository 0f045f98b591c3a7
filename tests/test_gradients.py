"""Gradient identities behind hand-derived policy-gradient code, checked against autograd.

Classic single-file implementations (Karpathy's pg-pong, the bandit and CartPole
tutorials) write the gradient of log pi by hand; the framework leaves it to autograd.
These tests pin the identities that make both the same:

* sigmoid policy over two actions, ``p = sigmoid(z) = pi(y = 1)``:
  ``d log pi(y) / dz = y - p`` (pg-pong's ``dlogps.append(y - aprob)``, the "fake label");
* softmax policy: ``d log pi(a) / d logits = onehot(a) - pi``;
* softmax Jacobian: ``d pi / d logits = diag(pi) - pi pi^T``;

and connect them to what the learner differentiates: a two-action softmax is a sigmoid
of the logit difference, and the learner's exploring policy with ``eps = 0`` is the
softmax, so its ``-A log pi(a)`` loss has the logits gradient ``-A (onehot(a) - pi)``.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from marl.core.policy import exploration_probs


def test_sigmoid_policy_log_prob_gradient_is_label_minus_prob():
    g = torch.Generator().manual_seed(0)
    z = (torch.randn(200, generator=g, dtype=torch.float64) * 3).requires_grad_()
    y = torch.randint(0, 2, (200,), generator=g).double()
    p = torch.sigmoid(z)
    log_pi = y * torch.log(p) + (1 - y) * torch.log(1 - p)  # log pi(y), y in {0, 1}
    (grad,) = torch.autograd.grad(log_pi.sum(), z, retain_graph=True)
    torch.testing.assert_close(grad, y - p.detach())
    # pg-pong's update: the advantage-weighted fake label is the policy gradient
    adv = torch.randn(200, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad((adv * log_pi).sum(), z)
    torch.testing.assert_close(grad, adv * (y - p.detach()))


def test_two_action_softmax_is_a_sigmoid_of_the_logit_difference():
    """The framework's two-action actor (softmax over UP, DOWN) is pg-pong's sigmoid
    policy on ``z = logit_UP - logit_DOWN``, with the same fake-label gradient."""
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(100, 2, generator=g, dtype=torch.float64) * 2).requires_grad_()
    a = torch.randint(0, 2, (100,), generator=g)
    pi = torch.softmax(logits, -1)
    z = logits[:, 0] - logits[:, 1]
    torch.testing.assert_close(pi[:, 0], torch.sigmoid(z))
    y = (a == 0).double()  # the fake label: 1 for UP
    log_pi = torch.log_softmax(logits, -1).gather(-1, a[:, None]).squeeze(-1)
    (grad,) = torch.autograd.grad(log_pi.sum(), logits)
    p_up = torch.sigmoid(z).detach()
    torch.testing.assert_close(grad[:, 0], y - p_up)
    torch.testing.assert_close(grad[:, 1], -(y - p_up))


@pytest.mark.parametrize("n_actions", [2, 4, 6])
def test_softmax_log_prob_gradient_is_onehot_minus_pi(n_actions):
    g = torch.Generator().manual_seed(n_actions)
    logits = (torch.randn(64, n_actions, generator=g, dtype=torch.float64) * 2).requires_grad_()
    a = torch.randint(0, n_actions, (64,), generator=g)
    log_pi = torch.log_softmax(logits, -1).gather(-1, a[:, None]).squeeze(-1)
    (grad,) = torch.autograd.grad(log_pi.sum(), logits)
    pi = torch.softmax(logits, -1).detach()
    torch.testing.assert_close(grad, F.one_hot(a, n_actions).double() - pi)


@pytest.mark.parametrize("n_actions", [2, 3, 5])
def test_softmax_jacobian_is_diag_p_minus_p_pt(n_actions):
    g = torch.Generator().manual_seed(10 + n_actions)
    for _ in range(5):
        logits = torch.randn(n_actions, generator=g, dtype=torch.float64) * 2
        jac = torch.autograd.functional.jacobian(lambda x: torch.softmax(x, -1), logits)
        p = torch.softmax(logits, -1)
        torch.testing.assert_close(jac, torch.diag(p) - torch.outer(p, p))
        torch.testing.assert_close(jac.sum(0), torch.zeros(n_actions, dtype=torch.float64))


def test_learner_policy_gradient_at_eps_zero_is_the_hand_derived_one():
    """``exploration_probs`` with eps = 0 is the softmax; the learner's actor loss
    ``-mean(A log pi(a))`` then has the logits gradient ``-A (onehot(a) - pi) / n``. With
    eps > 0 it is the same direction scaled per entry by ``(1 - eps) softmax / pi``."""
    g = torch.Generator().manual_seed(3)
    n, a_dim = 32, 4
    logits = torch.randn(n, a_dim, generator=g, dtype=torch.float64).requires_grad_()
    actions = torch.randint(0, a_dim, (n,), generator=g)
    adv = torch.randn(n, generator=g, dtype=torch.float64)
    soft = torch.softmax(logits, -1).detach()
    onehot = F.one_hot(actions, a_dim).double()
    for eps in (0.0, 0.3):
        pi = exploration_probs(logits, eps)
        logp = torch.log(pi.gather(-1, actions[:, None]).squeeze(-1))
        loss = -(adv * logp).mean()
        (grad,) = torch.autograd.grad(loss, logits)
        pi_a = ((1 - eps) * soft + eps / a_dim).gather(-1, actions[:, None])
        scale = (1 - eps) * soft.gather(-1, actions[:, None]) / pi_a  # 1 at eps = 0
        torch.testing.assert_close(grad, -(adv[:, None] * scale * (onehot - soft)) / n)
