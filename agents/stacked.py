"""K policies of one architecture as one batched model: every parameter stacked over the seeds.

Each parameter of the K policies becomes row ``k`` of one ``[K, ...]`` leaf tensor, and each policy's own
parameter a view of its row: whatever reads a policy (a callback, an evaluation, ``model.save``) sees its
seed's current weights, with no copy back. A policy method runs for all seeds in one call
(:meth:`StackedPolicies.call`) of the policy's own code (encoder, trunk, heads, adapters, lateral
connections), so the batched model is the policies' architecture by construction, not a re-implementation
of it. The call is *folded* where every module that owns parameters is a linear layer, an adapter, a stack
of heads or stems, or the heads' log-std: the seeds' samples run through the code as one batch, those
modules computing each seed's samples with its weights (:func:`grouped_linear`). Otherwise ``torch.func.vmap``
runs it over the stacked rows.

Under ``vmap`` the parameters are bound by swapping each owning module's ``_parameters`` slot for the
duration of a call, rather than with ``torch.func.functional_call``: an SB3 policy reaches its encoder under
three names (``features_extractor`` and its ``pi_``/``vf_`` aliases), and functional_call's restore leaves
the aliased module holding the batched tensor (torch 2.13; ``tests/test_batched.py`` checks that
every policy holds its own parameters again after a call).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

import torch
from torch import nn
from torch.func import vmap

from rltransfer.agents.adapters import LoRALinear
from rltransfer.agents.heads import StackedLinear, TaskHeads

MIN_ROWS = 2
MIN_ROWS_VMAP = 3
"""The rows of a stack whose calls go through ``vmap`` (a convolution): vmap computes a convolution of two
rows by another path than of three or more (torch 2.13: the results differ in the last bits), so a seed
alone or in a pair would not be bit-identical to the same seed in a larger batch."""


def _slots(module: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """``(owning module, attribute, full name)`` of each distinct parameter of ``module``."""
    out = []
    for name, _ in module.named_parameters():
        owner, _, leaf = name.rpartition(".")
        out.append((module.get_submodule(owner) if owner else module, leaf, name))
    return out


def grouped_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Row ``k``'s linear layer (``weight[k]``, ``bias[k]``) on row ``k``'s samples: ``x`` is the rows' samples
    one after another (``(rows * batch, ..., in)``), as :meth:`StackedPolicies.call` folds them."""
    rows = weight.shape[0]
    x3 = x.reshape(rows, -1, x.shape[-1])
    w = weight.transpose(1, 2)
    y = torch.bmm(x3, w) if bias is None else torch.baddbmm(bias.unsqueeze(1), x3, w)
    return y.reshape(*x.shape[:-1], weight.shape[1])


def _fold_plan(policy: nn.Module) -> list[tuple[nn.Module, dict[str, str]]] | None:
    """The modules of ``policy`` that own parameters, where every one is of a kind a folded call computes
    for all rows (linear layers, adapters, stacked heads, task heads' log-std); None: some other kind owns
    parameters (a convolution...), and the call goes through ``vmap``. Each module comes with its parameters'
    full names by their own."""
    plan: list[tuple[nn.Module, dict[str, str]]] = []
    for prefix, module in policy.named_modules():
        own = {n: f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters(recurse=False)}
        if not own:
            continue
        if isinstance(module, (nn.Linear, StackedLinear)) or (
            isinstance(module, TaskHeads) and set(own) == {"log_std"}
        ):
            plan.append((module, own))
        else:
            return None
    return plan


class StackedPolicies:
    """``policies`` (same class, same parameter names and shapes) trained as one model.

    :attr:`params`: name -> ``[rows, ...]`` leaf tensor (``requires_grad`` as the policies' parameter: a
    frozen component stays frozen). After construction the policies' parameters are views of these rows.

    There are at least :data:`MIN_ROWS` rows (:data:`MIN_ROWS_VMAP` where calls go through ``vmap``): a
    single policy gets copies of itself as extra rows, which belong to no policy (callers leave them out of
    their losses). torch computes a batched product of one matrix by another path than of several (a linear
    layer of one output, torch 2.13: the results differ in the last bits), so without them a seed alone
    would not be bit-identical to the same seed in a batch.
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
        self._fold = _fold_plan(self.ref)
        self.min_rows = MIN_ROWS if self._fold is not None else MIN_ROWS_VMAP
        self.params: dict[str, torch.Tensor] = {}
        for name in names:
            rows = []
            for policy in self.policies:
                own = dict(policy.named_parameters())
                if type(policy) is not type(self.ref) or set(own) != set(names) or own[name].shape != shapes[name]:
                    raise ValueError("the policies of a batch must share one architecture")
                rows.append(own[name])
            ghosts = [rows[0].detach()] * (self.min_rows - len(rows))
            stacked = torch.stack([r.detach() for r in rows] + ghosts).requires_grad_(rows[0].requires_grad)
            for k, row in enumerate(rows):
                row.data = stacked.data[k]  # the policy's parameter is now a view of its seed's row
            self.params[name] = stacked
        self._slots = _slots(self.ref)
        self._fold_forwards = [
            (module, _folded_forward(module, {n: self.params[full] for n, full in names.items()}))
            for module, names in self._fold or ()
            if not isinstance(module, TaskHeads)
        ]  # built once: what stands in for each layer's forward in a folded call (log-std's needs the batch)

    @property
    def k(self) -> int:
        """How many policies (seeds)."""
        return len(self.policies)

    @property
    def rows(self) -> int:
        """How many rows every stacked tensor has (:attr:`k`, or :attr:`min_rows` for fewer)."""
        return max(self.k, self.min_rows)

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

    @property
    def folds(self) -> bool:
        """Whether :meth:`call` runs folded (every parameter in a layer it computes for all rows) or by vmap."""
        return self._fold is not None

    def call(self, fn: Callable[..., Any], *inputs: Any) -> Any:
        """``fn(policy, *inputs_k)`` for every row ``k`` at once: each input (a tensor or a dict of tensors)
        has the :attr:`rows` as its first dimension, and so has every output (each a tensor per sample).

        Folded where it can (:attr:`folds`): the rows' samples become one batch of ``rows * batch`` samples
        that the policy's own code runs through, every layer with parameters computing each row's samples
        with its row's weights (one batched product: :func:`grouped_linear`), every other operation acting
        on samples alone. Otherwise by ``torch.func.vmap``, which costs a dispatch per operation and row
        batch (``benchmarks/stacked_call.py``: 0.43-0.67 ms against 0.19-0.25 ms folded for a rollout step
        of 10 CartPole seeds). ``tests/test_batched.py`` checks both against each policy's own forward pass."""
        if self._fold is None:

            def one(params: dict[str, torch.Tensor], *args: Any) -> Any:
                with self._bound(params):
                    return fn(self.ref, *args)

            return vmap(one, randomness="error")(self.params, *inputs)
        batch = next(_leaves(inputs)).shape[1]
        flat = _map(lambda t: t.reshape(-1, *t.shape[2:]), inputs)
        with self._folded(batch):
            out = fn(self.ref, *flat)
        return _map(lambda t: t.reshape(self.rows, batch, *t.shape[1:]), out)

    @contextmanager
    def _folded(self, batch: int) -> Iterator[None]:
        """The modules of the fold plan computing for all rows, with the stacked parameters."""
        assert self._fold is not None
        patched: list[tuple[nn.Module, str]] = []
        for module, forward in self._fold_forwards:  # an instance attribute stands in for the method meanwhile
            module.__dict__["forward"] = forward
            patched.append((module, "forward"))
        for module, names in self._fold:
            if isinstance(module, TaskHeads):
                module.__dict__["log_std_of"] = _folded_log_std(module, self.params[names["log_std"]], batch)
                patched.append((module, "log_std_of"))
        try:
            yield
        finally:
            for module, attr in patched:
                del module.__dict__[attr]

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

    def import_optimizer_state(self, stacked: StackedAdam, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """``stacked``'s state (moments and step, row by row) from each policy's own optimizer (a
        ``torch.optim.Adam``), where it has trained before: a model that resumes training in a batch."""
        name_of = {id(t): name for name, t in self.params.items()}
        for group in stacked.param_groups:
            for tensor in group["params"]:
                name = name_of[id(tensor)]
                own = [opt.state.get(dict(policy.named_parameters())[name]) for policy, opt in zip(self.policies, optimizers)]  # fmt: skip
                if any(own):
                    stacked.state[tensor] = adam_rows(tensor, own)

    def export_optimizer_state(self, stacked: StackedAdam, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Each policy's own optimizer (a ``torch.optim.Adam``) given its seed's row of ``stacked``'s state
        (moments and step), so that a saved model resumes training where the batch left it."""
        name_of = {id(t): name for name, t in self.params.items()}
        for k, (policy, opt) in enumerate(zip(self.policies, optimizers)):
            own = dict(policy.named_parameters())
            for tensor, state in stacked.state.items():
                param = own[name_of[id(tensor)]]
                opt.state[param] = {
                    "step": torch.tensor(float(state["step"][k])),
                    "exp_avg": state["exp_avg"][k].clone(),
                    "exp_avg_sq": state["exp_avg_sq"][k].clone(),
                }
            if not len(stacked.last_lr):  # never stepped (the run ended before its first update): as built
                continue
            for group, own_group in zip(stacked.param_groups, opt.param_groups):
                own_group["lr"] = float(stacked.last_lr[k]) * group.get("lr_mult", 1.0)


def _leaves(tree: Any) -> Iterator[torch.Tensor]:
    """The tensors of nested tuples, lists and dicts."""
    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, Mapping):
        for v in tree.values():
            yield from _leaves(v)
    elif isinstance(tree, (tuple, list)):
        for v in tree:
            yield from _leaves(v)


def _map(fn: Callable[[torch.Tensor], torch.Tensor], tree: Any) -> Any:
    """``tree`` (nested tuples, lists and dicts of tensors) with ``fn`` applied to every tensor."""
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, Mapping):
        return {k: _map(fn, v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(_map(fn, v) for v in tree)
    return tree


def _folded_forward(module: nn.Module, p: dict[str, torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``module``'s forward for the rows' samples folded into one batch, with its stacked parameters ``p``."""
    if isinstance(module, LoRALinear):
        scale = module.scale
        return lambda x: (
            grouped_linear(x, p["weight"], p.get("bias"))
            + scale * grouped_linear(grouped_linear(x, p["lora_A"], None), p["lora_B"], None)
        )
    if isinstance(module, StackedLinear):
        return lambda x, mask=None: module.route(grouped_linear(x, p["weight"], p["bias"]), mask)
    return lambda x: grouped_linear(x, p["weight"], p.get("bias"))


def _folded_log_std(heads: TaskHeads, log_std: torch.Tensor, batch: int) -> Callable[[Any], torch.Tensor]:
    """``heads.log_std_of`` per sample of the folded rows (``log_std``: ``(rows, tasks, actions)``)."""
    rows = log_std.shape[0]

    def of(mask: torch.Tensor | None) -> torch.Tensor:
        if len(heads) == 1 or mask is None:
            per_row = log_std[:, :1].expand(rows, batch, log_std.shape[2])
        else:
            per_row = torch.bmm(mask.reshape(rows, batch, -1), log_std)
        return per_row.reshape(rows * batch, -1)

    return of


class StackedAdam:
    """``torch.optim.Adam`` over stacked parameters with a learning rate per row (per seed): a seed's
    schedule follows its own progress, as where a probe of source heads took its first steps.

    Adam is elementwise, so each row is its seed's own Adam. The update restates torch's single-tensor
    Adam (torch 2.13, ``torch.optim.adam._single_tensor_adam``; what ``torch.optim.Adam`` runs on CPU
    parameters) with the step size a tensor over rows; ``tests/test_batched.py`` checks it against
    ``torch.optim.Adam`` on every row. AMSGrad, ``maximize`` and decoupled weight decay are refused
    (:func:`adam_unsupported`).
    """

    def __init__(self, param_groups: list[dict[str, Any]]):
        for group in param_groups:
            why = adam_unsupported(group)
            if why:
                raise ValueError(f"the batched optimizer restates Adam: {why}")
        self.param_groups = param_groups
        self.state: dict[torch.Tensor, dict[str, Any]] = {}
        self.last_lr = torch.zeros(0, dtype=torch.float64)

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self, lr: torch.Tensor, rows: Sequence[int] | None = None) -> None:
        """One Adam step of every row, row ``k`` at learning rate ``lr[k]`` (times its group's ``lr_mult``); with
        ``rows``, of those rows only: the others keep their parameters, moments and step count (a seed that has
        stopped, or that does not train yet, as an off-policy seed before its first update)."""
        self.last_lr = lr.to(torch.float64)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._step_group(group, params, rows)

    def _step_group(self, group: dict[str, Any], params: list[torch.Tensor], rows: Sequence[int] | None) -> None:
        beta1, beta2 = group["betas"]
        eps, weight_decay = group["eps"], group["weight_decay"]
        rate = self.last_lr * group.get("lr_mult", 1.0)
        n = params[0].shape[0]
        for p in params:
            if p not in self.state:  # the first step: moments at zero
                self.state[p] = {"step": [0] * n, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        states = [self.state[p] for p in params]
        stepping = range(n) if rows is None else sorted(set(rows))
        kept = [k for k in range(n) if k not in set(stepping)]
        saved = [(p[kept].clone(), st["exp_avg"][kept].clone(), st["exp_avg_sq"][kept].clone()) for p, st in zip(params, states)] if kept else []  # fmt: skip
        # Each operation of the single-tensor Adam, on the group's tensors in one call (the same arithmetic
        # element by element: torch's foreach operations on CPU loop over the tensors); the bias corrections
        # per row, each row at its own step (dividing by a float32 tensor is dividing by the Python float).
        grads: list[torch.Tensor] | tuple[torch.Tensor, ...] = [cast(torch.Tensor, p.grad) for p in params]
        if weight_decay != 0:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
        exp_avgs = [st["exp_avg"] for st in states]
        exp_avg_sqs = [st["exp_avg_sq"] for st in states]
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
        sizes, bias2 = [], []
        corrections: dict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor]] = {}  # by the rows' steps
        for p, st in zip(params, states):
            for k in stepping:
                st["step"][k] += 1
            steps = tuple(st["step"])
            key = (*steps, p.dtype)
            if key not in corrections:
                bias1 = torch.tensor([1 - beta1 ** float(s) for s in steps], dtype=torch.float64)
                corrections[key] = (
                    (rate / bias1).to(p.dtype).neg_(),
                    torch.tensor([(1 - beta2 ** float(s)) ** 0.5 for s in steps], dtype=p.dtype),
                )
            shape = (-1, *([1] * (p.dim() - 1)))
            sizes.append(corrections[key][0].view(shape))
            bias2.append(corrections[key][1].view(shape))
        denoms = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denoms, bias2)
        torch._foreach_add_(denoms, eps)
        torch._foreach_addcdiv_(params, torch._foreach_mul(exp_avgs, sizes), denoms)
        for (p_rows, m1, m2), p, st in zip(saved, params, states):
            p[kept], st["exp_avg"][kept], st["exp_avg_sq"][kept] = p_rows, m1, m2


def adam_rows(tensor: torch.Tensor, states: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """:class:`StackedAdam`'s state of ``tensor`` from the ``torch.optim.Adam`` states of its rows (None: a
    row that never stepped)."""
    out: dict[str, Any] = {"step": [0] * tensor.shape[0], "exp_avg": torch.zeros_like(tensor), "exp_avg_sq": torch.zeros_like(tensor)}  # fmt: skip
    for k, st in enumerate(states):
        if st:
            out["step"][k] = int(st["step"])
            out["exp_avg"][k] = st["exp_avg"]
            out["exp_avg_sq"][k] = st["exp_avg_sq"]
    return out


def adam_unsupported(group: Mapping[str, Any]) -> str | None:
    """Why :class:`StackedAdam` cannot stand in for the optimizer of this parameter group (None: it can)."""
    for key in ("amsgrad", "maximize", "decoupled_weight_decay", "differentiable", "capturable"):
        if group.get(key):
            return f"'{key}' is not supported"
    return None
