"""Second-order measurements that record how they fail instead of raising.

Without a fix, torch fails in three distinct ways: the first-order gradient is
a leaf (grad_fn None), a strict second autograd.grad raises, or with
allow_unused=True the result is silently missing the Hessian term. Callers
need all three facts, so each probe reports them rather than stopping at the
first.
"""

from __future__ import annotations

import torch


def is_cut(grad) -> bool:
    """True where a first-order gradient taken with create_graph=True has no history.

    torch either hands back a leaf that requires grad or a plain constant,
    depending on which backward cut the graph.
    """
    return grad.grad_fn is None


def second_grad(output, inputs):
    """Gradients of ``output`` w.r.t. ``inputs``; unused inputs get zeros.

    Returns (grads, strict_error): strict_error is the message a strict
    autograd.grad raised, or None.
    """
    inputs = list(inputs)
    try:
        return list(torch.autograd.grad(output, inputs, retain_graph=True)), None
    except RuntimeError as exc:
        strict_error = str(exc).splitlines()[0]
    if not output.requires_grad:
        return [torch.zeros_like(i) for i in inputs], strict_error
    grads = torch.autograd.grad(output, inputs, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(i) if g is None else g for g, i in zip(grads, inputs)], strict_error


def full(t):
    """The logical tensor on every rank (plain tensors pass through)."""
    with torch.no_grad():
        return t.full_tensor() if hasattr(t, "full_tensor") else t.detach()


def max_err(got, want) -> float:
    return max(float((full(g).double() - w.double()).abs().max()) for g, w in zip(got, want))
