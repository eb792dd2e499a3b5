"""K policies of one architecture as one batched model: every parameter stacked over the seeds.

Each parameter of the K policies becomes row ``k`` of one ``[K, ...]`` leaf tensor, and each policy's own
parameter a view of its row: whatever reads a policy (a callback, an evaluation, ``model.save``) sees its
seed's current weights, with no copy back. A policy method runs for all seeds in one call
(:meth:`StackedPolicies.call`): ``torch.func.vmap`` over the stacked rows turns every layer of the policy's
own code (encoder, trunk, heads, adapters, lateral connections) into one batched operation, so the
batched model is the policies' architecture by construction, not a re-implementation of it.

The parameters are bound by swapping each owning module's ``_parameters`` slot for the duration of a
call, rather than with ``torch.func.functional_call``: an SB3 policy reaches its encoder under three
names (``features_extractor`` and its ``pi_``/``vf_`` aliases), and functional_call's restore leaves
the aliased module holding the batched tensor (torch 2.13; ``tests/test_batched.py`` checks that
every policy holds its own parameters again after a call).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.func import vmap

MIN_ROWS = 2


def _slots(module: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """``(owning module, attribute, full name)`` of each distinct parameter of ``module``."""
    out = []
    for name, _ in module.named_parameters():
        owner, _, leaf = name.rpartition(".")
        out.append((module.get_submodule(owner) if owner else module, leaf, name))
    return out


class StackedPolicies:
    """``policies`` (same class, same parameter names and shapes) trained as one model.

    :attr:`params`: name -> ``[rows, ...]`` leaf tensor (``requires_grad`` as the policies' parameter: a
    frozen component stays frozen). After construction the policies' parameters are views of these rows.

    There are at least :data:`MIN_ROWS` rows: a single policy gets a copy of itself as a second row, which
    belongs to no policy (callers leave it out of their losses). torch computes a batched product of one
    matrix by another path than of several (a linear layer of one output, torch 2.13: the results differ
    in the last bits), so without it a seed alone would not be bit-identical to the same seed in a batch.
    """

    def __init__(self, policies: Sequence[nn.Module]):
        if not policies:
            raise ValueError("no policies to stack")
        self.policies = list(policies)
        self.ref = self.policies[0]
        shapes = {n: p.shape for n, p in self.ref.named_parameters()}
        names = list(shapes)
        for policy in self.policies[1:]:  # buffers are constants of the architecture, shared by the seeds
            theirs = dict(policy.named_buffers())
            for name, buf in self.ref.named_buffers():
                if name not in theirs or not torch.equal(theirs[name], buf):
                    raise ValueError(f"the policies of a batch differ in their buffer '{name}'")
        self.params: dict[str, torch.Tensor] = {}
        for name in names:
            rows = []
            for policy in self.policies:
                own = dict(policy.named_parameters())
                if type(policy) is not type(self.ref) or set(own) != set(names) or own[name].shape != shapes[name]:
                    raise ValueError("the policies of a batch must share one architecture")
                rows.append(own[name])
            ghosts = [rows[0].detach()] * (MIN_ROWS - len(rows))
            stacked = torch.stack([r.detach() for r in rows] + ghosts).requires_grad_(rows[0].requires_grad)
            for k, row in enumerate(rows):
                row.data = stacked.data[k]  # the policy's parameter is now a view of its seed's row
            self.params[name] = stacked
        self._slots = _slots(self.ref)

    @property
    def k(self) -> int:
        """How many policies (seeds)."""
        return len(self.policies)

    @property
    def rows(self) -> int:
        """How many rows every stacked tensor has (:attr:`k`, or :data:`MIN_ROWS` for fewer)."""
        return max(self.k, MIN_ROWS)

    @contextmanager
    def _bound(self, tensors: dict[str, torch.Tensor]) -> Iterator[None]:
        saved = [owner._parameters[leaf] for owner, leaf, _ in self._slots]
        for owner, leaf, name in self._slots:
            owner._parameters[leaf] = tensors[name]  # type: ignore[assignment]
        try:
            yield
        finally:
            for (owner, leaf, _), param in zip(self._slots, saved):
                owner._parameters[leaf] = param

    def call(self, fn: Callable[..., Any], *inputs: Any) -> Any:
        """``fn(policy, *inputs_k)`` for every row ``k`` at once: each input (a tensor or a dict of tensors)
        has the :attr:`rows` as its first dimension, and so has every output."""

        def one(params: dict[str, torch.Tensor], *args: Any) -> Any:
            with self._bound(params):
                return fn(self.ref, *args)

        return vmap(one, randomness="error")(self.params, *inputs)

    def trainable(self) -> list[torch.Tensor]:
        return [p for p in self.params.values() if p.requires_grad]

    def param_groups(self, optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
        """``optimizer``'s parameter groups (the first policy's: learning-rate multipliers, frozen parameters
        left out) with each parameter replaced by its stacked tensor."""
        by_id = {id(p): name for name, p in self.ref.named_parameters()}
        groups = []
        for group in optimizer.param_groups:
            params = [self.params[by_id[id(p)]] for p in group["params"] if id(p) in by_id]
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": params})
        return groups

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Each seed's gradients scaled as ``torch.nn.utils.clip_grad_norm_`` scales one policy's: to a total
        2-norm of at most ``max_norm`` over all its parameters. Returns the K norms before clipping."""
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), 2, dim=1) for g in grads], dim=1)
        total = torch.linalg.vector_norm(norms, 2, dim=1)
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))
        return total

    def export_optimizer_state(
        self, stacked: torch.optim.Optimizer, optimizers: Sequence[torch.optim.Optimizer]
    ) -> None:
        """Each policy's own optimizer given its seed's row of the stacked optimizer's state (Adam's moments and
        step), so that a saved model resumes training where the batch left it."""
        name_of = {id(t): name for name, t in self.params.items()}
        for k, (policy, opt) in enumerate(zip(self.policies, optimizers)):
            own = dict(policy.named_parameters())
            for tensor, state in stacked.state.items():
                param = own[name_of[id(tensor)]]
                opt.state[param] = {
                    key: (value[k].clone() if torch.is_tensor(value) and value.dim() > 0 else value.clone())
                    if torch.is_tensor(value)
                    else value
                    for key, value in state.items()
                }
            for group, own_group in zip(stacked.param_groups, opt.param_groups):
                own_group["lr"] = group["lr"]
