"""Operator profiler: times one decoder layer's operators with torch on the present device.

* :mod:`.plan` - the sampling plan (token counts, heterogeneous attention batches, MoE loads);
  pure Python, no torch
* :mod:`.ops` - torch builders: one zero-argument callable per plan item
* :mod:`.runner` - warm-up / repetition timing loop, tidy rows, native CSVs (``save_profiles``)
* :mod:`.cli` - ``frontier-jax profile`` (torch is imported only when the command runs)

Importing this package does not import torch.
"""

from .cli import register_cli
from .plan import PROFILER_VERSION, LayerShapes, PlanItem, build_plan, layer_shapes

__all__ = ["PROFILER_VERSION", "LayerShapes", "PlanItem", "build_plan", "layer_shapes", "register_cli"]
