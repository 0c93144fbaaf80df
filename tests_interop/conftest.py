"""The interop env (``tox -e interop``): four curvature libraries through
:func:`fisher_verify.check_estimator` and the ``fisher_estimator_gate`` fixture.

Not collected by the main ``pytest`` run (``testpaths = ["tests"]``): these tests need
backpack-for-pytorch, curvlinops-for-pytorch, nngeometry and asdfghjkl, installed by tox.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

# tiny models: one thread is faster than two fighting over two cores with pytest-xdist
torch.set_num_threads(1)


@pytest.fixture
def snapshot() -> Any:
    """A function returning a comparable copy of a model's state (the model must come back as is)."""

    def take(model: nn.Module) -> Any:
        return (
            [(k, v.detach().clone()) for k, v in model.state_dict().items()],
            [sorted(vars(m)) for m in model.modules()],
            [len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules()],
        )

    return take


