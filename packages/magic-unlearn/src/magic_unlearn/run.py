"""One unlearning run on loaded objects: recipe weights, training, evaluation, relearning."""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
from magic_core.atomic import write_json

from .evaluate import EvalSets, evaluate
from .registry import get_recipe
from .relearn import RelearnConfig, relearn
from .spec import UnlearnData
from .training import OptimConfig, train_weighted


def unlearn(model, data: UnlearnData, recipe: str, options: dict, optim: OptimConfig) -> dict:
    """Train ``model`` in place with ``recipe``'s weights; returns the training log."""
    parts = get_recipe(recipe).parts(data, options)
    torch.manual_seed(optim.seed)
    return train_weighted(model, parts, optim)


def run_recipe(base_model, tokenizer, data: UnlearnData, sets: EvalSets, recipe: str,
               options: dict, optim: OptimConfig, relearn_cfg: RelearnConfig,
               out_dir: Path | None = None, before: dict | None = None,
               save_model: bool = True, extra: dict | None = None) -> dict:
    """Unlearn a copy of ``base_model``; evaluate, relearn, save; returns the result record.

    ``before`` (the base model's evaluation) may be passed in so a sweep
    measures it once.
    """
    t0 = time.perf_counter()
    before = before or evaluate(base_model, tokenizer, sets)
    model = copy.deepcopy(base_model)
    log = unlearn(model, data, recipe, options, optim)
    after = evaluate(model, tokenizer, sets)
    result = {
        "recipe": {"name": recipe, "options": {**get_recipe(recipe).options, **options}},
        "optim": asdict(optim), "relearn": asdict(relearn_cfg),
        "before": before, "after": after, "training": log,
        "scores": {k: str(r.path) for k, r in (("forget", data.forget_scores),
                                                ("retain", data.retain_scores)) if r is not None},
    }
    if relearn_cfg.enabled:
        attacked, relog = relearn(model, data.forget, relearn_cfg)
        result["after_relearn"] = {**evaluate(attacked, tokenizer, sets), "training": relog}
        result["relearn_recovery"] = (result["after_relearn"]["forget_accuracy"]
                                      - after["forget_accuracy"])
    result["seconds"] = time.perf_counter() - t0
    result.update(extra or {})
    if out_dir is not None:
        out_dir = Path(out_dir)
        if save_model:
            save_pretrained(model, tokenizer, out_dir / "model")
            result["model_dir"] = str(out_dir / "model")
        write_json(out_dir / "result.json", result)
    return result


def save_pretrained(model, tokenizer, target: Path) -> None:
    """A directory transformers and lm-evaluation-harness load (``pretrained=target``)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
