"""Where a run's kept states go and what its backward replays, simulated without tensors.

The same rules as the engine, on byte counts: `magic_core.keep_schedule`
picks the states (and, for ``gradients``, the gradients) kept while
training; `place` puts each in the first tier with room, in the order the
engine keeps them (state i before the gradient of step i), as
`magic_core.state_store.StateStore.keep` does; `replay` walks the backward's
stack of `magic_core.engine.MagicEngine._state_before` and counts the
replayed steps, the updates applied again and the most states held in
memory at once. The backward gives a kept state's bytes back to its tier
when it takes the state, and places each state its replays keep for later
in the first tier with room, as `StateStore.hold` does.
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
    # What `place` was given: one state's and one gradient's bytes, the tiers' budgets.
    state_bytes: int = 0
    gradient_bytes: int = 0
    budgets: dict[str, int] = field(default_factory=lambda: {"device": 0, "host": 0})


def place(n_steps: int, schedule: str, state_bytes: int, gradient_bytes: int,
          budgets: dict[str, int]) -> Placement:
    """The tiers of every kept state and gradient; ``budgets``: device and host bytes."""
    placed = Placement(state_bytes=state_bytes, gradient_bytes=gradient_bytes,
                       budgets=dict(budgets))
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
    # States in memory beside the device tier's: the one differentiated and the
    # offloaded ones read back (materialized or prefetched).
    states_in_memory: int
    # Kept gradients read back ahead of the replay that applies them.
    gradients_in_memory: int
    # After each step's VJP, what a checkpoint then holds besides cotangents: the states
    # on the stack and the kept gradients not yet applied, (in memory, on disk) each.
    after_steps: tuple[tuple[int, int, int, int], ...] = ()
    # The most bytes each tier holds at once in the backward (kept and replayed states,
    # kept gradients), from what training left there.
    tier_bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIERS, 0))
    # Where the replayed states the stack keeps went, as `StateStore.summary`'s ``held``.
    held: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIERS, 0))


def replay(n_steps: int, schedule: str, placed: Placement) -> Replay:
    """Walk the backward from step n - 1 to 0 as the engine does, from training's ``placed``."""
    used = dict(placed.bytes)
    most_used = dict(used)
    # (step, tier) ascending: the kept states, then the replayed ones placed as they come.
    stack = [(i, placed.tier_of_state.get(i, "disk")) for i in kept_in_training(n_steps, schedule)]
    gradients = kept_gradients(n_steps, schedule)
    loaded: set[int] = set()  # offloaded states read back into memory

    def read(entry: tuple[int, str]) -> None:
        if entry[1] != "device":
            loaded.add(entry[0])

    held = dict.fromkeys(TIERS, 0)

    def hold(size: int) -> str:
        for tier in ("device", "host"):
            if used[tier] + size <= placed.budgets[tier]:
                break
        else:
            tier = "disk"
        used[tier] += size
        most_used[tier] = max(most_used[tier], used[tier])
        held[tier] += 1
        return tier

    steps = updates = most = 0
    after_steps = []
    for target in range(n_steps - 1, -1, -1):
        start = stack[-1][0]
        read(stack[-1])
        if start == target:
            used[stack.pop()[1]] -= placed.state_bytes
            if stack:
                read(stack[-1])  # prefetched while this step runs
        else:
            next_keep = replay_keep(start, target, schedule)
            while start < target:
                if start in gradients:
                    gradients.discard(start)
                    used[placed.tier_of_gradient.get(start, "disk")] -= placed.gradient_bytes
                    updates += 1
                else:
                    steps += 1
                start += 1
                if start == next_keep and start < target:
                    stack.append((start, hold(placed.state_bytes)))
                    next_keep = replay_keep(start, target, schedule)
        # The state differentiated now (popped, or replayed up to ``target``), and those read back.
        in_memory = 1 + sum(1 for step, _ in stack if step in loaded)
        most = max(most, in_memory)
        loaded = {step for step in loaded if any(s == step for s, _ in stack)}
        states_out = sum(tier == "disk" for _, tier in stack)
        gradients_out = sum(placed.tier_of_gradient.get(g, "disk") == "disk" for g in gradients)
        after_steps.append((len(stack) - states_out, states_out,
                            len(gradients) - gradients_out, gradients_out))
    return Replay(steps, updates, most,
                  GRADIENTS_SEGMENT - 1 if schedule == "gradients" else 0, tuple(after_steps),
                  most_used, held)
