"""Where kept states live (memory, disk) must never change a score."""

import magic_core as mc
import pytest
import torch
from magic_core.keep_schedule import (
    GRADIENTS_SEGMENT,
    kept_gradients,
    kept_in_training,
    replay_keep,
    resolve_schedule,
)
from magic_core.memory import parse_bytes


def run(make_neox, tokenizer, corpus, objective, **attribution):
    cfg = mc.TrainConfig(optimizer="adam", lr=1e-2, batch_size=2, epochs=2, precision="fp64",
                         max_seq_len=24, eps=1e-6)
    return mc.attribute(make_neox(), tokenizer, corpus, objective, cfg,
                        mc.AttributionConfig(granularity="per-token", **attribution), progress=False)


@pytest.fixture(scope="module")
def objective(tokenizer, hazard_questions):
    return mc.MultipleChoiceObjective(hazard_questions, tokenizer)


def test_spilled_states_give_identical_scores(make_neox, tokenizer, small_corpus, objective, tmp_path):
    in_memory = run(make_neox, tokenizer, small_corpus, objective, kept_states="all")
    assert in_memory.kept_states["placed"] == {"device": 5, "host": 0, "disk": 0}
    one_state = in_memory.kept_states["bytes"]["device"] // 5
    # Two states fit in memory, the other three go to files and come back.
    mixed = run(make_neox, tokenizer, small_corpus, objective, kept_states="all",
                device_memory=str(2 * one_state), spill_dir=str(tmp_path))
    assert mixed.kept_states["placed"] == {"device": 2, "host": 0, "disk": 3}
    assert mixed.replayed_steps == 0
    assert torch.equal(mixed.per_token, in_memory.per_token)
    # Spill files are removed once the backward has read them.
    assert list(tmp_path.rglob("*.safetensors")) == []
    on_disk = run(make_neox, tokenizer, small_corpus, objective, kept_states="sqrt",
                  device_memory="0", spill_dir=str(tmp_path))
    assert on_disk.kept_states["placed"]["device"] == 0 < on_disk.kept_states["placed"]["disk"]
    assert torch.allclose(on_disk.per_token, in_memory.per_token, rtol=1e-12, atol=0)


def test_auto_keeps_every_state_when_they_fit(make_neox, tokenizer, small_corpus, objective):
    result = run(make_neox, tokenizer, small_corpus, objective)
    assert result.schedule == "all" and result.replayed_steps == 0


def test_auto_falls_back_to_gradients_or_sqrt_without_room(tmp_path):
    no_room = {"device": 0, "host": 0}
    assert resolve_schedule("auto", 64, 10**6, {"device": 64 * 10**6, "host": 0}, str(tmp_path)) == "all"
    assert resolve_schedule("auto", 64, 10**18, no_room, str(tmp_path)) == "gradients"
    assert resolve_schedule("auto", 64, 10**18, no_room, str(tmp_path), gradients_apply=False) == "sqrt"
    # Sharded runs without memory for every state spill them all when the disk has room.
    assert resolve_schedule("auto", 64, 10**6, no_room, str(tmp_path), gradients_apply=False) == "all"
    assert resolve_schedule("log", 64, 10**18, no_room, None) == "log"
    with pytest.raises(mc.ConfigError, match="sharding: none"):
        resolve_schedule("gradients", 64, 10**6, no_room, None, gradients_apply=False)


@pytest.mark.parametrize("n_steps", [*range(1, 40), 64, 256, 1000])
def test_the_gradients_schedule_keeps_exactly_the_gradients_its_replays_apply(n_steps):
    # The engine's backward walk: a target is the top of the stack (popped)
    # or replayed to from it, the replay pushing the states it passes.
    kept = kept_in_training(n_steps, "gradients")
    stack = list(kept)
    applied, most_replayed = [], 0
    for target in range(n_steps - 1, -1, -1):
        start = stack[-1]
        if start == target:
            stack.pop()
            continue
        next_keep = replay_keep(start, target, "gradients")
        while start < target:
            applied.append(start)
            start += 1
            if start == next_keep and start < target:
                stack.append(start)
                next_keep = replay_keep(start, target, "gradients")
        most_replayed = max(most_replayed, len(stack) - len(set(stack) & set(kept)))
    assert stack == []
    assert sorted(applied) == sorted(kept_gradients(n_steps, "gradients"))  # each one, once
    # The backward's held states are bounded by the segment, whatever the run's length.
    assert most_replayed <= GRADIENTS_SEGMENT - 1
    assert len(kept) == -(-n_steps // GRADIENTS_SEGMENT)


def test_kept_gradients_in_memory_or_on_disk_give_identical_scores(
    make_neox, tokenizer, small_corpus, objective, tmp_path
):
    every_state = run(make_neox, tokenizer, small_corpus, objective, kept_states="all")
    in_memory = run(make_neox, tokenizer, small_corpus, objective, kept_states="gradients")
    n_steps = len(in_memory.train_losses)
    assert in_memory.kept_gradients["placed"]["device"] == len(kept_gradients(n_steps, "gradients"))
    assert in_memory.replayed_steps == 0
    assert in_memory.replayed_updates == len(kept_gradients(n_steps, "gradients")) > 0
    assert torch.equal(in_memory.per_token, every_state.per_token)
    one_state = every_state.kept_states["bytes"]["device"] // n_steps
    # States and gradients draw on one budget: some stay, the rest go to files.
    for budget in ("0", str(one_state + one_state // 2)):
        spilled = run(make_neox, tokenizer, small_corpus, objective, kept_states="gradients",
                      device_memory=budget, spill_dir=str(tmp_path))
        placed = spilled.kept_gradients["placed"]
        assert placed["disk"] > 0 and placed["device"] == (0 if budget == "0" else 1)
        assert torch.equal(spilled.per_token, every_state.per_token)
        assert list(tmp_path.rglob("*.safetensors")) == []


def test_memory_sizes_are_read_and_bad_ones_refused():
    assert parse_bytes("512MiB", "x") == 512 * 2**20
    assert parse_bytes("2GB", "x") == 2 * 10**9
    assert parse_bytes("0", "x") == 0
    with pytest.raises(mc.ConfigError, match="attribution.device_memory"):
        mc.AttributionConfig(device_memory="lots")


def test_spill_files_are_safetensors_and_round_trip(tmp_path):
    from magic_core.state_files import BLOCK, BufferPool, read_state, write_state
    from safetensors.torch import load_file

    tensors = {"param.w": torch.randn(7, 5, dtype=torch.float64), "opt.0": torch.randn(33),
               "rng.cpu": torch.randint(0, 255, (13,), dtype=torch.uint8),
               "rng.cuda": torch.empty(0, dtype=torch.uint8), "batch_index": torch.tensor(3)}
    pool = BufferPool()
    write_state(tmp_path / "s.safetensors", tensors, pool)
    assert (tmp_path / "s.safetensors").stat().st_size % BLOCK == 0  # whole blocks: direct I/O
    other_tools = load_file(tmp_path / "s.safetensors")
    back = read_state(tmp_path / "s.safetensors", pool)
    for name, t in tensors.items():
        assert torch.equal(other_tools[name], t) and torch.equal(back[name], t)
        assert back[name].dtype == t.dtype and back[name].shape == t.shape


def test_buffer_pool_reuses_a_buffer_only_once_nothing_views_it(tmp_path):
    from magic_core.state_files import BufferPool, read_state, write_state

    pool = BufferPool()
    write_state(tmp_path / "a.safetensors", {"x": torch.arange(1000.0)}, pool)
    held = read_state(tmp_path / "a.safetensors", pool)
    other = read_state(tmp_path / "a.safetensors", pool)  # `held` still views the first buffer
    assert len(pool._buffers) == 2
    assert torch.equal(held["x"], torch.arange(1000.0)) and torch.equal(other["x"], held["x"])
    del held
    read_state(tmp_path / "a.safetensors", pool)
    assert len(pool._buffers) == 2


def test_truncated_spill_file_is_reported(tmp_path):
    from magic_core.state_files import BufferPool, read_state, write_state

    pool = BufferPool()
    path = tmp_path / "t.safetensors"
    write_state(path, {"x": torch.arange(5000.0)}, pool)
    with open(path, "r+b") as f:
        f.truncate(4096 + 100)
    with pytest.raises(OSError, match="truncated"):
        read_state(path, pool)


def test_spill_files_without_direct_io(tmp_path, monkeypatch):
    # tmpfs and macOS have no O_DIRECT: the same files through the page cache.
    from magic_core import state_files

    monkeypatch.setattr(state_files, "_DIRECT", 0)
    pool = state_files.BufferPool()
    state_files.write_state(tmp_path / "p.safetensors", {"x": torch.arange(10.0)}, pool)
    assert torch.equal(state_files.read_state(tmp_path / "p.safetensors", pool)["x"], torch.arange(10.0))


def test_stores_rebuild_states_from_a_template_without_memory():
    from magic_core.optim import build_optimizer
    from magic_core.state_store import state_structure
    from magic_core.state_tensors import from_tensors, to_tensors
    from magic_core.training_step import TrainingStep, take_state
    from torchopt.pytree import tree_flatten, tree_iter

    cfg = mc.TrainConfig(optimizer="adam", lr=1e-2, precision="fp64")
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 3)).double()
    optimizer = build_optimizer(cfg, 4)
    state = take_state(model, optimizer)
    step = TrainingStep(model, optimizer)
    state = step.update(state, {k: torch.randn_like(p) for k, p in state.params.items()})
    template = state_structure(state)
    tensors = list(tree_iter((template.params, template.opt_state)))
    assert tensors and all(t.device.type == "meta" for t in tensors)
    rebuilt = from_tensors(to_tensors(state), template)
    assert tree_flatten(rebuilt.opt_state)[1] == tree_flatten(state.opt_state)[1]
    for ours, theirs in zip(tree_iter((rebuilt.params, rebuilt.opt_state)),
                            tree_iter((state.params, state.opt_state))):
        assert ours.device == theirs.device and torch.equal(ours, theirs)
    assert rebuilt.batch_index == state.batch_index == 1


def test_replayed_states_go_through_the_tiers_and_change_no_score(make_neox, tokenizer, small_corpus,
                                                                   objective, tmp_path):
    unbounded = run(make_neox, tokenizer, small_corpus, objective, kept_states="sqrt")
    assert unbounded.kept_states["held"]["device"] > 0 == unbounded.kept_states["held"]["disk"]
    one_state = unbounded.kept_states["bytes"]["device"] // sum(unbounded.kept_states["placed"].values())
    # Room for a state and a half, taken by a kept one: the replayed state goes to disk.
    bounded = run(make_neox, tokenizer, small_corpus, objective, kept_states="sqrt",
                  device_memory=str(3 * one_state // 2), spill_dir=str(tmp_path))
    assert bounded.kept_states["held"]["disk"] > 0 == bounded.kept_states["held"]["device"]
    assert bounded.replayed_steps == unbounded.replayed_steps
    assert torch.equal(bounded.per_token, unbounded.per_token)
    assert list(tmp_path.rglob("*.safetensors")) == []


def test_hold_places_within_the_budgets_and_release_gives_them_back(tmp_path):
    from magic_core.state_store import Offloaded, StateStore

    gradient = {"w": torch.arange(4, dtype=torch.float64)}  # 32 bytes
    store = StateStore(torch.device("cpu"), None, device_budget=64, spill_dir=str(tmp_path),
                       kind="gradient")
    store.keep(0, gradient)
    first, second = store.hold(1, gradient), store.hold(2, {"w": gradient["w"] + 1})
    assert not isinstance(first, Offloaded) and isinstance(second, Offloaded)
    assert store.used == {"device": 64, "host": 0, "disk": 32}
    store.release(store.pop(0))
    third = store.hold(3, gradient)  # the room the kept one gave back
    assert not isinstance(third, Offloaded)
    assert torch.equal(store.materialize(second)["w"], gradient["w"] + 1)
    store.release(second)
    assert store.used == {"device": 64, "host": 0, "disk": 0}
    summary = store.summary()
    assert summary["placed"] == {"device": 1, "host": 0, "disk": 0}
    assert summary["bytes"] == {"device": 32, "host": 0, "disk": 0}  # what `keep` placed
    assert summary["held"] == {"device": 2, "host": 0, "disk": 1}
    store.close()
