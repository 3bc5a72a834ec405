"""The compiled program: every (lag, fold, member) lane of a program's points trained together.

Nouns: a *program* is the configs (points) that share a program signature
(`podbench.train.run.Program`, the unit an engine runs); its *compiled program* is a
`CompiledProgram` (here); its *inputs* are a `podbench.train.inputs.ProgramInputs`.

A lane is one optimisation: a group of G networks (G = 1 for independent members, G = the
ensemble size for the reference's joint training on the members' mean output) trained on one
lag and one fold, with its own initialisation, dropout keys, batch order, learning rate,
weight decay and dropout rate. The data (latents [word, lag, ...] and targets) are put on the
device once; each lane gathers its own batches by index. Folds of unequal size are padded and
masked. One jit-compiled function runs a whole epoch for all lanes (vmap over lanes, lax.scan
over steps, validation, per-lane early stopping that keeps each lane's best parameters), so
the host syncs once per epoch. Lanes that stopped are dropped by compacting the working set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from podbench.models.layers import Call
from podbench.specs import TrainedNetwork

EVAL_BATCH = 256
HostOrDevice = jax.Array | np.ndarray


class Lanes(NamedTuple):
    """Per-lane inputs (leading axis: lane): numpy arrays as `lane_inputs` makes them, jax
    arrays once on the device."""

    key: HostOrDevice  # uint32 [L, 2] raw PRNG key data
    lag: HostOrDevice  # int32 [L] index into the latents' lag axis
    yfold: HostOrDevice  # int32 [L] index into the targets' fold axis (0 if not per fold)
    nfold: HostOrDevice  # int32 [L] index into the standardisation statistics' fold axis
    lr: HostOrDevice  # float32 [L]
    weight_decay: HostOrDevice  # float32 [L]
    dropout: HostOrDevice  # float32 [L]
    train_idx: HostOrDevice  # int32 [L, n_train_max] (padded)
    train_n: HostOrDevice  # int32 [L]
    val_idx: HostOrDevice  # int32 [L, n_val_max] (padded)
    val_n: HostOrDevice  # int32 [L]


class State(NamedTuple):
    """Per-lane training state (leading axis: lane; then group member for params)."""

    params: object
    rest: object
    opt: object
    best_params: object
    best_rest: object
    best_score: jax.Array  # best validation score so far (oriented: higher is better)
    bad: jax.Array  # epochs since the last improvement
    stopped: jax.Array  # bool
    epochs: jax.Array  # epochs trained
    best_epoch: jax.Array  # 0-based epoch of the best validation score


class Data(NamedTuple):
    """Device-resident arrays shared by all lanes."""

    x: jax.Array  # [N, n_lag, *input_shape]
    y: jax.Array  # [n_yfold, N, D]
    norm_mean: jax.Array  # [n_nfold, n_lag, *stat_shape] broadcastable against one input
    norm_std: jax.Array
    frozen: object = None  # the task's frozen pytree (Task.frozen), passed to the model in Call
    keep: jax.Array | None = None  # [n_nfold, n_lag, *stat_shape] 1/0 electrodes per fold


def standardised(data: Data, x, lane: Lanes):
    """Inputs of a lane's lag standardised with its fold's statistics; electrodes its fold's
    selection did not choose are zeroed (`data.keep`)."""
    x = (x - data.norm_mean[lane.nfold, lane.lag]) / data.norm_std[lane.nfold, lane.lag]
    return x if data.keep is None else x * data.keep[lane.nfold, lane.lag]


def adam_l2(learning_rate, weight_decay):
    """PyTorch Adam: L2 decay added to the gradient before the Adam moments."""
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate))


def optimizer(name: str) -> optax.GradientTransformation:
    """Per-lane learning rate and weight decay live in the optimiser state."""
    factory = optax.adamw if name == "adamw" else adam_l2
    return optax.inject_hyperparams(factory)(learning_rate=0.0, weight_decay=0.0)


def tree_where(cond, new, old):
    return jax.tree.map(lambda a, b: jnp.where(cond, a, b), new, old)


class CompiledProgram:
    """A program's compiled training and prediction: one model shape, loss and task."""

    def __init__(
        self,
        build_model: Callable[[nnx.Rngs], nnx.Module],
        *,
        group: int,
        batch_size: int,
        patience: int,
        optimizer_name: str,
        loss_fn,
        stop_fn,
        stop_mode: str,
        n_train_max: int,
        n_val_max: int,
        lane_batch: int | None = None,
        mesh=None,
        takes_targets: bool = False,
        combine: Callable | None = None,
    ):
        self.build_model = build_model
        # a group's prediction from its members' [G, B, D] (Task.group_combine): their mean
        self.combine = combine or (lambda preds: preds.mean(axis=0))
        self.takes_targets = takes_targets  # the model is called as model(x, call, y)
        self.group = group
        self.batch = batch_size
        self.patience = patience
        self.tx = optimizer(optimizer_name)
        self.optimizer_name = optimizer_name
        self.loss_fn = loss_fn  # (pred [B, D], y [B, D]) -> per-example loss [B]
        self.stop_fn = stop_fn  # (pred [n, D], y [n, D], mask [n]) -> scalar
        self.sign = 1.0 if stop_mode == "max" else -1.0
        self.steps = max(1, math.ceil(n_train_max / batch_size))
        self.n_train_pad = self.steps * batch_size
        self.n_val_max = n_val_max
        self.graphdef = nnx.split(build_model(nnx.Rngs(0)), nnx.Param, ...)[0]
        self.lane_batch = lane_batch
        self.mesh = mesh
        self._epoch = jax.jit(
            self._over_lanes(
                "lane_epoch",
                lambda state, lane, data, epoch: self._lane_epoch(state, lane, data, epoch),
                2,
            ),
            donate_argnums=(0,),
        )
        self._init = jax.jit(self._over_lanes("lane_init", self._lane_init, 1))
        self._predict = jax.jit(
            self._over_lanes(
                "lane_predict",
                lambda params, rest, lane, data, rows: self._predict_rows(
                    params, rest, data, rows, lane
                ),
                3,
            )
        )

    def _over_lanes(self, name: str, fn, n_lane_args: int):
        """Apply `fn` to every lane: the first `n_lane_args` arguments have a leading lane axis,
        the others are shared. Lanes are split over the mesh's devices; on each device they
        run `lane_batch` at a time (vmap) and the groups in sequence (scan), or all at once
        (vmap) when `lane_batch` is None. The result is called `name` (JAX's compile logs
        show it: `jit(lane_epoch)`)."""

        def local(*args):
            lane_args, shared = args[:n_lane_args], args[n_lane_args:]
            if self.lane_batch is None:
                return jax.vmap(lambda *xs: fn(*xs, *shared))(*lane_args)
            # batch_size=1 would still vmap (turning the stopped-lane cond into a select)
            batch = None if self.lane_batch == 1 else self.lane_batch
            return jax.lax.map(lambda xs: fn(*xs, *shared), lane_args, batch_size=batch)

        if self.mesh is None or self.mesh.size == 1:
            local.__name__ = local.__qualname__ = name
            return local

        def sharded(*args):
            from jax.sharding import PartitionSpec as P

            specs = tuple(P("lanes") if i < n_lane_args else P() for i in range(len(args)))
            # Lanes never communicate; check_vma=False lets lax.cond mix a lane's (varying)
            # state with the replicated epoch number and data.
            return jax.shard_map(
                local, mesh=self.mesh, in_specs=specs, out_specs=P("lanes"), check_vma=False
            )(*args)

        sharded.__name__ = sharded.__qualname__ = name
        return sharded

    # ------------------------------------------------------------------ model plumbing

    def _init_member(self, key):
        _, params, rest = nnx.split(self.build_model(nnx.Rngs(key)), nnx.Param, ...)
        return params, rest

    def _forward(self, params, rest, x, y, call: Call):
        """One member: prediction and updated non-parameter state (BatchNorm statistics)."""
        model = cast(TrainedNetwork, nnx.merge(self.graphdef, params, rest, copy=True))
        pred = model(x, call, y) if self.takes_targets else model(x, call)
        # flax types split(node, *filters) as variadic: with two filters it gives three parts
        _, _, new_rest = nnx.split(model, nnx.Param, ...)  # type: ignore[misc]
        return pred, new_rest, model.penalty()

    def _group_forward(self, params, rest, x, y, call: Call):
        """All G members of a lane on one batch: [G, B, D] predictions."""
        keys = (
            jax.random.split(call.rng, self.group)
            if call.rng is not None
            else jnp.zeros((self.group, 2), jnp.uint32)
        )

        def one(p, r, k):
            c = call._replace(rng=k if call.rng is not None else None)
            return self._forward(p, r, x, y, c)

        return jax.vmap(one)(params, rest, keys)

    # ------------------------------------------------------------------ init

    def _lane_init(self, lane: Lanes) -> State:
        key = jax.random.wrap_key_data(cast(jax.Array, lane.key))  # on the device here
        params, rest = jax.vmap(self._init_member)(jax.random.split(key, self.group))
        tx = optimizer(self.optimizer_name)
        opt = tx.init(params)
        opt.hyperparams["learning_rate"] = lane.lr
        opt.hyperparams["weight_decay"] = lane.weight_decay
        return State(
            params,
            rest,
            opt,
            params,
            rest,
            jnp.array(-jnp.inf, jnp.float32),
            jnp.array(0, jnp.int32),
            jnp.array(False),
            jnp.array(0, jnp.int32),
            jnp.array(0, jnp.int32),
        )

    def init(self, lanes: Lanes) -> State:
        return self._init(lanes)

    # ------------------------------------------------------------------ one epoch

    def _inputs(self, data: Data, rows, lane: Lanes):
        return standardised(data, data.x[rows, lane.lag], lane), data.y[lane.yfold, rows]

    def _predict_rows(self, params, rest, data: Data, rows, lane: Lanes):
        """Eval-mode group predictions for padded `rows`, in batches: [G, n, D]."""
        n = rows.shape[0]
        size = -(-n // -(-n // EVAL_BATCH))  # equal batches of at most EVAL_BATCH: least padding
        padded = jnp.pad(rows, (0, (-n) % size)).reshape(-1, size)

        def batch(_, r):
            x, y = self._inputs(data, r, lane)
            pred, _, _ = self._group_forward(
                params, rest, x, y, Call(train=False, frozen=data.frozen)
            )
            return None, pred

        _, preds = jax.lax.scan(batch, None, padded)  # [n_batches, G, EVAL_BATCH, D]
        preds = jnp.moveaxis(preds, 1, 0).reshape(self.group, -1, preds.shape[-1])
        return preds[:, :n]

    def _lane_epoch(self, s: State, lane: Lanes, data: Data, epoch) -> State:
        """One epoch of one lane; a stopped lane is left as it is (where lanes run one at a
        time the branch is really skipped; under vmap both sides are computed, so the host
        compacts the working set instead)."""
        return jax.lax.cond(s.stopped, lambda: s, lambda: self._train_epoch(s, lane, data, epoch))

    def _train_epoch(self, s: State, lane: Lanes, data: Data, epoch) -> State:
        key = jax.random.fold_in(jax.random.wrap_key_data(cast(jax.Array, lane.key)), epoch)
        k_order, k_drop = jax.random.split(key)
        n_max = lane.train_idx.shape[0]
        slot = jnp.arange(n_max)
        order = jnp.argsort(
            jnp.where(slot < lane.train_n, jax.random.uniform(k_order, (n_max,)), 2.0)
        )
        rows = jnp.pad(lane.train_idx[order], (0, self.n_train_pad - n_max))

        def loss_of(params, rest, x, y, mask, call):
            preds, new_rest, penalty = self._group_forward(params, rest, x, y, call)
            per_example = self.loss_fn(self.combine(preds), y)
            loss = jnp.sum(per_example * mask) / jnp.maximum(mask.sum(), 1.0)
            return loss + penalty.sum(), new_rest

        def update(carry, i, mask):
            params, rest, opt = carry
            batch_rows = jax.lax.dynamic_slice(rows, (i * self.batch,), (self.batch,))
            x, y = self._inputs(data, batch_rows, lane)
            call = Call(True, jax.random.fold_in(k_drop, i), lane.dropout, mask, data.frozen)
            (_, new_rest), grads = jax.value_and_grad(loss_of, has_aux=True)(
                params, rest, x, y, mask, call
            )
            updates, new_opt = self.tx.update(grads, opt, params)
            return optax.apply_updates(params, updates), new_rest, new_opt

        def step(carry, i):
            mask = ((i * self.batch + jnp.arange(self.batch)) < lane.train_n).astype(jnp.float32)
            # Padded steps past this lane's training rows change nothing (not even Adam state).
            return jax.lax.cond(
                mask.sum() > 0, lambda c: update(c, i, mask), lambda c: c, carry
            ), None

        (params, rest, opt), _ = jax.lax.scan(
            step, (s.params, s.rest, s.opt), jnp.arange(self.steps)
        )
        val_mask = (jnp.arange(self.n_val_max) < lane.val_n).astype(jnp.float32)
        preds = self._predict_rows(params, rest, data, lane.val_idx, lane)
        _, y_val = self._inputs(data, lane.val_idx, lane)
        score = self.sign * self.stop_fn(self.combine(preds), y_val, val_mask)
        improved = score > s.best_score
        bad = jnp.where(improved, 0, s.bad + 1)
        return State(
            params=params,
            rest=rest,
            opt=opt,
            best_params=tree_where(improved, params, s.best_params),
            best_rest=tree_where(improved, rest, s.best_rest),
            best_score=jnp.where(improved, score, s.best_score),
            bad=bad,
            stopped=bad >= self.patience,
            epochs=s.epochs + 1,
            best_epoch=jnp.where(improved, epoch, s.best_epoch),
        )

    def epoch(self, state: State, lanes: Lanes, data: Data, epoch: int) -> State:
        return self._epoch(state, lanes, data, jnp.asarray(epoch, jnp.int32))

    # ------------------------------------------------------------------ prediction

    def memory_model(self, lanes_np: Lanes, data: Data, exact: bool) -> tuple[int, int, int]:
        """Device bytes of training: (shared data, held per lane: its state with the best copy
        and its inputs, in flight per lane being trained: one epoch's temporaries). The first
        two come from traced shapes; the temporaries from XLA's memory analysis of one lane's
        epoch (compiled, never run) if `exact`, else bounded by every value the traced epoch
        makes (each loop body once), which allocates and compiles nothing."""
        one, state = self._one_lane(lanes_np)
        shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), data)
        args = (state, one, shapes, jax.ShapeDtypeStruct((), jnp.int32))
        if exact:
            analysis = jax.jit(self._lane_epoch).lower(*args).compile().memory_analysis()
            # jax types memory_analysis() as optional: None only on backends without one
            temp = analysis.temp_size_in_bytes  # type: ignore[union-attr]
        else:
            temp = _values_bytes(jax.make_jaxpr(self._lane_epoch)(*args).jaxpr)
        return _nbytes(data), _nbytes(state) + _nbytes(one), int(temp)

    def held_bytes(self, lanes_np: Lanes) -> int:
        """Bytes one lane holds while it trains: its state with the best copy, and its inputs
        (shapes only: nothing is allocated or compiled)."""
        one, state = self._one_lane(lanes_np)
        return _nbytes(state) + _nbytes(one)

    def _one_lane(self, lanes_np: Lanes):
        """One lane's inputs and state, as shapes."""
        one = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), lanes_np)
        return one, jax.eval_shape(self._lane_init, one)

    def predict(self, state: State, lanes: Lanes, data: Data, rows: jax.Array) -> jax.Array:
        """Best-parameter predictions of every lane for `rows`: [L, G, n, D]."""
        return self._predict(state.best_params, state.best_rest, lanes, data, rows)


def start_from(state: State, start: dict) -> State:
    """`state` (fresh from `init`) with the parameters and statistics that `start` names
    replaced, in the current and the best copies alike: start["params"] and start["rest"] map
    key paths (jax.tree_util.keystr) to arrays with the state's leading lane axis (see
    podbench.train.warm). A path the state lacks, or another shape, is a ConfigError naming
    start["source"]."""
    from podbench.errors import ConfigError

    def swap(tree, values: dict):
        leaves = {
            jax.tree_util.keystr(p): a for p, a in jax.tree_util.tree_flatten_with_path(tree)[0]
        }
        for name, value in values.items():
            if name not in leaves or leaves[name].shape != value.shape:
                got = leaves[name].shape if name in leaves else "no such parameter"
                raise ConfigError(
                    f"{start['source']}: its {name} has shape {value.shape}, this model's is {got}"
                )
        return jax.tree_util.tree_map_with_path(
            lambda p, a: values.get(jax.tree_util.keystr(p), a), tree
        )

    params, rest = swap(state.params, start["params"]), swap(state.rest, start["rest"])

    def copy(tree):  # distinct buffers: epochs donate them
        return jax.tree.map(jnp.copy, tree)

    return state._replace(params=params, rest=rest, best_params=copy(params), best_rest=copy(rest))


def _nbytes(tree) -> int:
    return sum(math.prod(a.shape) * _itemsize(a.dtype) for a in jax.tree.leaves(tree))


def _itemsize(dtype) -> int:
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return 8  # a threefry key: two uint32
    return jnp.dtype(dtype).itemsize


def _values_bytes(jaxpr) -> int:
    """Bytes of every value a jaxpr makes, its sub-jaxprs' (loop bodies, branches) included."""
    total = 0
    for eqn in jaxpr.eqns:
        total += sum(_nbytes(v.aval) for v in eqn.outvars if hasattr(v.aval, "shape"))
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    total += _values_bytes(inner)
    return total


def closed_form(fit, predict, lanes: Lanes, data: Data, alphas, stop_fn, sign: float):
    """Closed-form models (ridge) for every lane: predictions [L, 1, N, D], scores, alphas and
    the steps each lane's fit made (its decoder's units of work)."""

    def lane(lane: Lanes):
        def rows_xy(rows):
            x = standardised(data, data.x[rows, lane.lag], lane)
            return x.reshape(rows.shape[0], -1), data.y[lane.yfold, rows]

        x_tr, y_tr = rows_xy(lane.train_idx)
        x_va, y_va = rows_xy(lane.val_idx)
        m_tr = (jnp.arange(lane.train_idx.shape[0]) < lane.train_n).astype(jnp.float32)
        m_va = (jnp.arange(lane.val_idx.shape[0]) < lane.val_n).astype(jnp.float32)
        w, b, mu, sd, alpha, score, steps = fit(
            x_tr, y_tr, m_tr, x_va, y_va, m_va, alphas, lambda p, y, m: sign * stop_fn(p, y, m)
        )
        x_all, _ = rows_xy(jnp.arange(data.x.shape[0]))
        return predict(x_all, w, b, mu, sd)[None], sign * score, alpha, steps

    return jax.lax.map(lane, lanes)
