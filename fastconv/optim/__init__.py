"""fastconv.optim: optimizers and learning-rate schedulers with PyTorch's exact update rules.

In order of increasing complexity: :class:`SGD` (momentum, dampening, Nesterov, L2 decay),
:class:`Adam` and :class:`AdamW` (bias-corrected moments, AMSGrad, L2 or decoupled decay),
all on the :class:`Optimizer` base (param groups, per-parameter state, ``zero_grad``,
``state_dict``/``load_state_dict``); schedulers in :mod:`fastconv.optim.lr_scheduler`.

Updates run in place on each parameter's array (``p.data``) with NumPy ufuncs writing
into preallocated buffers, outside autograd; state arrays keep the parameter's dtype.
Source: https://pytorch.org/docs/stable/optim.html
"""

from __future__ import annotations

from fastconv.optim import lr_scheduler
from fastconv.optim.adam import Adam, AdamW
from fastconv.optim.optimizer import Optimizer
from fastconv.optim.sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "lr_scheduler"]
