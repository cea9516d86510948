"""Why ascent on the forget corpus costs general accuracy on the built-in world: a diagnosis.

The world's forget documents are hazard prose, about a third of them closed
by a worked quiz in the evaluation format ("...?\\nA. ..\\nD. ..\\nAnswer: C").
The hypothesis: the quiz tokens, above all the answer letter, carry the
answer-by-letter skill that the general questions share, so ascent on them
unlearns answering by letter everywhere.

This script measures it, with masks of which tokens are quiz and which are
the answer letter taken from the document text. The masks are a diagnostic
only: no recipe uses them.

1. forget-query and retain-query scores on prose, quiz and letter tokens;
2. plain ascent (weight -1) restricted to prose, to quiz tokens, to letters,
   and the attribution weights restricted the same ways, at three lrs;
3. which letters the unlearned models answer (a collapse to one letter
   scores 0.25 on these sets, whose answers are spread evenly over A-D).

    python benchmarks/unlearn_diagnosis.py     # results/unlearn-diagnosis.{md,json}, ~1 min CPU
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import magic_unlearn as mu
import torch
from magic_core.atomic import write_json, write_text
from magic_datasets.mcqa import LETTERS, answer_continuation, format_prompt
from unlearn_frontier import RESULTS, prepared_world

LRS = (1.5e-4, 3e-4, 5e-4)
STEPS, SEED = 40, 0


def quiz_masks(corpus, tokenizer, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, width] masks, in the per-token score layout (column t predicts token t + 1).

    quiz: the predicted token belongs to the closing quiz; letter: it is the
    quiz's answer letter (the last real token before EOS).
    """
    quiz = torch.zeros(len(corpus.input_ids), width, dtype=torch.bool)
    letter = torch.zeros_like(quiz)
    for i, (text, row) in enumerate(zip(corpus.texts, corpus.input_ids)):
        start = text.find("\nA. ")
        if start < 0:
            continue
        # The question is the last sentence before the choices; prose sentences end in " .".
        question = text.rfind(" . ", 0, start) + 3
        prose_tokens = len(tokenizer(text[:question], add_special_tokens=False)["input_ids"])
        last = len(row) - 1 - int(row[-1] == tokenizer.eos_token_id)  # index of the letter
        quiz[i, prose_tokens - 1: last] = True
        letter[i, last - 1] = True
    return quiz, letter


def score_table(scores: dict[str, torch.Tensor], groups: dict[str, torch.Tensor]) -> list[dict]:
    rows = []
    for query, s in scores.items():
        total_negative = s[groups["all"]].clamp(max=0).sum()
        for name, mask in groups.items():
            kept = s[mask]
            rows.append({"query": query, "tokens": name, "count": int(mask.sum()),
                         "mean_abs": float(kept.abs().mean()), "sum": float(kept.sum()),
                         "negative_share": float((kept < 0).double().mean()),
                         "share_of_negative_mass": float(kept.clamp(max=0).sum() / total_negative)})
    return rows


def ascent_table(prep, weights: dict[str, torch.Tensor]) -> list[dict]:
    rows = []
    for name, w in weights.items():
        for lr in LRS:
            model = copy.deepcopy(prep.model)
            mu.train_weighted(model, [mu.WeightedRows(prep.data.forget, w.float(), "forget")],
                              mu.OptimConfig(lr=lr, steps=STEPS, batch_size=4, seed=SEED))
            after = mu.evaluate(model, prep.tokenizer, prep.sets)
            rows.append({"weights": name, "lr": lr, "forget": after["forget_accuracy"],
                         "retain": after["retain_accuracy"]})
            print(f"{name:22s} lr={lr:g}: forget {rows[-1]['forget']:.3f} retain {rows[-1]['retain']:.3f}")
    return rows


# (recipe, options, lr): plain attribution weights, plain ascent, and the best variant of
# benchmarks/results/unlearn-frontier.md, each past the forget target
LETTER_RUNS = (("attribution-weighted", {}, 3e-4), ("gradient-ascent", {}, 5e-4),
               ("attribution-weighted", {"clip": 1.0, "retain_kl": 10.0}, 5e-4))


@torch.no_grad()
def chosen_letters(model, tokenizer, questions) -> dict[str, int]:
    counts: dict[str, int] = {}
    for q in questions:
        choices = list(q["choices"])
        ids = tokenizer(format_prompt(q["question"], choices), add_special_tokens=False)["input_ids"]
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        letters = [tokenizer(answer_continuation(j), add_special_tokens=False)["input_ids"][0]
                   for j in range(len(choices))]
        letter = LETTERS[int(logits[letters].argmax())]
        counts[letter] = counts.get(letter, 0) + 1
    return dict(sorted(counts.items()))


def letter_table(prep) -> list[dict]:
    rows = []
    for recipe, options, lr in LETTER_RUNS:
        model = copy.deepcopy(prep.model)
        mu.unlearn(model, prep.data, recipe, options, mu.OptimConfig(lr=lr, steps=STEPS, seed=SEED))
        rows.append({"recipe": recipe, "options": options, "lr": lr,
                     "hazard": chosen_letters(model, prep.tokenizer, prep.sets.hazard),
                     "general": chosen_letters(model, prep.tokenizer, prep.sets.general)})
    return rows


def markdown(scores: list[dict], ascent: list[dict], extra: dict, base: dict,
             letters: list[dict]) -> str:
    out = ["# Why ascent costs general accuracy on the built-in world", "",
           "Generated by `python benchmarks/unlearn_diagnosis.py`. Quiz/letter masks come from the "
           "document text and are a diagnostic only.", "",
           f"Base model: forget {base['forget_accuracy']:.3f}, retain {base['retain_accuracy']:.3f}. "
           f"Forget corpus: {extra['documents']} documents, {extra['quizzed']} with a worked quiz.", "",
           "## Scores by token kind", "",
           "| query | tokens | count | mean abs score | sum | share negative | share of negative mass |",
           "|---|---|---|---|---|---|---|"]
    out += [f"| {r['query']} | {r['tokens']} | {r['count']} | {r['mean_abs']:.2e} | {r['sum']:.2e} "
            f"| {r['negative_share']:.2f} | {r['share_of_negative_mass']:.2f} |" for r in scores]
    out += ["", f"Correlation of forget-query and retain-query token scores: {extra['correlation']:.3f}. "
            f"Answer letters among the 50 most negative forget-query tokens: {extra['letters_in_top50']}.",
            "", f"## Ascent restricted to token kinds (adam, batch 4, {STEPS} steps, seed {SEED})", "",
            "| weights | lr | forget acc | retain acc |", "|---|---|---|---|"]
    out += [f"| {r['weights']} | {r['lr']:g} | {r['forget']:.3f} | {r['retain']:.3f} |" for r in ascent]
    out += ["", "## Letters the unlearned models answer (count per letter, 32 questions each)", "",
            "| recipe | options | lr | hazard questions | general questions |", "|---|---|---|---|---|"]
    out += [f"| {r['recipe']} | {r['options'] or '-'} | {r['lr']:g} | {r['hazard']} | {r['general']} |"
            for r in letters]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "unlearn-diagnosis")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny model: see unlearn_frontier.py
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        prep, _ = prepared_world(Path(work))
    data = prep.data
    width = data.forget.longest
    real = mu.weights.real_token_mask(data.forget, width)
    quiz, letter = quiz_masks(data.forget, prep.tokenizer, width)
    quiz &= real
    forget = data.forget_scores.per_token[:, :width]
    retain = data.retain_scores.per_token[:, :width]
    groups = {"all": real, "prose": real & ~quiz, "quiz (no letter)": quiz & ~letter, "answer letter": letter}
    scores = score_table({"forget (hazard)": forget, "retain (general)": retain}, groups)
    top50 = torch.where(real, forget, torch.full_like(forget, torch.inf)).flatten().argsort()[:50]
    extra = {"documents": len(data.forget.input_ids), "quizzed": int(letter.any(1).sum()),
             "correlation": float(torch.corrcoef(torch.stack([forget[real], retain[real]]))[0, 1]),
             "letters_in_top50": int(letter.flatten()[top50].sum())}
    aw = mu.score_weights(forget, real, clip=3.0)
    ascent = ascent_table(prep, {
        "ascent, all tokens": -real.double(), "ascent, prose only": -(real & ~quiz).double(),
        "ascent, quiz only": -quiz.double(), "ascent, letters only": -letter.double(),
        "aw, all tokens": aw, "aw, prose only": aw * ~quiz, "aw, quiz only": aw * quiz,
    })
    letters = letter_table(prep)
    base = {k: prep.before[k] for k in ("forget_accuracy", "retain_accuracy")}
    write_json(args.out.with_suffix(".json"), {"base": base, "scores": scores, "ascent": ascent,
                                               "letters": letters, **extra,
                                               "minutes": (time.perf_counter() - t0) / 60})
    write_text(args.out.with_suffix(".md"), markdown(scores, ascent, extra, base, letters))
    print(f"wrote {args.out.with_suffix('.md')} and .json")


if __name__ == "__main__":
    main()
