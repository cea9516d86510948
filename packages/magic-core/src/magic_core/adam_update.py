"""Adam and AdamW as `torch.optim` computes them, and their vector-Jacobian product by formula.

`apply` is `torch.optim.Adam`/`AdamW`'s update (their default single-tensor
implementation) to the last bit: the same operations on the same operands in
the same order, with the bias corrections as Python floats. The
parameters and moments of a run therefore equal those of a plain
`torch.optim` loop given the same gradients. `apply` writes new tensors (the
engine keeps states, so it cannot update in place); `traced` is the same
arithmetic out of place for autograd, also on DTensor shards.

The backward differentiates every training step: the gradient's part (a
Hessian-vector product and the data weights' mixed partials) needs autograd,
but the update is elementwise arithmetic whose derivative is known. `vjp`
takes it by formula in about fifteen passes over the parameters, mostly in
place, where tracing the update costs about thirty; a traced step then stops
at the gradient.

For one parameter at update ``t`` (1-based), with ``g`` the step's reduced,
clipped gradient and Python floats ``w1 = 1 - b1``, ``c1 = 1 - b1^t``,
``k = (1 - b2^t)^(1/2)``, ``a = lr_t / c1``::

    g' = g + wd_l2 theta                        (adam: L2 decay, on the gradient)
    theta~ = (1 - lr_t wd_dec) theta            (adamw: decoupled decay, applied first)
    m' = lerp(m, g', w1) = m + w1 (g' - m)      v' = b2 v + (1 - b2) g'^2
    s  = sqrt(v') / k                           d  = s + eps
    theta' = theta~ - a m' / d

and for cotangents ``(theta_bar', m_bar', v_bar')`` of the new state::

    m_bar* = m_bar' - a theta_bar' / d
    v_bar* = v_bar' + a theta_bar' (m' / s) / (2 k^2 d^2)
    g_bar  = w1 m_bar* + 2 (1 - b2) g' v_bar*
    theta_bar (direct) = (1 - lr_t wd_dec) theta_bar' + wd_l2 g_bar
    m_bar = (1 - w1) m_bar*                     v_bar = b2 v_bar*

``g_bar`` is then pulled back through the gradient by autograd.

Where ``v' = 0`` no gradient has ever reached the entry (an unused embedding
row), so ``m' = 0`` too and the update does not depend on ``v'`` there: its
partial derivative is 0, although that of ``sqrt`` at 0 is infinite (autograd
would make it 0 * inf = nan). `vjp` takes ``m' / s`` as 0 where ``s = 0``, and
`traced` takes ``sqrt`` through a mask that gives autograd the same 0. This is
what torchopt's ``eps_root`` was for, without changing the update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torchopt.pytree import tree_flatten, tree_iter, tree_map, tree_unflatten

from .config import TrainConfig


@dataclass(frozen=True)
class AdamUpdate:
    b1: float
    b2: float
    eps: float
    l2_decay: float  # adam: added to the gradient
    decoupled_decay: float  # adamw: shrinks the parameter before the update
    lr: Callable[[int], float]

    @classmethod
    def for_config(cls, cfg: TrainConfig, total_steps: int) -> AdamUpdate | None:
        """The formulas for ``cfg``'s optimizer when they are Adam's, else None (SGD: torchopt's update is cheap)."""
        from .optim import exact_update

        update = exact_update(cfg, total_steps)
        return update if isinstance(update, cls) else None

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

    def _known_layout(self, state) -> _Layout:
        layout = self._layout(state)
        if layout is None:
            raise ValueError("not an Adam state with torchopt's layout; check applies_to first")
        return layout

    def _scalars(self, layout: _Layout) -> list[_Scalars]:
        """Each parameter's Python-float coefficients, as torch.optim computes them.

        The counts are read to the host at once: on a GPU, one synchronization a
        step rather than one per parameter.
        """
        stacked = torch.stack([c.reshape(()).long() for c in layout.counts + layout.sched_counts])
        counts: list[int] = stacked.tolist()
        n = len(layout.names)
        return [_Scalars.of(self, counts[j] + 1, self.lr(counts[n + j])) for j in range(n)]

    def _moments(self, layout: _Layout, j: int, theta: torch.Tensor, g: torch.Tensor,
                 sc: _Scalars):
        """``(g', m', v', s)`` of parameter ``j``'s update: new tensors, by torch.optim's operations."""
        if self.l2_decay:
            g = g.add(theta, alpha=self.l2_decay)
        m = torch.lerp(layout.mu[j], g, sc.w1)
        v = layout.nu[j].mul(self.b2).addcmul_(g, g, value=1 - self.b2)
        return g, m, v, v.sqrt().div_(sc.k)

    @torch.no_grad()
    def apply(self, state, grads: dict[str, torch.Tensor]):
        """The state after one update with ``grads`` (reduced and clipped); new tensors throughout."""
        layout = self._known_layout(state)
        params, mu, nu = dict(state.params), [], []
        for j, (name, sc) in enumerate(zip(layout.names, self._scalars(layout))):
            theta = state.params[name]
            _, m, v, d = self._moments(layout, j, theta, grads[name], sc)
            d.add_(self.eps)
            if self.decoupled_decay:
                params[name] = theta.mul(sc.shrink).addcdiv_(m, d, value=-sc.a)
            else:
                params[name] = theta.addcdiv(m, d, value=-sc.a)
            mu.append(m)
            nu.append(v)
        return self._new_state(state, layout, params, mu, nu)

    def traced(self, state, grads: dict[str, torch.Tensor]):
        """`apply`'s update (the same values, bit for bit) out of place, for autograd.

        Differentiable with respect to the state's parameters and moments and
        to ``grads``; the operations are DTensor's pointwise ones, so sharded
        states work as they are.
        """
        layout = self._known_layout(state)
        params, mu, nu = dict(state.params), [], []
        for j, (name, sc) in enumerate(zip(layout.names, self._scalars(layout))):
            theta, g = state.params[name], grads[name]
            if self.l2_decay:
                g = g.add(theta, alpha=self.l2_decay)
            m = torch.lerp(layout.mu[j], g, sc.w1)
            v = layout.nu[j].mul(self.b2).addcmul(g, g, value=1 - self.b2)
            # sqrt(v) with a derivative of 0 where v = 0 (see the module's docstring).
            reached = v > 0
            root = torch.where(reached, torch.where(reached, v, 1.0).sqrt(), 0.0)
            d = (root / sc.k).add(self.eps)
            if self.decoupled_decay:
                theta = theta.mul(sc.shrink)
            params[name] = theta.addcdiv(m, d, value=-sc.a)
            mu.append(m)
            nu.append(v)
        return self._new_state(state, layout, params, mu, nu)

    @torch.no_grad()
    def vjp(self, state, grads: dict[str, torch.Tensor], param_cot: list[torch.Tensor],
            opt_cot: list[torch.Tensor]):
        """Pull the new state's cotangents back through the update.

        ``param_cot`` follows ``state.params``, ``opt_cot`` the optimizer
        state's floating leaves (mu, then nu). Returns the parameters' direct
        cotangents (same order), the gradient's cotangents by name, and the
        cotangents of the moments before the step (``opt_cot``'s order).
        """
        layout = self._known_layout(state)
        position = {k: i for i, k in enumerate(state.params)}
        b2, n = self.b2, len(layout.names)
        direct = list(param_cot)
        grad_cot: dict[str, torch.Tensor] = {}
        mu_cot: list[torch.Tensor] = []
        nu_cot: list[torch.Tensor] = []
        for j, (name, sc) in enumerate(zip(layout.names, self._scalars(layout))):
            theta_bar = param_cot[position[name]]
            g, m_new, _, s = self._moments(layout, j, state.params[name], grads[name].detach(), sc)
            d = s.add(self.eps)
            m_bar = torch.addcdiv(opt_cot[j], theta_bar, d, value=-sc.a)
            # m' / s, the quotient first: d^2 s alone can underflow in float32.
            # Where s = 0 it is taken as 0 (the module's docstring): 0 / 0 where
            # no gradient ever came, and the rare m' / 0 where g'^2 underflowed
            # (|g'| below ~1e-21 in float32), where v' is flat in g'.
            ratio = m_new.div_(s).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
            v_bar = torch.addcdiv(opt_cot[n + j], ratio.mul_(theta_bar), d.mul_(d),
                                  value=0.5 * sc.a / (sc.k * sc.k))
            g_bar = m_bar.mul(sc.w1).addcmul_(v_bar, g, value=2 * (1 - b2))
            if self.decoupled_decay:
                theta_bar = theta_bar.mul(sc.shrink)
            if self.l2_decay:
                theta_bar = theta_bar.add(g_bar, alpha=self.l2_decay)
            direct[position[name]] = theta_bar
            grad_cot[name] = g_bar
            mu_cot.append(m_bar.mul_(1 - sc.w1))
            nu_cot.append(v_bar.mul_(b2))
        return direct, grad_cot, mu_cot + nu_cot

    @staticmethod
    def _new_state(state, layout: _Layout, params, mu, nu):
        adam = layout.adam._replace(
            mu=_rebuilt(layout.adam.mu, mu), nu=_rebuilt(layout.adam.nu, nu),
            count=tree_map(lambda c: c + 1, layout.adam.count))
        sched = layout.sched._replace(count=tree_map(lambda c: c + 1, layout.sched.count))
        opt_state = tuple(adam if s is layout.adam else sched if s is layout.sched else s
                          for s in state.opt_state)
        return type(state)(params, opt_state, state.buffers, state.batch_index + 1)


@dataclass(frozen=True)
class _Scalars:
    """One parameter's coefficients at one update, Python floats as torch.optim has them."""

    w1: float  # lerp weight of the gradient in the first moment
    k: float  # square root of the second moment's bias correction
    a: float  # step size: lr / first moment's bias correction
    shrink: float  # adamw's factor on the parameter

    @classmethod
    def of(cls, update: AdamUpdate, count: int, lr: float) -> _Scalars:
        # torch.optim's step count is a float tensor read with .item(); float
        # powers of it, as here (exact while count < 2**24).
        t = float(count)
        c1, c2 = 1 - update.b1**t, 1 - update.b2**t
        return cls(w1=1 - update.b1, k=c2**0.5, a=lr / c1,
                   shrink=1 - lr * update.decoupled_decay)


@dataclass(frozen=True)
class _Layout:
    """Where an Adam state keeps what the formulas read (parameters in the moments' order)."""

    names: list[str]
    mu: list[torch.Tensor]
    nu: list[torch.Tensor]
    counts: list[torch.Tensor]  # Adam's, one per parameter
    sched_counts: list[torch.Tensor]  # the learning-rate schedule's
    adam: Any  # torchopt's ScaleByAdamState
    sched: Any  # torchopt's ScaleByScheduleState


def _rebuilt(tree, leaves: list[torch.Tensor]):
    """``tree`` with its tensors replaced by ``leaves`` (in flattening order)."""
    _, spec = tree_flatten(tree)
    return tree_unflatten(spec, leaves)
