"""`magic plan`'s simulation of a run (`plan_schedule`, `plan_estimate`) against the engine.

The plan's memory model counts the states the backward holds at once (the
one differentiated, the replayed ones on its stack, kept ones read back) and
the steps it replays; its disk model the most a run's checkpoint folder
holds. These run a real engine and measure the same things.
"""

from __future__ import annotations

import magic_core as mc
import pytest
import torch
from magic_core.engine import MagicEngine
from magic_core.keep_schedule import kept_in_training
from magic_core.phase_checkpoint import CheckpointStore
from magic_core.run_control import RunControl
from magic_core.state_store import Offloaded
from magic_driver import plan_model
from magic_driver.plan_estimate import _checkpoint_bytes
from magic_driver.plan_job import Where
from magic_driver.plan_schedule import place, replay
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

VOCAB, SEQ, BATCH = 64, 8, 2


CONFIG = GPTNeoXConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32, max_position_embeddings=SEQ,
                       attn_implementation="eager")
TRAIN = mc.TrainConfig(optimizer="adam", lr=1e-3, batch_size=BATCH, shuffle=False,
                       precision="fp64", max_seq_len=SEQ)


def _attribute(schedule: str, steps: int, device_memory: str, tmp_path, control=None):
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(CONFIG)
    rows = torch.randint(1, VOCAB, (steps * BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    corpus = mc.TokenizedCorpus(rows.tolist(), [str(i) for i in range(len(rows))],
                                [""] * len(rows), truncated=0, max_seq_len=SEQ)
    return mc.attribute(
        model, None, corpus, mc.LanguageModelObjective.from_token_ids(rows[:2].tolist()), TRAIN,
        mc.AttributionConfig(kept_states=schedule, device_memory=device_memory,
                             spill_dir=str(tmp_path / "spill")),
        progress=False, control=control)


def _held_by(engine: MagicEngine) -> int:
    """States in memory beside the device tier while a step is differentiated: that one and
    the offloaded ones read back (materialized or prefetched); replayed ones are entries of
    the store like kept ones."""
    stack = engine._backward.stack
    read_back = sum(1 for _, entry in stack
                    if isinstance(entry, Offloaded) and entry._loaded is not None)
    return 1 + read_back


@pytest.mark.parametrize("schedule, steps", [("sqrt", 16), ("log", 16), ("sqrt", 9),
                                             ("gradients", 12), ("all", 6)])
def test_the_plans_backward_is_the_engines(schedule, steps, monkeypatch, tmp_path):
    held = []
    vjp = MagicEngine._step_vjp

    def counting(self, state, index, param_cot, opt_cot):
        held.append(_held_by(self))
        return vjp(self, state, index, param_cot, opt_cot)

    monkeypatch.setattr(MagicEngine, "_step_vjp", counting)
    result = _attribute(schedule, steps, "0", tmp_path)

    placed = place(steps, schedule, 1, 1, {"device": 0, "host": 0})
    planned = replay(steps, schedule, placed)
    assert result.kept_states["placed"]["disk"] == len(kept_in_training(steps, schedule))
    assert (result.replayed_steps, result.replayed_updates) == \
        (planned.replayed_steps, planned.replayed_updates)
    assert len(held) == steps
    assert max(held) == planned.states_in_memory


@pytest.mark.parametrize("schedule, steps, room", [("sqrt", 16, 3), ("log", 16, 2),
                                                   ("sqrt", 25, 2), ("gradients", 12, 4)])
def test_replayed_states_take_the_tiers_the_plan_gives_them(schedule, steps, room, monkeypatch,
                                                             tmp_path):
    """A device tier of ``room`` states: the replayed states the engine keeps go to the device
    while it has room (kept ones taken give theirs back), else to disk, as the plan says."""
    size = plan_model.state_size(plan_model.meta_model(CONFIG, torch.float64), TRAIN, steps, 1)
    budgets = {"device": room * size.bytes_per_rank, "host": 0}
    device_used = []
    vjp = MagicEngine._step_vjp

    def measuring(self, state, index, param_cot, opt_cot):
        device_used.append(self.kept.used["device"])
        return vjp(self, state, index, param_cot, opt_cot)

    monkeypatch.setattr(MagicEngine, "_step_vjp", measuring)
    result = _attribute(schedule, steps, f"{budgets['device']}B", tmp_path)

    placed = place(steps, result.schedule, size.bytes_per_rank, size.gradient_bytes_per_rank,
                   budgets)
    planned = replay(steps, result.schedule, placed)
    assert result.kept_states["placed"] == placed.states
    assert result.kept_states["held"] == planned.held
    assert planned.held["device"] > 0 < planned.held["disk"]  # both tiers take some
    assert max(device_used) == planned.tier_bytes["device"] <= budgets["device"]
    assert (result.replayed_steps, result.replayed_updates) == \
        (planned.replayed_steps, planned.replayed_updates)


def _folder_bytes(folder) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0


@pytest.mark.parametrize("schedule, device_memory", [("all", "1GiB"), ("all", "0"),
                                                     ("sqrt", "0"), ("gradients", "1GiB")])
def test_the_checkpoint_folder_stays_within_the_plans_bytes(schedule, device_memory,
                                                            monkeypatch, tmp_path):
    """A checkpoint after every step: the folder's size at its largest (the new files
    written beside the old before these go) is what the plan said, and spilled states
    listed by reference are not in it."""
    steps, folder = 9, tmp_path / "run" / "checkpoints"
    peaks = []
    save = CheckpointStore.save

    def measuring(self, *args, **kwargs):
        before = _folder_bytes(folder)
        out = save(self, *args, **kwargs)
        peaks.append(before + self.last_written)
        return out

    monkeypatch.setattr(CheckpointStore, "save", measuring)
    control = RunControl(CheckpointStore(folder), checkpoint_every=0.0)
    result = _attribute(schedule, steps, device_memory, tmp_path, control)

    size = plan_model.state_size(plan_model.meta_model(CONFIG, torch.float64), TRAIN, steps, 1)
    budgets = {"device": plan_model_budget(device_memory), "host": 0}
    placed = place(steps, result.schedule, size.bytes_per_rank, size.gradient_bytes_per_rank,
                   budgets)
    assert result.kept_states["placed"] == placed.states
    where = Where(1, 1, None, None, None, None, "", None, "", None, "")
    planned = _checkpoint_bytes(size, placed, replay(steps, result.schedule, placed),
                                where, False, steps * BATCH * SEQ * 8)
    assert len(peaks) > 2 * steps
    # The files' headers and counters make a few KiB more than their tensors.
    assert planned * 0.9 <= max(peaks) <= planned + 64 * 1024
    if placed.states["disk"] == sum(placed.states.values()):
        assert max(peaks) < 4 * size.bytes_per_rank  # no kept state, referenced or not


def plan_model_budget(text: str) -> int:
    from magic_core.memory import parse_bytes

    return parse_bytes(text, "device_memory")
