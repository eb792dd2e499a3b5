"""Progressive networks (Rusu et al. 2016): a frozen pre-trained column plus a new column.

The frozen column is the policy's own ``encoder`` and ``trunk`` (loaded from the bundle,
frozen). The new column mirrors their layers; each of its layers also receives, through a
lateral connection, the frozen column's activation one layer below. The latents the heads see
are ``frozen + new``; the new column's last layers start at zero, so at step 0 the agent acts
exactly as the pre-trained one, and the new column learns what the target adds.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from stable_baselines3.common.preprocessing import preprocess_obs
from torch import nn

from rltransfer.agents.multitask_policy import MultiTaskActorCriticPolicy
from rltransfer.agents.transferable import encoder_input


def linear_layers(seq: nn.Module) -> list[nn.Linear]:
    return [m for m in seq.modules() if isinstance(m, nn.Linear)]


def activations(seq: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """The output of every activation in a Linear/activation ``Sequential``."""
    out = []
    for module in seq:
        x = module(x)
        if not isinstance(module, nn.Linear):
            out.append(x)
    return out


class LateralPath(nn.Module):
    """New-column layers mirroring ``widths``, each fed by the previous new layer plus a lateral
    from the frozen column's previous activation. The last layer starts at zero."""

    def __init__(
        self, in_dim: int, lateral_in: list[int], widths: list[int], activation: type[nn.Module], zero_last: bool
    ):
        super().__init__()
        self.layers = nn.ModuleList()
        self.laterals = nn.ModuleList()
        prev = in_dim
        for w, lat in zip(widths, lateral_in):
            self.layers.append(nn.Linear(prev, w))
            self.laterals.append(nn.Linear(lat, w, bias=False) if lat else nn.Identity())
            prev = w
        self.activation = activation()
        if zero_last and widths:
            last = cast(nn.Linear, self.layers[-1])
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            if isinstance(self.laterals[-1], nn.Linear):
                nn.init.zeros_(self.laterals[-1].weight)

    def forward(self, x: torch.Tensor, frozen_inputs: list[torch.Tensor | None]) -> torch.Tensor:
        for layer, lateral, h in zip(self.layers, self.laterals, frozen_inputs):
            z = layer(x)
            if h is not None and isinstance(lateral, nn.Linear):
                z = z + lateral(h)
            x = self.activation(z)
        return x


class ProgressivePolicy(MultiTaskActorCriticPolicy):
    """The multi-task policy with a new trainable column (component ``column``) beside the frozen one."""

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        enc = self.features_extractor
        act = type(enc.net[1]) if len(enc.net) > 1 else nn.Tanh
        enc_w = [layer.out_features for layer in linear_layers(enc.net)]
        pi_w = [layer.out_features for layer in linear_layers(self.mlp_extractor.policy_net)]
        vf_w = [layer.out_features for layer in linear_layers(self.mlp_extractor.value_net)]
        in_dim = enc.input_dim
        # Frozen inputs of each new layer: none for the first encoder layer (it sees the input).
        enc_lat = [0] + enc_w[:-1]
        feat = enc_w[-1] if enc_w else in_dim
        self.column = nn.ModuleDict(
            {
                "encoder": LateralPath(in_dim, enc_lat, enc_w, act, zero_last=not (pi_w and vf_w)),
                "pi": LateralPath(feat, [feat if enc_w else 0] + pi_w[:-1], pi_w, act, zero_last=True),
                "vf": LateralPath(feat, [feat if enc_w else 0] + vf_w[:-1], vf_w, act, zero_last=True),
            }
        )
        # Rebuild the optimizer so the new column's parameters are in it.
        self.optimizer = self.make_optimizer(self.param_groups(lr_schedule(1)), lr_schedule(1))

    def _both_latents(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.features_extractor.flat_input(
            preprocess_obs(encoder_input(obs, self.features_extractor), self.observation_space)
        )
        enc_acts = activations(self.features_extractor.net, x)
        feat = enc_acts[-1] if enc_acts else x
        pi_acts = activations(self.mlp_extractor.policy_net, feat)
        vf_acts = activations(self.mlp_extractor.value_net, feat)
        new_feat = self.column["encoder"](x, [None] + enc_acts[:-1])
        new_pi = self.column["pi"](new_feat, [feat] + pi_acts[:-1])
        new_vf = self.column["vf"](new_feat, [feat] + vf_acts[:-1])
        frozen_pi = pi_acts[-1] if pi_acts else feat
        frozen_vf = vf_acts[-1] if vf_acts else feat
        if not pi_acts:
            new_pi = new_feat
        if not vf_acts:
            new_vf = new_feat
        return frozen_pi + new_pi, frozen_vf + new_vf

    def _latents(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self._both_latents(obs)

    def _actor_latent(self, obs: Any) -> torch.Tensor:
        return self._both_latents(obs)[0]

    def predict_values(self, obs: Any) -> torch.Tensor:
        return self._value(self._both_latents(obs)[1], self._head_index(obs))
