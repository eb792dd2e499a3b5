"""Low-rank adapters (LoRA, Hu et al. 2021) on the linear layers of transferred components.

``LoRALinear`` *is* an ``nn.Linear`` (same ``weight``/``bias`` names, so pre-trained weights
load into it unchanged) plus a trainable low-rank update ``(alpha / rank) * B @ A``. ``B``
starts at zero, so an adapted network computes exactly the pre-trained function at step 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ADAPTER_MARK = ".lora_"


class LoRALinear(nn.Linear):
    """A linear layer with a low-rank adapter; freeze ``weight``/``bias`` and train ``lora_*``."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float | None = None, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        if rank < 1:
            raise ValueError(f"adapter rank must be >= 1, got {rank}")
        self.rank = rank
        self.scale = (alpha if alpha is not None else rank) / rank
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.scale * nn.functional.linear(nn.functional.linear(x, self.lora_A), self.lora_B)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", rank={self.rank}"


def add_adapters(module: nn.Module, rank: int, alpha: float | None = None) -> int:
    """Replace every ``nn.Linear`` inside ``module`` by a :class:`LoRALinear` with the same weights.

    :return: the number of layers adapted.
    """
    count = 0
    for name, child in list(module.named_children()):
        if type(child) is nn.Linear:
            lora = LoRALinear(child.in_features, child.out_features, rank, alpha, bias=child.bias is not None)
            with torch.no_grad():
                lora.weight.copy_(child.weight)
                if child.bias is not None:
                    lora.bias.copy_(child.bias)
            setattr(module, name, lora)
            count += 1
        else:
            count += add_adapters(child, rank, alpha)
    return count


def is_adapter_param(name: str) -> bool:
    return ADAPTER_MARK in "." + name
