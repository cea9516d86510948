"""train.optimizer names a registered optimizer: built-ins and plugins, one registry."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import magic_core as mc
import magic_core.optimizer_registry as registry_module
import pytest
import torch
from magic_core import spec_registry
from magic_core.builtin_optimizers import OPTIMIZERS
from magic_core.optim import build_optimizer, exact_update
from magic_core.optimizer_registry import OptimizerRegistry, OptimizerSpec
from magic_core.reference import finite_difference_scores

PAGE = Path(__file__).resolve().parents[3] / "docs" / "adding-an-optimizer.md"


def page_module() -> dict:
    """The plugin module of docs/adding-an-optimizer.md (its first Python block), run."""
    source = re.search(r"```python\n(.*?)```", PAGE.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(source, str(PAGE), "exec"), namespace)
    return namespace


NESTEROV = page_module()["NESTEROV"]
_nesterov = NESTEROV.transformation


@pytest.fixture
def installed(monkeypatch):
    """Make the registry see the built-ins plus the given entry points, as if installed."""

    def install(*entry_points, broken=None):
        loaded = [("builtin", "magic-core", OPTIMIZERS), *entry_points]
        fake = SimpleNamespace(load_entry_points=lambda group, kind: (loaded, dict(broken or {})))
        monkeypatch.setattr(spec_registry, "plugins", fake)
        registry = OptimizerRegistry()
        monkeypatch.setattr(registry_module, "default_registry", lambda: registry)
        return registry

    return install


def test_an_unknown_optimizer_is_refused_in_one_line_with_a_suggestion():
    with pytest.raises(mc.ConfigError) as err:
        mc.from_mapping(mc.TrainConfig, {"optimizer": "adamw2"}, "train")
    assert str(err.value) == ("train.optimizer: expected one of 'adam', 'adamw', 'sgd', "
                              "got 'adamw2' (did you mean 'adamw'?)")


def test_the_built_ins_come_from_the_entry_point():
    names = {s.name: s.package for s in registry_module.list_optimizers()}
    assert names == {"adam": "magic-core", "adamw": "magic-core", "sgd": "magic-core"}


def test_another_optimizers_option_is_refused_naming_the_right_ones():
    with pytest.raises(mc.ConfigError, match=r"^train.momentum applies to sgd only; adam uses "
                                             r"train.betas, train.eps$"):
        mc.TrainConfig(optimizer="adam", momentum=0.9)
    with pytest.raises(mc.ConfigError, match=r"^train.eps applies to adam, adamw only; sgd uses "
                                             r"train.momentum$"):
        mc.TrainConfig(optimizer="sgd", eps=1e-6)
    # An option left at its default is nobody's concern.
    mc.TrainConfig(optimizer="sgd", eps=1e-8, betas=(0.9, 0.999), momentum=0.5)


def test_weight_decay_defaults_to_the_optimizers():
    assert mc.TrainConfig(optimizer="adamw").resolved_weight_decay == 0.01
    assert mc.TrainConfig(optimizer="adam").resolved_weight_decay == 0.0
    assert mc.TrainConfig(optimizer="adamw", weight_decay=0.0).resolved_weight_decay == 0.0


def test_a_spec_reading_an_unknown_option_is_refused():
    with pytest.raises(mc.ConfigError, match="option 'nesterov' is not one of train's"):
        OptimizerSpec("x", _nesterov, options=("nesterov",))


def test_a_plugin_optimizer_is_usable_by_name(installed):
    installed(("nesterov", "magic-optim-example", NESTEROV))
    cfg = mc.TrainConfig(optimizer="sgd-nesterov", momentum=0.9)
    assert registry_module.get_optimizer("sgd-nesterov").package == "magic-optim-example"
    assert exact_update(cfg, 4) is None
    params = {"w": torch.ones(3)}
    optimizer = build_optimizer(cfg, 4)
    updates, _ = optimizer.update({"w": torch.ones(3)}, optimizer.init(params), params=params)
    # Nesterov's first step: lr * (g + momentum * g).
    torch.testing.assert_close(updates["w"], torch.full((3,), -cfg.lr * 1.9))
    with pytest.raises(mc.ConfigError, match="train.eps applies to adam, adamw only"):
        mc.TrainConfig(optimizer="sgd-nesterov", eps=1e-6)


def test_broken_and_foreign_plugins_are_named_when_a_name_is_unknown(installed):
    with pytest.warns(UserWarning, match="'not-a-spec' from package 'pkg-b' is not usable"):
        installed(("not-a-spec", "pkg-b", object()), broken={"pkg-a": "ImportError: no lion"})
    with pytest.raises(mc.ConfigError) as err:
        mc.TrainConfig(optimizer="lion")
    message = str(err.value)
    assert "\n" not in message
    assert message.endswith("optimizer plugins that failed to import: pkg-a, pkg-b")


def test_a_name_offered_by_two_packages_is_refused_naming_both(installed):
    installed(("sgd", "pkg-a", OptimizerSpec("sgd", _nesterov)))
    with pytest.raises(mc.ConfigError, match="'sgd' is registered by two packages, 'magic-core' "
                                             "and 'pkg-a'; uninstall one"):
        mc.TrainConfig(optimizer="sgd")


def test_checking_a_job_imports_no_torch():
    script = textwrap.dedent("""\
        import json, sys
        from magic_core.config import TrainConfig
        from magic_core.typed_config import from_mapping
        cfg = from_mapping(TrainConfig, {"optimizer": "adamw", "betas": [0.8, 0.9]}, "train")
        print(json.dumps([cfg.resolved_weight_decay,
                          [m for m in ("torch", "torchopt") if m in sys.modules]]))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert json.loads(out) == [0.01, []]


@pytest.mark.slow
def test_a_plugin_optimizer_is_exact(installed, make_neox, tokenizer, small_corpus,
                                     hazard_questions):
    """Scores of a run with a plugin's optimizer against finite differences of torch.optim."""
    installed(("nesterov", "magic-optim-example", NESTEROV))
    cfg = mc.TrainConfig(optimizer="sgd-nesterov", lr=0.05, momentum=0.9, batch_size=2, epochs=2,
                         precision="fp64", max_seq_len=24)
    objective = mc.MultipleChoiceObjective(hazard_questions, tokenizer)
    result = mc.attribute(make_neox(), tokenizer, small_corpus, objective, cfg,
                          mc.AttributionConfig(kept_states="sqrt"), progress=False)

    def nesterov(params, cfg):
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)

    n = len(small_corpus)
    fd = finite_difference_scores(
        make_neox, result.corpus.input_ids, result.training_order["document"], cfg,
        objective.loss, [(i,) for i in range(n)], (n,), eps=1e-5, optimizer=nesterov)
    error = ((result.per_example - fd).abs() / fd.abs().clamp_min(1e-3 * fd.abs().max())).max()
    assert error <= 1e-4, (result.per_example, fd)
