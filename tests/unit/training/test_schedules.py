"""The steps rule: training updates from epochs, data size and batch size."""

import pytest

from asdlab.training.schedules import steps_for_epochs


@pytest.mark.parametrize(
    ("max_steps", "epochs", "n", "batch", "expected"),
    [
        (200, 40, 45, 32, 57),  # ceil(40 x 45 / 32) = ceil(56.25)
        (200, 40, 1000, 32, 200),  # capped at max_steps
        (200, 40, 10, 32, 40),  # batch = min(32, 10): 40 passes of one batch
        (200, None, 45, 32, 200),  # no rule: max_steps whatever the data
        (200, 0.01, 3, 32, 1),  # at least one update
    ],
)
def test_steps_for_epochs(max_steps, epochs, n, batch, expected):
    assert steps_for_epochs(max_steps, epochs, n, batch) == expected
