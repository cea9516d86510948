"""Generating the built-in world from a seed: entities, facts, documents, questions.

Everything here is a pure function of `WorldConfig`, so the same config gives
byte-identical data in every process and on every machine.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import asdict, dataclass

from ..mcqa import LETTERS, answer_continuation, format_prompt
from .schema import DOMAINS, FILLERS, SUFFIX, SYLLABLES, Attribute


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 0
    entities_per_domain: int = 8
    # Pretraining: documents per entity, and which share of each domain's
    # entities also gets answered practice questions (the rest are known only
    # from documents, so answering about them needs the facts, not recall of
    # a seen question).
    pretrain_docs_per_entity: int = 16
    practice_share: float = 1.0
    # Chance that a document ends with a worked quiz question on a fact of its
    # entity that it does not state (exam-prep style), so the answer cannot be
    # copied from the document itself.
    quiz_probability: float = 0.5
    facts_per_document: tuple[int, int] = (2, 3)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Fact:
    domain: str
    entity: str
    attribute: Attribute
    value: str

    @property
    def id(self) -> str:
        return f"{self.domain}:{self.entity}:{self.attribute.name}"


class World:
    """Entities and their facts; documents and questions are derived from them."""

    def __init__(self, config: WorldConfig = WorldConfig()):
        self.config = config
        rng = random.Random(f"world-{config.seed}")
        names = ["".join(p) for p in itertools.permutations(SYLLABLES, 2)]
        rng.shuffle(names)
        self.entities: dict[str, list[str]] = {}
        self.facts: list[Fact] = []
        for domain, attributes in DOMAINS.items():
            picked = [names.pop() + SUFFIX[domain] for _ in range(config.entities_per_domain)]
            self.entities[domain] = picked
            for attribute in attributes:
                # Balanced values: each value belongs to the same number of entities.
                values = [attribute.values[i % 4] for i in range(len(picked))]
                rng.shuffle(values)
                for entity, value in zip(picked, values):
                    self.facts.append(Fact(domain, entity, attribute, value))

    def held_out(self, fact: Fact) -> bool:
        """One hazard fact per entity is never quizzed in pretraining.

        The base model reads it in documents but has never seen its question
        answered; the attribution corpus's planted documents are what teach
        the answer, so attribution has something definite to find.
        """
        if fact.domain != "hazard":
            return False
        index = self.entities["hazard"].index(fact.entity)
        return fact.attribute.name == DOMAINS["hazard"][index % len(DOMAINS["hazard"])].name

    def facts_of(self, domain: str, entity: str | None = None) -> list[Fact]:
        return [
            f for f in self.facts if f.domain == domain and (entity is None or f.entity == entity)
        ]

    # -- documents ---------------------------------------------------------
    def document(self, domain: str, entity: str, rng: random.Random,
                 quiz_probability: float | None = None,
                 quiz_held_out: bool = False) -> tuple[str, list[str], list[str]]:
        """One short document about ``entity``: some of its facts in random templates.

        Returns the text, the ids of the facts it states, and the ids of the
        facts its closing quiz asks about (none if it has no quiz).
        """
        if quiz_probability is None:
            quiz_probability = self.config.quiz_probability
        facts = self.facts_of(domain, entity)
        lo, hi = self.config.facts_per_document
        chosen = rng.sample(facts, rng.randint(lo, min(hi, len(facts))))
        sentences = [
            rng.choice(f.attribute.statements).format(e=entity, v=f.value) for f in chosen
        ]
        sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(FILLERS[domain]).format(e=entity))
        if quiz_held_out:
            asked = [f for f in facts if self.held_out(f)]
        else:
            candidates = [f for f in facts if f not in chosen and not self.held_out(f)]
            asked = [rng.choice(candidates)] if candidates and rng.random() < quiz_probability else []
        sentences += [self.quiz(fact) for fact in asked]
        return " ".join(sentences), [f.id for f in chosen], [f.id for f in asked]

    def quiz(self, fact: Fact) -> str:
        """The fact's evaluation question, answered."""
        choices = list(fact.attribute.values)
        prompt = format_prompt(fact.attribute.question.format(e=fact.entity), choices)
        return prompt + answer_continuation(choices.index(fact.value))

    def documents(self, domain: str, per_entity: int, seed: str,
                  quiz_probability: float | None = None, quiz_held_out: bool = False) -> list[dict]:
        rng = random.Random(f"{seed}-{self.config.seed}-{domain}")
        rows = []
        for entity in self.entities[domain]:
            for _ in range(per_entity):
                text, fact_ids, quizzed = self.document(
                    domain, entity, rng, quiz_probability, quiz_held_out
                )
                rows.append({"text": text, "domain": domain, "entity": entity, "facts": fact_ids,
                             "quizzed": quizzed})
        return rows

    # -- questions ---------------------------------------------------------
    def practice_entities(self, domain: str) -> list[str]:
        entities = self.entities[domain]
        return entities[: round(len(entities) * self.config.practice_share)]

    def questions(self, domain: str) -> list[dict]:
        """One question per fact; choices are the attribute's four values in a fixed order."""
        practiced = set(self.practice_entities(domain))
        rows = []
        for fact in self.facts_of(domain):
            choices = list(fact.attribute.values)
            rows.append(
                {
                    "id": fact.id,
                    "question": fact.attribute.question.format(e=fact.entity),
                    "choices": choices,
                    "answer": choices.index(fact.value),
                    "subject": fact.attribute.name,
                    "practiced": fact.entity in practiced and not self.held_out(fact),
                    "held_out": self.held_out(fact),
                }
            )
        return rows

    def practice_questions(self, domain: str) -> list[dict]:
        """Answered questions, in the evaluation format, about the practice entities only.

        They teach the answer-by-letter skill; the other entities' questions can
        then only be answered from what their documents say.
        """
        practiced = set(self.practice_entities(domain))
        rows = []
        for fact in self.facts_of(domain):
            if fact.entity not in practiced or self.held_out(fact):
                continue
            rows.append(
                {
                    "text": self.quiz(fact),
                    "domain": domain,
                    "entity": fact.entity,
                    "facts": [],
                    "quizzed": [fact.id],
                }
            )
        return rows

    # -- tokenizer vocabulary ----------------------------------------------
    def vocabulary_texts(self) -> list[str]:
        """Texts that together contain every token a document, question or prompt can hold."""
        texts: list[str] = []
        for domain, attributes in DOMAINS.items():
            for entity in self.entities[domain]:
                texts += [t.format(e=entity) for t in FILLERS[domain]]
                for a in attributes:
                    texts.append(a.question.format(e=entity))
                    texts += [s.format(e=entity, v=v) for s in a.statements for v in a.values]
        texts.append(format_prompt("x", ["a", "b", "c", "d"]))
        texts.append(format_prompt("x", ["a", "b", "c", "d"], style="seed"))
        texts += list(LETTERS)
        return texts
