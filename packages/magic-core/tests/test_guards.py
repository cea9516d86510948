"""Refusals that protect users from meaningless scores, and side effects that must not happen."""

import subprocess
import sys

import magic_core as mc
import pytest
import torch
from magic_core.model_prep import check_loss_uses_weights, install_weighted_loss
from torch import nn


@pytest.mark.parametrize("name", ["bf16", "fp16", "bfloat16"])
def test_low_precision_is_refused_with_the_reason(name):
    with pytest.raises(mc.ConfigError, match="noise"):
        mc.TrainConfig(precision=name)


def test_config_errors_name_the_key():
    with pytest.raises(mc.ConfigError, match="^train.lr: expected a number"):
        mc.from_mapping(mc.TrainConfig, {"lr": "fast"}, "train")
    with pytest.raises(mc.ConfigError, match="optimiser: unknown key; did you mean 'optimizer'"):
        mc.from_mapping(mc.TrainConfig, {"optimiser": "sgd"}, "train")
    with pytest.raises(mc.ConfigError, match="train.optimizer: expected one of"):
        mc.from_mapping(mc.TrainConfig, {"optimizer": "lion"}, "train")


class _LossIgnoresWeights(nn.Module):
    """A model that computes its own unweighted loss, ignoring extra batch keys."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, labels=None, **ignored):
        out = self.inner(input_ids=input_ids)
        logits = out.logits[:, :-1]
        loss = nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, 1:], ignore_index=-100)
        return type(out)(loss=loss, logits=out.logits)


def test_a_loss_that_ignores_the_data_weights_is_refused_before_training(
    make_neox, tokenizer, small_corpus, hazard_questions
):
    model = _LossIgnoresWeights(make_neox())
    objective = mc.MultipleChoiceObjective(hazard_questions, tokenizer)
    with pytest.raises(mc.ConfigError, match="ignores the data weights"):
        mc.attribute(model, tokenizer, small_corpus, objective, mc.TrainConfig(max_seq_len=24),
                     progress=False)


def test_the_weighted_loss_is_detected_as_using_weights(make_neox):
    model = make_neox()
    install_weighted_loss(model)
    ids = torch.tensor([[5, 6, 7, 8]])
    check_loss_uses_weights(
        model, {"input_ids": ids, "labels": ids, "example_weight": torch.ones(1)}
    )


def test_importing_and_running_leaves_the_root_logger_alone():
    code = (
        "import logging, io\n"
        "stream = io.StringIO(); h = logging.StreamHandler(stream)\n"
        "root = logging.getLogger(); root.addHandler(h); root.setLevel(logging.WARNING)\n"
        "import magic_core\n"
        "from magic_core import bergson_api; bergson_api.check_surface()\n"
        "assert root.handlers == [h], root.handlers\n"
        "assert root.level == logging.WARNING\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_chunk_scores_sum_per_source_document():
    import pyarrow as pa
    from magic_core.outputs import source_table

    table = pa.table({"index": [0, 1, 2, 3], "source_id": ["b", "a", "b", "c"],
                      "score": [0.5, -1.0, 0.25, 2.0], "n_tokens": [8, 8, 3, 5],
                      "unlearning_potential": [0.5, 0.0, 0.25, 2.0]})
    out = source_table(table).to_pydict()
    assert out["source_id"] == ["b", "a", "c"]  # in order of first appearance
    assert out["chunks"] == [2, 1, 1]
    assert out["score"] == [0.75, -1.0, 2.0]
    assert out["n_tokens"] == [11, 8, 5]
    assert out["first_index"] == [0, 1, 3]
