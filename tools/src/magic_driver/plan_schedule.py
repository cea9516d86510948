"""Where a run's kept states go and what its backward replays, simulated without tensors.

The same rules as the engine, on byte counts: `magic_core.keep_schedule`
picks the states (and, for ``gradients``, the gradients) kept while
training; `place` puts each in the first tier with room, in the order the
engine keeps them (state i before the gradient of step i), as
`magic_core.state_store.StateStore.keep` does; `replay` walks the backward's
stack of `magic_core.engine.MagicEngine._state_before` and counts the
replayed steps, the updates applied again and the most states held in
memory at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from magic_core.keep_schedule import (
    GRADIENTS_SEGMENT,
    kept_gradients,
    kept_in_training,
    replay_keep,
)

TIERS = ("device", "host", "disk")


@dataclass
class Placement:
    """How many states and gradients each tier holds, and their bytes (one rank)."""

    states: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIERS, 0))
    gradients: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIERS, 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIERS, 0))
    tier_of_state: dict[int, str] = field(default_factory=dict)
    tier_of_gradient: dict[int, str] = field(default_factory=dict)


def place(n_steps: int, schedule: str, state_bytes: int, gradient_bytes: int,
          budgets: dict[str, int]) -> Placement:
    """The tiers of every kept state and gradient; ``budgets``: device and host bytes."""
    placed = Placement()
    keep = set(kept_in_training(n_steps, schedule))
    keep_gradient = kept_gradients(n_steps, schedule)

    def put(size: int, counts: dict[str, int]) -> str:
        for tier in ("device", "host"):
            if placed.bytes[tier] + size <= budgets[tier]:
                break
        else:
            tier = "disk"
        placed.bytes[tier] += size
        counts[tier] += 1
        return tier

    for i in range(n_steps):
        if i in keep:
            placed.tier_of_state[i] = put(state_bytes, placed.states)
        if i in keep_gradient:
            placed.tier_of_gradient[i] = put(gradient_bytes, placed.gradients)
    return placed


@dataclass(frozen=True)
class Replay:
    """What the backward recomputes, and the most states it holds in memory at once."""

    replayed_steps: int
    replayed_updates: int
    # States in memory beside the device tier's: the one differentiated, replayed
    # ones on the stack, kept ones read back (materialized or prefetched).
    states_in_memory: int
    # Kept gradients read back ahead of the replay that applies them.
    gradients_in_memory: int
    # After each step's VJP, what a checkpoint then holds besides cotangents: the states
    # on the stack and the kept gradients not yet applied, (in memory, on disk) each.
    after_steps: tuple[tuple[int, int, int, int], ...] = ()


def replay(n_steps: int, schedule: str, tier_of_state: dict[int, str],
           tier_of_gradient: dict[int, str] | None = None) -> Replay:
    """Walk the backward from step n - 1 to 0 as the engine does (tiers not given: disk)."""
    stack = [(i, False) for i in kept_in_training(n_steps, schedule)]  # (step, replayed)
    gradients = kept_gradients(n_steps, schedule)
    loaded: set[int] = set()  # offloaded kept states read back into memory

    def read(entry: tuple[int, bool]) -> None:
        step, replayed = entry
        if not replayed and tier_of_state.get(step, "disk") != "device":
            loaded.add(step)

    steps = updates = most = 0
    after_steps = []

    def on_disk(step: int, replayed: bool, tiers: dict[int, str]) -> bool:
        return not replayed and tiers.get(step, "disk") == "disk"
    for target in range(n_steps - 1, -1, -1):
        start = stack[-1][0]
        read(stack[-1])
        if start == target:
            stack.pop()
            if stack:
                read(stack[-1])  # prefetched while this step runs
            held = 1  # the popped state, differentiated now
        else:
            next_keep = replay_keep(start, target, schedule)
            while start < target:
                if start in gradients:
                    gradients.discard(start)
                    updates += 1
                else:
                    steps += 1
                start += 1
                if start == next_keep and start < target:
                    stack.append((start, True))
                    next_keep = replay_keep(start, target, schedule)
            held = 1  # the replayed state before ``target``
        held += sum(1 for _, replayed in stack if replayed)
        held += sum(1 for step, replayed in stack if not replayed and step in loaded)
        most = max(most, held)
        loaded = {step for step in loaded if any(s == step for s, _ in stack)}
        states_out = sum(on_disk(s, r, tier_of_state) for s, r in stack)
        gradients_out = sum(on_disk(g, False, tier_of_gradient or {}) for g in gradients)
        after_steps.append((len(stack) - states_out, states_out,
                            len(gradients) - gradients_out, gradients_out))
    return Replay(steps, updates, most,
                  GRADIENTS_SEGMENT - 1 if schedule == "gradients" else 0, tuple(after_steps))
