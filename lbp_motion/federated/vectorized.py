"""Vectorised local training: the selected clients of a round trained together.

With ``vectorize: true`` (:class:`~lbp_motion.federated.FedAvgStrategy`) the clients of
a round do not train one after the other. Their models are stacked along a leading
client dimension (``torch.func.stack_module_state``), and each training step takes the
b-th batch of every client at once: ``torch.func.vmap`` over ``torch.func.grad`` of the
task's loss (``functional_call``), then one step of the task's optimiser on the
stacked parameters. For element-wise optimisers (SGD, Adam, AdamW, ...) a step on
stacked parameters is exactly one step per client. With small models a round of K
clients then costs about as many kernel launches as one client's round.

What is kept equal to the sequential round (tests/federated/test_vectorized.py):

* the batches: client k's b-th batch is the one :class:`~lbp_motion.federated.clients.FederatedLoader`
  gives client k, from the same seeded DataLoader;
* a client with fewer batches stops once its data are exhausted: its parameters and
  optimiser state are put back after every later step (no weight decay, no moment
  update); clients whose last batches differ in size are differentiated in groups of
  equal size, and stepped together;
* FedProx's proximal term, each client's own local layers, the optimiser's settings and
  this round's learning rate.

What differs: dropout draws are per client (``randomness="different"``) and repeat for
the same (seed, round), but they are not the draws of the sequential mode, so the two
modes agree to floating-point tolerance only for models without dropout (or at
dropout 0). Not with SCAFFOLD, differential privacy, ``persist_optimizer_state``,
gradient clipping or gradient accumulation (each is refused with its reason).

A task can be vectorised when its loss is a pure function of the batch: the class that
defines ``compute_loss(batch, stage) -> (outputs, loss)`` declares
``pure_compute_loss = True``, and ``record_step(stage, batch, outputs, loss)`` logs and
updates the training metrics from the vectorised outputs.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from lbp_motion.errors import ConfigError, LbpError
from lbp_motion.federated.clients import FederatedLoader, mix_seed
from lbp_motion.models.common import unrolled_recurrence

#: optimisers whose update of a parameter depends on that parameter's own values only,
#: so that one step on client-stacked parameters is one step of each client
ELEMENTWISE_OPTIMIZERS = (
    torch.optim.SGD,
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.Adamax,
    torch.optim.Adagrad,
    torch.optim.RMSprop,
    torch.optim.NAdam,
    torch.optim.RAdam,
)


class VectorizedLoader(FederatedLoader):
    """The training loader of a vectorised round: item b holds the b-th batch of every
    selected client (None once a client's E local epochs are exhausted).

    Each item is ``{"clients": (K,) ids, "batches": [batch or None, ...]}``; the batches
    are exactly those :class:`FederatedLoader` gives each client, in the same order.
    """

    def _client_batches(self, client: int) -> Iterator[dict]:
        for epoch in range(self.spec.local_epochs):
            for batch in self.client_loader(client, epoch):
                batch["client"] = torch.full((len(batch["y"]),), client, dtype=torch.long)
                yield batch

    def __len__(self) -> int:
        per_epoch = [-(-len(self.client_datasets[c]) // self.batch_size) for c in self.selected]
        return max(per_epoch, default=0) * self.spec.local_epochs

    def __iter__(self) -> Iterator[dict]:
        streams = [self._client_batches(c) for c in self.selected]
        clients = torch.tensor(self.selected, dtype=torch.long)
        while True:
            batches = [next(stream, None) for stream in streams]
            if all(b is None for b in batches):
                return
            yield {"clients": clients, "batches": batches}


def is_vectorized_batch(batch: Any) -> bool:
    """Whether ``batch`` is an item of a :class:`VectorizedLoader`."""
    return isinstance(batch, dict) and "batches" in batch and "clients" in batch


def check_vectorizable(task: nn.Module) -> None:
    """Raise :class:`ConfigError` unless ``task``'s loss can be vectorised (see the
    module docstring)."""
    owner = next((c for c in type(task).__mro__ if "compute_loss" in c.__dict__), None)
    if owner is None or not owner.__dict__.get("pure_compute_loss", False):
        where = "has no compute_loss" if owner is None else f"{owner.__name__}.compute_loss"
        raise ConfigError(
            f"trainer.strategy.init_args.vectorize: true: {type(task).__name__} cannot be "
            f"vectorised ({where} is not declared a pure function of the batch: it may log or "
            "keep state); set vectorize: false"
        )
    if not callable(getattr(task, "record_step", None)):
        raise ConfigError(
            f"trainer.strategy.init_args.vectorize: true: {type(task).__name__} has no "
            "record_step(stage, batch, outputs, loss); set vectorize: false"
        )


def check_optimizer(optimizer: torch.optim.Optimizer) -> None:
    """Raise :class:`ConfigError` for an optimiser that is not element-wise."""
    if type(optimizer) not in ELEMENTWISE_OPTIMIZERS:
        names = ", ".join(o.__name__ for o in ELEMENTWISE_OPTIMIZERS)
        raise ConfigError(
            f"trainer.strategy.init_args.vectorize: true: the optimiser {type(optimizer).__name__} "
            f"is not known to be element-wise, so a step on client-stacked parameters may mix "
            f"clients; use one of {names}, or set vectorize: false"
        )


class _LossOf(nn.Module):
    """``task.compute_loss(batch, "train")`` as a module call, for ``functional_call``."""

    def __init__(self, task: nn.Module) -> None:
        super().__init__()
        self.task = task

    def forward(self, batch: dict[str, Tensor]) -> tuple[Any, Tensor]:
        return self.task.compute_loss(batch, "train")


@contextmanager
def _vectorizing() -> Iterator[None]:
    """Recurrent layers unrolled (vmap cannot batch packed sequences); warnings of
    operators that vmap runs in a loop are the benchmark's business
    (benchmarks/federation.py), not every step's."""
    with warnings.catch_warnings(), unrolled_recurrence():
        warnings.filterwarnings("ignore", message="There is a performance drop")
        yield


class VectorizedRound:
    """One round of K clients trained together (see the module docstring).

    Args:
        task: the LightningModule (its parameters are not changed).
        starts: each client's state dict at the start of the round.
        template: the optimiser whose class and param-group settings (this round's
            learning rate included) each client uses, with a fresh state.
        mu: FedProx's proximal weight; ``shared`` the state-dict keys it applies to.
        global_state: the round's global weights (FedProx's anchor).
        seed: dropout draws repeat for the same seed.
        chunk: at most this many clients in one vmap call (None: all).
    """

    def __init__(
        self,
        task: nn.Module,
        starts: Sequence[dict[str, Tensor]],
        template: torch.optim.Optimizer,
        mu: float = 0.0,
        shared: frozenset[str] = frozenset(),
        global_state: dict[str, Tensor] | None = None,
        seed: int = 0,
        chunk: int | None = None,
    ) -> None:
        check_vectorizable(task)
        check_optimizer(template)
        self.task = task
        self.num_clients = len(starts)
        self.loss_module = _LossOf(task)
        self.trainable = [n for n, p in task.named_parameters() if p.requires_grad]
        frozen = [n for n, p in task.named_parameters() if not p.requires_grad]
        buffers = dict(task.named_buffers())

        def stacked(name: str, default: Tensor) -> Tensor:
            return torch.stack([s.get(name, default).detach() for s in starts]).clone()

        parameters = dict(task.named_parameters())
        try:
            self.params = {n: stacked(n, parameters[n]) for n in self.trainable}
            self.fixed = {n: stacked(n, parameters[n]) for n in frozen}
            self.buffers = {n: stacked(n, b) for n, b in buffers.items()}
        except torch.OutOfMemoryError:
            self.params = self.fixed = self.buffers = {}
            per_client = sum(t.numel() * t.element_size() for t in task.state_dict().values())
            raise VectorizedMemoryError(
                f"trainer.strategy.init_args.vectorize: the weights of {len(starts)} clients "
                f"({per_client / 2**20:.1f} MiB each, before optimiser state and activations) do not "
                "fit in the device's memory; select fewer clients per round (client_fraction) or "
                "use Flower's simulation engine (lbp federate simulate)"
            ) from None
        self.mu = mu
        self.anchor = (
            {n: global_state[n].detach() for n in self.trainable if n in shared}
            if mu > 0 and global_state is not None
            else {}
        )
        names = {id(p): n for n, p in task.named_parameters()}
        groups = []
        for group in template.param_groups:
            settings = {k: v for k, v in group.items() if k != "params"}
            settings["params"] = [
                self.params[names[id(p)]] for p in group["params"] if names[id(p)] in self.params
            ]
            groups.append(settings)
        self.optimizer = type(template)(groups)
        self.generator_seed = seed
        self.chunk = chunk
        self.steps = 0

    # -- the loss of one client ----------------------------------------------------------
    def _loss(self, params, fixed, buffers, batch):
        state = {f"task.{n}": v for n, v in {**params, **fixed, **buffers}.items()}
        outputs, loss = functional_call(self.loss_module, state, (batch,))
        total = loss
        if self.anchor:
            prox = sum((params[n] - a).pow(2).sum() for n, a in self.anchor.items())
            total = loss + self.mu / 2 * prox
        return total, (outputs, loss)

    def _grads(self, idx: list[int], batch: dict[str, Tensor]):
        """Gradients, outputs and losses of the clients ``idx`` (batches of one size)."""
        take = torch.tensor(idx, device=next(iter(self.params.values())).device)
        params = {n: v.index_select(0, take) for n, v in self.params.items()}
        fixed = {n: v.index_select(0, take) for n, v in self.fixed.items()}
        buffers = {n: v.index_select(0, take) for n, v in self.buffers.items()}
        step = vmap(
            grad_and_value(self._loss, has_aux=True), in_dims=(0, 0, 0, 0), randomness="different"
        )
        with _vectorizing():
            grads, (_, (outputs, losses)) = step(params, fixed, buffers, batch)
        for n, v in buffers.items():  # e.g. BatchNorm's running statistics
            self.buffers[n].index_copy_(0, take, v)
        return grads, outputs, losses

    def _grads_within_memory(self, idx: list[int], batch: dict[str, Tensor]):
        """:meth:`_grads`, or on a device out of memory one clear error with the number
        of clients that fit (measured on one client)."""
        try:
            return self._grads(idx, batch)
        except torch.OutOfMemoryError:
            if len(idx) == 1 or not torch.cuda.is_available():
                raise
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        one = {key: v[:1] for key, v in batch.items()}
        self._grads(idx[:1], one)
        per_client = torch.cuda.max_memory_allocated() - before
        free = torch.cuda.mem_get_info()[0]
        fit = clients_that_fit(per_client, free)
        raise VectorizedMemoryError(
            f"trainer.strategy.init_args.vectorize: {len(idx)} clients at once do not fit in the "
            f"device's memory ({per_client / 2**20:.0f} MiB per client, {free / 2**30:.1f} GiB free): "
            f"at most {fit} fit; set trainer.strategy.init_args.vectorize_chunk: {fit}"
        )

    def step(self, batches: Sequence[dict[str, Tensor] | None]) -> list[tuple[int, Any, Tensor]]:
        """One optimiser step of every client that still has a batch. Returns
        ``(position, outputs, loss)`` of each such client (outputs detached)."""
        active = [k for k, b in enumerate(batches) if b is not None]
        if not active:
            return []
        torch.manual_seed(mix_seed(self.generator_seed, self.steps, 15485863))
        self.steps += 1
        by_size: dict[int, list[int]] = {}
        for k in active:
            by_size.setdefault(len(batches[k]["y"]), []).append(k)
        full = {n: torch.zeros_like(v) for n, v in self.params.items()}
        results = []
        for members in by_size.values():
            for start in range(0, len(members), self.chunk or len(members)):
                idx = members[start : start + (self.chunk or len(members))]
                keys = [key for key, v in batches[idx[0]].items() if isinstance(v, Tensor)]
                batch = {key: torch.stack([batches[k][key] for k in idx]) for key in keys}
                grads, outputs, losses = self._grads_within_memory(idx, batch)
                take = torch.tensor(idx, device=losses.device)
                for n, g in grads.items():
                    full[n].index_copy_(0, take, g)
                for j, k in enumerate(idx):
                    out = _select(outputs, j)
                    results.append((k, out, losses[j].detach()))
        self._step_optimizer(full, active)
        return sorted(results, key=lambda r: r[0])

    def _step_optimizer(self, grads: dict[str, Tensor], active: list[int]) -> None:
        idle = [k for k in range(self.num_clients) if k not in active]
        kept = self._slices(idle) if idle else None
        for n, p in self.params.items():
            p.grad = grads[n]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if kept is not None:
            self._restore(idle, kept)

    def _slices(self, idle: list[int]) -> list[tuple[Tensor, Tensor]]:
        """Copies of the idle clients' parameters and per-parameter optimiser state."""
        take = torch.tensor(idle, device=next(iter(self.params.values())).device)
        out = []
        for p in self.params.values():
            out.append((p, p.index_select(0, take)))
            for value in self.optimizer.state.get(p, {}).values():
                if isinstance(value, Tensor) and value.shape == p.shape:
                    out.append((value, value.index_select(0, take)))
        return out

    def _restore(self, idle: list[int], kept: list[tuple[Tensor, Tensor]]) -> None:
        take = torch.tensor(idle, device=next(iter(self.params.values())).device)
        for tensor, saved in kept:
            tensor.index_copy_(0, take, saved)

    def client_state(self, k: int, like: dict[str, Tensor]) -> dict[str, Tensor]:
        """Client ``k``'s state dict (the keys of ``like``) after the round's steps."""
        stacked = {**self.params, **self.fixed, **self.buffers}
        return {
            name: stacked[name][k].clone() if name in stacked else like[name].clone()
            for name in like
        }


class VectorizedMemoryError(LbpError):
    """The clients of a vectorised call do not fit in the device's memory."""


def clients_that_fit(per_client_bytes: int, free_bytes: int, margin: float = 0.8) -> int:
    """How many clients' vectorised steps fit in ``free_bytes`` when one takes
    ``per_client_bytes`` (a ``margin`` of the free memory is used); at least 1."""
    return max(1, int(free_bytes * margin // max(per_client_bytes, 1)))


def _select(outputs: Any, j: int) -> Any:
    """Client ``j``'s part of the vmapped outputs (a tensor or a tuple/dict of them)."""
    if isinstance(outputs, Tensor):
        return outputs[j].detach()
    if isinstance(outputs, dict):
        return {k: _select(v, j) for k, v in outputs.items()}
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(_select(v, j) for v in outputs)
    return outputs


def vectorization_problems(strategy: Any, trainer: Any, private: bool) -> list[str]:
    """Why ``vectorize: true`` cannot run with these settings (empty: it can)."""
    problems = []
    if strategy.scaffold:
        problems.append("scaffold: true (its per-client gradient corrections are sequential)")
    if private:
        problems.append("differential privacy (Opacus clips per-sample gradients of one model)")
    if strategy.persist_optimizer_state:
        problems.append(
            "persist_optimizer_state: true (clients would need their own optimiser step counts)"
        )
    if getattr(trainer, "gradient_clip_val", None):
        problems.append(
            f"trainer.gradient_clip_val: {trainer.gradient_clip_val} (the norm would span clients)"
        )
    if getattr(trainer, "accumulate_grad_batches", 1) != 1:
        problems.append(f"trainer.accumulate_grad_batches: {trainer.accumulate_grad_batches}")
    return problems
