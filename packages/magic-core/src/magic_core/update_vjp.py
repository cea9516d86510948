"""The vector-Jacobian product of an Adam or AdamW update, by formula.

The backward differentiates every training step: the gradient's part (a
Hessian-vector product and the data weights' mixed partials) needs autograd,
but the optimizer update is elementwise arithmetic whose derivative is
known. Tracing torchopt's update through autograd costs about thirty
passes over the parameters, each into freshly allocated memory; the formula
below takes about fifteen, mostly in place, and a traced step stops at the
gradient.

For one parameter, with ``g`` the step's (reduced, clipped) gradient, the
update of torchopt's ``adam``/``adamw`` is::

    g' = g + wd_l2 * theta                      (adam's coupled weight decay)
    m' = b1 m + (1 - b1) g'        v' = b2 v + (1 - b2) g'^2
    c1 = 1 - b1^t                  c2 = 1 - b2^t    (t: count after the step)
    s  = sqrt(v' / c2 + eps_root)  d  = s + eps
    u  = (m' / c1) / d + wd_decoupled * theta      (adamw's decay)
    theta' = theta - lr_t u

and for cotangents ``(theta_bar', m_bar', v_bar')`` of the new state::

    u_bar  = -lr_t theta_bar'
    m_bar* = m_bar' + u_bar / (c1 d)
    v_bar* = v_bar' - u_bar (m' / c1) / (d^2 2 s c2)
    g_bar  = (1 - b1) m_bar* + 2 (1 - b2) g' v_bar*
    theta_bar (direct) = theta_bar' + wd_decoupled u_bar + wd_l2 g_bar
    m_bar = b1 m_bar*              v_bar = b2 v_bar*

``g_bar`` is then pulled back through the gradient by autograd. ``c1``,
``c2`` and ``lr_t`` are computed exactly as torchopt computes them (the
bias corrections as tensors of the count), so the two paths agree to
rounding; the exactness tests check both against finite differences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchopt.pytree import tree_flatten, tree_iter

from .config import TrainConfig
from .optim import lr_schedule


@dataclass(frozen=True)
class AdamUpdateVJP:
    b1: float
    b2: float
    eps: float
    eps_root: float
    l2_decay: float  # adam: added to the gradient
    decoupled_decay: float  # adamw: added to the update
    lr: Callable[[int], float]

    @classmethod
    def for_config(cls, cfg: TrainConfig, total_steps: int) -> AdamUpdateVJP | None:
        """The formula for ``cfg``'s optimizer, or None (SGD: autograd is cheap there)."""
        if cfg.optimizer not in ("adam", "adamw"):
            return None
        decay = cfg.resolved_weight_decay
        return cls(b1=cfg.betas[0], b2=cfg.betas[1], eps=cfg.eps, eps_root=cfg.eps_root,
                   l2_decay=decay if cfg.optimizer == "adam" else 0.0,
                   decoupled_decay=decay if cfg.optimizer == "adamw" else 0.0,
                   lr=lr_schedule(cfg, total_steps))

    @staticmethod
    def _layout(state):
        """(parameter names in the moments' order, moments, Adam counts, schedule count) or None."""
        names_by_id = {id(t): k for k, t in state.params.items()}
        leaves, _ = tree_flatten(state.params)
        adam = [s for s in state.opt_state if type(s).__name__ == "ScaleByAdamState"]
        sched = [s for s in state.opt_state if type(s).__name__ == "ScaleByScheduleState"]
        if len(adam) != 1 or len(sched) != 1:
            return None
        adam, sched = adam[0], sched[0]
        floating = [t for t in tree_iter(state.opt_state)
                    if isinstance(t, torch.Tensor) and t.is_floating_point()]
        mu, nu = list(tree_iter(adam.mu)), list(tree_iter(adam.nu))
        # The engine's optimizer cotangents follow the state's floating leaves:
        # the formula applies only if those are exactly mu then nu.
        if len(floating) != len(mu) + len(nu) or any(a is not b for a, b in zip(floating, mu + nu)):
            return None
        names = [names_by_id[id(t)] for t in leaves]
        return names, mu, nu, list(tree_iter(adam.count)), list(tree_iter(sched.count))

    def applies_to(self, state) -> bool:
        return self._layout(state) is not None

    @torch.no_grad()
    def __call__(self, state, grads: dict[str, torch.Tensor], param_cot: list[torch.Tensor],
                 opt_cot: list[torch.Tensor]):
        """Pull the new state's cotangents back through the update.

        ``param_cot`` follows ``state.params``, ``opt_cot`` the optimizer
        state's floating leaves (mu, then nu). Returns the parameters' direct
        cotangents (same order), the gradient's cotangents by name, and the
        cotangents of the moments before the step (``opt_cot``'s order).
        """
        names, mu, nu, counts, sched_counts = self._layout(state)
        position = {k: i for i, k in enumerate(state.params)}
        b1, b2, eps, eps_root = self.b1, self.b2, self.eps, self.eps_root
        direct = list(param_cot)
        grad_cot: dict[str, torch.Tensor] = {}
        mu_cot, nu_cot = [None] * len(names), [None] * len(names)
        for j, name in enumerate(names):
            theta, g = state.params[name], grads[name].detach()
            theta_bar = param_cot[position[name]]
            if self.l2_decay:
                g = g.add(theta, alpha=self.l2_decay)
            t = counts[j] + 1
            c1, c2 = 1 - pow(b1, t), 1 - pow(b2, t)
            lr = self.lr(sched_counts[j])
            m_new = mu[j].mul(b1).add_(g, alpha=1 - b1)
            v_new = nu[j].mul(b2).addcmul_(g, g, value=1 - b2)
            s = v_new.div_(c2).add_(eps_root).sqrt_()  # v_new is not needed past here
            d = s.add(eps)
            u_bar = theta_bar.mul(-lr)
            m_bar = u_bar.div(d).div_(c1).add_(opt_cot[j])
            v_bar = (u_bar.mul(m_new).div_(c1).div_(d).div_(d).div_(s).mul_(-0.5).div_(c2)
                     .add_(opt_cot[len(names) + j]))
            g_bar = torch.addcmul(m_bar.mul(1 - b1), v_bar, g, value=2 * (1 - b2))
            if self.decoupled_decay:
                theta_bar = theta_bar.add(u_bar, alpha=self.decoupled_decay)
            if self.l2_decay:
                theta_bar = theta_bar.add(g_bar, alpha=self.l2_decay)
            direct[position[name]] = theta_bar
            grad_cot[name] = g_bar
            mu_cot[j], nu_cot[j] = m_bar.mul_(b1), v_bar.mul_(b2)
        return direct, grad_cot, mu_cot + nu_cot
