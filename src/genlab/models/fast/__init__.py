"""Few-step generation: flow matching / rectified flow with reflow (Lipman et al. 2023; Liu et al. 2023) and consistency
models trained from scratch or distilled from a diffusion or flow run (Song et al. 2023; Song & Dhariwal 2023)."""

from genlab.models.fast.consistency import ConsistencyConfig, ConsistencyModel
from genlab.models.fast.flow_matching import FlowMatchingConfig, FlowMatchingModel

__all__ = ["ConsistencyConfig", "ConsistencyModel", "FlowMatchingConfig", "FlowMatchingModel"]
