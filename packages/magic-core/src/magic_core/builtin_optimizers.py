"""magic-core's own optimizers, registered through the ``magic.optimizers`` entry point.

Each trains as its `torch.optim` namesake does: SGD through torchopt's
``sgd`` (the same arithmetic, to rounding), Adam and AdamW by `AdamUpdate`,
which is `torch.optim`'s update bit for bit. Kept free of torch (the
updates are built on call), so that naming them costs no import.
"""

from __future__ import annotations

from .optimizer_registry import OptimizerSpec, Schedule


def _sgd(cfg, lr: Schedule):
    import torchopt

    return torchopt.sgd(lr, momentum=cfg.momentum, weight_decay=cfg.resolved_weight_decay)


def _adam_transformation(decoupled: bool):
    def build(cfg, lr: Schedule):
        import torchopt

        # Only its state layout (moments, counts) is used: every update, traced
        # or not, is AdamUpdate's. eps_root=0: torch.optim has none.
        make = torchopt.adamw if decoupled else torchopt.adam
        return make(lr, betas=cfg.betas, eps=cfg.eps, eps_root=0.0,
                    weight_decay=cfg.resolved_weight_decay)

    return build


def _adam_formulas(decoupled: bool):
    def build(cfg, lr: Schedule):
        from .adam_update import AdamUpdate

        decay = cfg.resolved_weight_decay
        return AdamUpdate(b1=cfg.betas[0], b2=cfg.betas[1], eps=cfg.eps,
                          l2_decay=0.0 if decoupled else decay,
                          decoupled_decay=decay if decoupled else 0.0, lr=lr)

    return build


OPTIMIZERS = [
    OptimizerSpec(
        "sgd", _sgd, options=("momentum",),
        description="torch.optim.SGD: momentum (no dampening, not Nesterov), L2 weight decay"),
    OptimizerSpec(
        "adam", _adam_transformation(False), _adam_formulas(False), options=("betas", "eps"),
        description="torch.optim.Adam: weight decay added to the gradient (L2)"),
    OptimizerSpec(
        "adamw", _adam_transformation(True), _adam_formulas(True), options=("betas", "eps"),
        default_weight_decay=0.01,
        description="torch.optim.AdamW: decoupled weight decay (default 0.01)"),
]
