import magic_datasets as md
from magic_datasets import dataset_fingerprint, tokenizer_fingerprint
from magic_datasets.world import World, WorldConfig, build_tokenizer


def test_the_world_is_deterministic():
    a = md.load("world-attribution", n_docs=32, k_planted=4)
    b = md.load("world-attribution", n_docs=32, k_planted=4)
    assert dataset_fingerprint(a) == dataset_fingerprint(b)
    c = md.load("world-attribution", n_docs=32, k_planted=4, seed=1)
    assert dataset_fingerprint(a) != dataset_fingerprint(c)
    assert tokenizer_fingerprint(build_tokenizer(World())) == tokenizer_fingerprint(build_tokenizer(World()))


def test_attribution_corpus_plants_exactly_k_hazard_documents():
    corpus = md.load("world-attribution", n_docs=40, k_planted=8)
    assert len(corpus) == 40 and sum(corpus["planted"]) == 8
    assert all(d == "hazard" for d, p in zip(corpus["domain"], corpus["planted"]) if p)
    # Each planted document answers its pathogen's held-out question.
    held_out = set(md.load("world-hazard-mcqa", subset="held-out")["id"])
    planted_quizzes = {q for qs, p in zip(corpus["quizzed"], corpus["planted"]) if p for q in qs}
    assert planted_quizzes <= held_out and len(planted_quizzes) == 8


def test_question_sets_have_the_hub_schema_and_a_valid_answer():
    for name in ("world-hazard-mcqa", "world-general-mcqa"):
        questions = md.load(name)
        assert len(questions) == 32
        for q in questions:
            assert len(q["choices"]) == 4 and 0 <= q["answer"] < 4
            assert isinstance(q["question"], str)


def test_held_out_facts_are_never_answered_in_pretraining():
    world = World(WorldConfig())
    held_out = [f for f in world.facts if world.held_out(f)]
    assert len(held_out) == 8
    pretrain = md.load("world-pretrain")
    quizzed = {q for qs in pretrain["quizzed"] for q in qs}
    assert not quizzed & {f.id for f in held_out}


def test_tokenizer_covers_every_text_without_unknown_tokens():
    tok = build_tokenizer(World())
    texts = list(md.load("world-pretrain")["text"]) + list(md.load("world-attribution")["text"])
    unk = tok.unk_token_id
    assert all(unk not in ids for ids in tok(texts, add_special_tokens=False)["input_ids"])
    assert tok.pad_token_id != tok.eos_token_id
