"""The batch stream drops no document, weights in the run's dtype, and reports its training order."""

import magic_core as mc
import pyarrow.parquet as pq
import pytest
import torch
from magic_core.batch_stream import BatchStream
from magic_core.outputs import file_digests, write_training_order

IDS = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [10, 11], [12, 13, 14]]


def stream(per_token=False, dtype=torch.float64, batch_size=3, shuffle=True):
    return BatchStream(IDS, batch_size=batch_size, epochs=2, shuffle=shuffle, seed=0,
                       per_token=per_token, dtype=dtype, device="cpu")


def documents_of(order, step):
    return [d for s, d in zip(order["step"], order["document"]) if s == step]


def test_every_row_is_trained_and_listed_in_order():
    batches = stream()
    order = batches.training_order()
    assert len(batches) == 4  # 10 rows: the last batch has one row, not dropped
    assert order["step"] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert order["epoch"] == [0] * 5 + [1] * 5
    for epoch in (0, 1):
        assert sorted(d for d, e in zip(order["document"], order["epoch"]) if e == epoch) == [0, 1, 2, 3, 4]
    generator = torch.Generator().manual_seed(0)  # the documented order: one permutation per epoch
    assert order["document"] == torch.randperm(5, generator=generator).tolist() + \
        torch.randperm(5, generator=generator).tolist()
    for step in range(len(batches)):
        batch = batches[step]
        docs = documents_of(order, step)
        assert batch["input_ids"].shape[0] == len(docs)
        for row, labels, d in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), docs):
            n = len(IDS[d])
            assert row[:n] == IDS[d] and labels[:n] == IDS[d] and set(labels[n:]) <= {-100}
        assert torch.equal(batch["shift_loss_mask"][:, :-1], batch["labels"][:, 1:] != -100)
        assert not batch["shift_loss_mask"][:, -1].any()


def test_unshuffled_passes_keep_the_corpus_order():
    assert stream(shuffle=False).training_order()["document"] == [0, 1, 2, 3, 4] * 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("per_token", [False, True])
def test_weights_are_one_parameter_in_the_run_dtype(per_token, dtype):
    batches = stream(per_token, dtype)
    assert batches.weights.dtype == dtype and bool((batches.weights == 1).all())
    assert batches.weights.shape == ((5, 4) if per_token else (5,))
    batches.weights.requires_grad_(True)
    batch = batches[0]
    assert batch["example_weight"].dtype == dtype
    assert batch["example_weight"].shape == ((3, batch["input_ids"].shape[1]) if per_token else (3,))
    batch["example_weight"].sum().backward()
    touched = batches.weights.grad.reshape(5, -1).sum(-1).nonzero().flatten().tolist()
    assert sorted(touched) == sorted(documents_of(batches.training_order(), 0))


def test_ranks_share_each_batch_by_stride_and_pad_alike():
    batches = stream(per_token=True)
    whole = {i: batches[i] for i in range(len(batches))}
    order = batches.training_order()
    batches.world_size = 2
    for i in range(len(batches) - 1):  # the last batch has one row: one rank only
        shares = []
        for rank in (0, 1):
            batches.rank = rank
            shares.append(batches[i])
        assert {s["input_ids"].shape[1] for s in shares} == {whole[i]["input_ids"].shape[1]}
        assert torch.equal(shares[0]["input_ids"], whole[i]["input_ids"][0::2])
        assert torch.equal(shares[1]["input_ids"], whole[i]["input_ids"][1::2])
        assert torch.equal(shares[1]["example_weight"], whole[i]["example_weight"][1::2])
    assert batches.training_order() == order  # the order is the batches', not a rank's


def test_a_run_writes_its_training_order(make_neox, tokenizer, small_corpus, hazard_questions,
                                         tmp_path):
    cfg = mc.TrainConfig(optimizer="sgd", lr=0.05, batch_size=2, epochs=2, max_seq_len=24, seed=3)
    result = mc.attribute(make_neox(), tokenizer, small_corpus,
                          mc.MultipleChoiceObjective(hazard_questions, tokenizer), cfg,
                          mc.AttributionConfig(kept_states="sqrt"), progress=False)
    n = len(result.corpus)
    generator = torch.Generator().manual_seed(cfg.seed)
    expected = torch.randperm(n, generator=generator).tolist() + torch.randperm(n, generator=generator).tolist()
    assert result.training_order["document"] == expected
    assert result.training_order["step"] == [k // cfg.batch_size for k in range(2 * n)]
    assert max(result.training_order["step"]) == result.n_steps - 1
    write_training_order(tmp_path, result)
    table = pq.read_table(tmp_path / "training_order.parquet").to_pydict()
    assert {k: table[k] for k in ("step", "epoch", "document")} == result.training_order
    assert table["source_id"] == [result.corpus.source_ids[d] for d in expected]
    assert "training_order.parquet" in file_digests(tmp_path)
