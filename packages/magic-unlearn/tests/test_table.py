"""The unlearning table: runs that differ in a setting never share a row label."""

from magic_unlearn import flat_row
from magic_unlearn.table import markdown


def _result(lr: float, **options) -> dict:
    metrics = {"forget_accuracy": 0.34375, "retain_accuracy": 0.96875, "forget_loss": 1.7149,
               "retain_loss": 0.8686}
    return {"recipe": {"name": "gradient-ascent", "options": options},
            "optim": {"optimizer": "adam", "lr": lr, "batch_size": 4, "steps": 40},
            "after": metrics, "after_relearn": None}


def _labels(table: str) -> list[str]:
    return [line.split(" | ")[1] for line in table.splitlines()[2:]]


def test_close_learning_rates_print_apart():
    table = markdown([flat_row(_result(lr)) for lr in (5e-4, 8e-4, 1e-5, 1.5e-5)])
    labels = _labels(table)
    assert len(set(labels)) == 4, labels
    assert [label.split("lr=")[1].split(",")[0] for label in labels] == [
        "0.0005", "0.0008", "1e-5", "1.5e-5"]


def test_options_print_exactly_and_measurements_to_three_decimals():
    table = markdown([flat_row(_result(5e-4, retain_kl=10.0, clip=None))],
                     base={"forget_accuracy": 0.78125, "retain_accuracy": 1.0,
                           "forget_loss": 0.8279, "retain_loss": 0.8646})
    assert "retain_kl=10, clip=-, optimizer=adam, lr=0.0005" in table
    assert "| base model | - | 0.781 | 1.000 | 0.828 | 0.865 | - | - |" in table
    assert "| 0.344 | 0.969 | 1.715 | 0.869 | - | - |" in table
