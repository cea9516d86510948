"""An Adam or AdamW update and its vector-Jacobian product, by formula.

torchopt's `adam`/`adamw` build the update from a chain of transforms, each
a pass over the parameters into freshly allocated memory: 20-31 ms a step
on the CPU benchmark, where `torch.optim.Adam` (in place) takes 9-12.
Training and every replay of a step in the backward apply the update, so
`apply` computes the same arithmetic in seven passes with four new tensors
per parameter instead of about eleven and nine: 12-17 ms (the states it
makes are kept, so it cannot update in place).

The backward differentiates every training step: the gradient's part (a
Hessian-vector product and the data weights' mixed partials) needs autograd,
but the update is elementwise arithmetic whose derivative is known. Tracing
torchopt's update through autograd costs about thirty passes over the
parameters; `vjp` takes about fifteen, mostly in place, and a traced step
stops at the gradient.

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
``c2`` and ``lr_t`` take the values torchopt computes (its bias corrections
are float32 tensors of the count), so `apply` and torchopt's update agree to
rounding, and `vjp` is the derivative of `apply`; the exactness tests check
both against finite differences of retraining.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
from torchopt.pytree import tree_flatten, tree_iter, tree_map, tree_unflatten

from ._bergson import engine
from .config import TrainConfig
from .optim import lr_schedule


@dataclass(frozen=True)
class AdamUpdate:
    b1: float
    b2: float
    eps: float
    eps_root: float
    l2_decay: float  # adam: added to the gradient
    decoupled_decay: float  # adamw: added to the update
    lr: Callable[[int], float]

    @classmethod
    def for_config(cls, cfg: TrainConfig, total_steps: int) -> AdamUpdate | None:
        """The formulas for ``cfg``'s optimizer, or None (SGD: torchopt's update is cheap)."""
        if cfg.optimizer not in ("adam", "adamw"):
            return None
        decay = cfg.resolved_weight_decay
        return cls(b1=cfg.betas[0], b2=cfg.betas[1], eps=cfg.eps, eps_root=cfg.eps_root,
                   l2_decay=decay if cfg.optimizer == "adam" else 0.0,
                   decoupled_decay=decay if cfg.optimizer == "adamw" else 0.0,
                   lr=lr_schedule(cfg, total_steps))

    @staticmethod
    def _layout(state) -> _Layout | None:
        names_by_id = {id(t): k for k, t in state.params.items()}
        leaves, _ = tree_flatten(state.params)
        adam = [s for s in state.opt_state if type(s).__name__ == "ScaleByAdamState"]
        sched = [s for s in state.opt_state if type(s).__name__ == "ScaleByScheduleState"]
        if len(adam) != 1 or len(sched) != 1:
            return None
        floating = [t for t in tree_iter(state.opt_state)
                    if isinstance(t, torch.Tensor) and t.is_floating_point()]
        mu, nu = list(tree_iter(adam[0].mu)), list(tree_iter(adam[0].nu))
        # The engine's optimizer cotangents follow the state's floating leaves:
        # the formulas apply only if those are exactly mu then nu.
        if len(floating) != len(mu) + len(nu) or any(a is not b for a, b in zip(floating, mu + nu)):
            return None
        return _Layout([names_by_id[id(t)] for t in leaves], mu, nu,
                       list(tree_iter(adam[0].count)), list(tree_iter(sched[0].count)),
                       adam[0], sched[0])

    def applies_to(self, state) -> bool:
        return self._layout(state) is not None

    def _scalars(self, layout: _Layout) -> list[tuple[float, float, float]]:
        """``c1``, ``c2`` and ``lr_t`` of each parameter's update.

        The counts are read to the host at once: on a GPU, one synchronization a
        step rather than one per parameter.
        """
        counts = torch.stack([c.reshape(()).long() for c in layout.counts + layout.sched_counts])
        counts, n = counts.tolist(), len(layout.names)
        return [(*_bias_corrections(self.b1, self.b2, counts[j] + 1), self.lr(counts[n + j]))
                for j in range(n)]

    def _moments(self, layout: _Layout, j: int, theta: torch.Tensor, g: torch.Tensor, c2: float):
        """``(g', m', v', s)`` of parameter ``j``'s update, the arithmetic `apply` and `vjp` share."""
        if self.l2_decay:
            g = g.add(theta, alpha=self.l2_decay)
        m = layout.mu[j].mul(self.b1).add_(g, alpha=1 - self.b1)
        v = layout.nu[j].mul(self.b2).addcmul_(g, g, value=1 - self.b2)
        return g, m, v, v.div(c2).add_(self.eps_root).sqrt_()

    @torch.no_grad()
    def apply(self, state, grads: dict[str, torch.Tensor]):
        """The state after one update with ``grads`` (reduced and clipped); new tensors throughout."""
        layout = self._layout(state)
        params, mu, nu = dict(state.params), [], []
        for j, (name, (c1, c2, lr)) in enumerate(zip(layout.names, self._scalars(layout))):
            theta = state.params[name]
            _, m, v, d = self._moments(layout, j, theta, grads[name], c2)
            d.add_(self.eps)
            if self.decoupled_decay:
                theta = theta.mul(1 - lr * self.decoupled_decay)
            params[name] = theta.addcdiv(m, d, value=-lr / c1)
            mu.append(m)
            nu.append(v)
        adam = layout.adam._replace(
            mu=_rebuilt(layout.adam.mu, mu), nu=_rebuilt(layout.adam.nu, nu),
            count=tree_map(lambda c: c + 1, layout.adam.count))
        sched = layout.sched._replace(count=tree_map(lambda c: c + 1, layout.sched.count))
        opt_state = tuple(adam if s is layout.adam else sched if s is layout.sched else s
                          for s in state.opt_state)
        return engine().TrainerState(params, opt_state, state.buffers, state.batch_index + 1)

    @torch.no_grad()
    def vjp(self, state, grads: dict[str, torch.Tensor], param_cot: list[torch.Tensor],
            opt_cot: list[torch.Tensor]):
        """Pull the new state's cotangents back through the update.

        ``param_cot`` follows ``state.params``, ``opt_cot`` the optimizer
        state's floating leaves (mu, then nu). Returns the parameters' direct
        cotangents (same order), the gradient's cotangents by name, and the
        cotangents of the moments before the step (``opt_cot``'s order).
        """
        layout = self._layout(state)
        position = {k: i for i, k in enumerate(state.params)}
        b1, b2, n = self.b1, self.b2, len(layout.names)
        direct = list(param_cot)
        grad_cot: dict[str, torch.Tensor] = {}
        mu_cot, nu_cot = [None] * n, [None] * n
        for j, (name, (c1, c2, lr)) in enumerate(zip(layout.names, self._scalars(layout))):
            theta_bar = param_cot[position[name]]
            g, m_new, _, s = self._moments(layout, j, state.params[name], grads[name].detach(), c2)
            d = s.add(self.eps)
            # u_bar = -lr theta_bar is folded into the scalars below.
            m_bar = torch.addcdiv(opt_cot[j], theta_bar, d, value=-lr / c1)
            v_bar = torch.addcdiv(opt_cot[n + j], m_new.mul_(theta_bar), d.mul_(d).mul_(s),
                                  value=0.5 * lr / (c1 * c2))
            g_bar = m_bar.mul(1 - b1).addcmul_(v_bar, g, value=2 * (1 - b2))
            if self.decoupled_decay:
                theta_bar = theta_bar.add(theta_bar, alpha=-lr * self.decoupled_decay)
            if self.l2_decay:
                theta_bar = theta_bar.add(g_bar, alpha=self.l2_decay)
            direct[position[name]] = theta_bar
            grad_cot[name] = g_bar
            mu_cot[j], nu_cot[j] = m_bar.mul_(b1), v_bar.mul_(b2)
        return direct, grad_cot, mu_cot + nu_cot


@dataclass(frozen=True)
class _Layout:
    """Where an Adam state keeps what the formulas read (parameters in the moments' order)."""

    names: list[str]
    mu: list[torch.Tensor]
    nu: list[torch.Tensor]
    counts: list[torch.Tensor]  # Adam's, one per parameter
    sched_counts: list[torch.Tensor]  # the learning-rate schedule's
    adam: object  # torchopt's ScaleByAdamState
    sched: object  # torchopt's ScaleByScheduleState


@lru_cache(maxsize=256)
def _bias_corrections(b1: float, b2: float, t: int) -> tuple[float, float]:
    # torchopt's: float32 powers of the int64 count, whatever the model's dtype.
    t = torch.tensor(t)
    return float(1 - pow(b1, t)), float(1 - pow(b2, t))


def _rebuilt(tree, leaves: list[torch.Tensor]):
    """``tree`` with its tensors replaced by ``leaves`` (in flattening order)."""
    _, spec = tree_flatten(tree)
    return tree_unflatten(spec, leaves)
