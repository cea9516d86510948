"""Query objectives: the seed's evaluation bugs must not come back."""

import datasets as md
import magic_core as mc
import torch
import torch.nn.functional as F
from magic_datasets import answer_continuation, format_prompt


def _answer_nll_alone(model, tokenizer, q):
    """-log p(answer) for one question, computed on its own (no batching, no padding)."""
    prompt = format_prompt(q["question"], q["choices"])
    ids = tokenizer(prompt + answer_continuation(q["answer"]), add_special_tokens=False)["input_ids"]
    x = torch.tensor([ids])
    logp = F.log_softmax(model(input_ids=x).logits[0, -2].double(), -1)
    return -float(logp[ids[-1]])


def test_every_question_is_scored_including_the_longest(make_neox, tokenizer, hazard_questions):
    model = make_neox().double().eval()
    questions = list(hazard_questions)
    # The seed dropped the answer of the longest prompt of each batch.
    longest = max(questions, key=lambda q: len(q["question"]))
    obj = mc.MultipleChoiceObjective(questions, tokenizer, batch_size=4)
    assert obj.summary()["target_tokens"] == len(questions)
    with torch.no_grad():
        expected = sum(_answer_nll_alone(model, tokenizer, q) for q in questions) / len(questions)
        assert abs(float(obj.loss(model)) - expected) < 1e-10
        single = mc.MultipleChoiceObjective([longest], tokenizer)
        assert abs(float(single.loss(model)) - _answer_nll_alone(model, tokenizer, longest)) < 1e-10


def test_padding_and_batch_size_do_not_change_the_loss(make_neox, tokenizer, hazard_questions):
    model = make_neox().double().eval()
    with torch.no_grad():
        values = [
            float(mc.MultipleChoiceObjective(hazard_questions, tokenizer, batch_size=b).loss(model))
            for b in (1, 3, 16)
        ]
    assert max(values) - min(values) < 1e-12


def test_sharded_contributions_sum_to_the_full_objective(make_neox, tokenizer, hazard_questions):
    model = make_neox().double().eval()
    obj = mc.MultipleChoiceObjective(hazard_questions, tokenizer)
    with torch.no_grad():
        full = float(obj.loss(model))
        parts = sum(float(obj.contribution(model, r, 4)) for r in range(4))
    assert abs(full - parts) < 1e-12


def test_lm_objective_scores_real_tokens_only(make_neox, tokenizer):
    model = make_neox().double().eval()
    texts = ["favorvirus causes fever .", "The capital of miroland is miba . miroland exports tea ."]
    obj = mc.LanguageModelObjective(texts, tokenizer)
    with torch.no_grad():
        total, count = 0.0, 0
        for t in texts:
            ids = tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            x = torch.tensor([ids])
            logp = F.log_softmax(model(input_ids=x).logits[0, :-1].double(), -1)
            total += -float(logp.gather(-1, x[0, 1:, None]).sum())
            count += len(ids) - 1
        assert abs(float(obj.loss(model)) - total / count) < 1e-10


def test_contrast_is_the_weighted_difference(make_neox, tokenizer, hazard_questions):
    model = make_neox().double().eval()
    a = mc.MultipleChoiceObjective(hazard_questions, tokenizer)
    b = mc.LanguageModelObjective(["favorvirus causes fever ."], tokenizer)
    with torch.no_grad():
        c = mc.ContrastObjective(a, b, weight=0.3)
        assert abs(float(c.loss(model)) - (float(a.loss(model)) - 0.3 * float(b.loss(model)))) < 1e-12


def _built(name, rows=None, parts=(), tokenizer=None, **options):
    spec = mc.get_objective(name)
    return spec.build(mc.ObjectiveInput(name="q", rows=rows, tokenizer=tokenizer, max_len=64,
                                        options={**spec.options, **options}, parts=parts))


def test_the_registered_builtins_build_the_objectives_above(make_neox, tokenizer, hazard_questions):
    model = make_neox().double().eval()
    texts = md.Dataset.from_dict({"id": ["a", "b"], "body": ["favorvirus causes fever .",
                                                             "miroland exports tea ."]})
    pairs = [
        (_built("multiple-choice", hazard_questions, tokenizer=tokenizer, prompt_style="seed"),
         mc.MultipleChoiceObjective(hazard_questions, tokenizer, style="seed", max_len=64)),
        (_built("lm", texts, tokenizer=tokenizer, text_column="body"),
         mc.LanguageModelObjective(texts["body"], tokenizer, max_len=64)),
    ]
    pairs.append((_built("contrast", parts=(pairs[0][0], pairs[1][0]), weight=0.5),
                  mc.ContrastObjective(pairs[0][1], pairs[1][1], weight=0.5)))
    with torch.no_grad():
        for registered, direct in pairs:
            assert type(registered) is type(direct)
            assert float(registered.loss(model)) == float(direct.loss(model))
    assert mc.get_objective("multiple-choice").query_texts(hazard_questions, {"prompt_style": "seed"}) \
        == [format_prompt(q["question"], q["choices"], "seed") for q in hazard_questions]
    assert mc.get_objective("lm").query_texts(texts, {"text_column": "body"}) == list(texts["body"])
