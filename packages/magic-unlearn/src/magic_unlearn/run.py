"""One unlearning run on loaded objects: recipe weights, training, evaluation, relearning."""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import torch
from magic_core.atomic import write_json
from magic_core.run_control import RunControl

from .evaluate import EvalSets, evaluate
from .registry import get_recipe
from .relearn import RelearnConfig, relearn
from .resume import PHASES, RecipePhases, recipe_fingerprint
from .spec import UnlearnData, WeightedRows
from .training import OptimConfig, train_weighted


def _train_parts(model, parts: list[WeightedRows], optim: OptimConfig, **loop) -> dict:
    torch.manual_seed(optim.seed)
    return train_weighted(model, parts, optim, **loop)


def unlearn(model, data: UnlearnData, recipe: str, options: dict, optim: OptimConfig,
            **loop) -> dict:
    """Train ``model`` in place with ``recipe``'s weights; returns the training log.

    ``loop``: ``on_step``/``resume`` of `train_weighted`.
    """
    return _train_parts(model, get_recipe(recipe).parts(data, options), optim, **loop)


def run_recipe(base_model, tokenizer, data: UnlearnData, sets: EvalSets, recipe: str,
               options: dict, optim: OptimConfig, relearn_cfg: RelearnConfig,
               out_dir: Path | None = None, before: dict | None = None,
               save_model: bool = True, extra: dict | None = None,
               control: RunControl | None = None, final_dir: Path | None = None) -> dict:
    """Unlearn a copy of ``base_model``; evaluate, relearn, save; returns the result record.

    ``before`` (the base model's evaluation) may be passed in so a sweep
    measures it once. With a ``control`` the run may stop after any
    unlearning or relearning step (`Preempted`, after a phase checkpoint) and
    continues from a checkpoint of the same job, to the same numbers.
    ``final_dir``: where ``out_dir``'s files will live, when they are built
    elsewhere and moved there (the record names the model's final place).
    """
    t0 = time.perf_counter()
    before = before or evaluate(base_model, tokenizer, sets)
    model = copy.deepcopy(base_model)
    parts = get_recipe(recipe).parts(data, options)
    if control is not None and control.progress is not None:
        control.progress.declare(*PHASES)  # the progress file knows only the phases it is told
    phases = RecipePhases(control, recipe_fingerprint(
        base_model, parts, data.forget.input_ids, recipe, options, optim, relearn_cfg),
        next(base_model.parameters()).device)
    log = phases.unlearn(model, optim.steps, partial(_train_parts, model, parts, optim))
    phases.begin("evaluate", 0)
    after = evaluate(model, tokenizer, sets)
    result: dict[str, Any] = {
        "recipe": {"name": recipe, "options": {**get_recipe(recipe).options, **options}},
        "optim": asdict(optim), "relearn": asdict(relearn_cfg),
        "before": before, "after": after, "training": log,
        "scores": {k: str(r.path) for k, r in (("forget", data.forget_scores),
                                                ("retain", data.retain_scores)) if r is not None},
    }
    if relearn_cfg.enabled:
        attacked, relog = phases.relearn(model, log, relearn_cfg.steps,
                                         partial(relearn, model, data.forget, relearn_cfg))
        phases.begin("evaluate", 0)
        result["after_relearn"] = {**evaluate(attacked, tokenizer, sets), "training": relog}
        result["relearn_recovery"] = (result["after_relearn"]["forget_accuracy"]
                                      - after["forget_accuracy"])
    result["seconds"] = time.perf_counter() - t0
    result.update(extra or {})
    if out_dir is not None:
        out_dir = Path(out_dir)
        if save_model:
            save_pretrained(model, tokenizer, out_dir / "model")
            result["model_dir"] = str(Path(final_dir or out_dir) / "model")
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
