"""Exact minimum-cost assignment (linear assignment) of M estimates to M references.

Pure tensor math: imports TensorFlow and numpy only. `min_cost_assignment(cost [B,M,M]) ->
[B,M] int32` is exact for any M, batched, and works in `tf.function`, under XLA
(`jit_compile=True`) and under any distribution strategy: a dynamic program over subsets up
to M = `MAX_DP_SIZE` (O(M 2^M) per example, static index tables), a batched Hungarian
algorithm (Jonker-Volgenant form with potentials, O(M^3), `tf.while_loop`) beyond.
`mixit.losses.pit_loss` aligns references and estimates with it.
"""
import functools
import itertools

import numpy as np
import tensorflow as tf

# Largest M for the exact subset dynamic program (O(M 2^M)); beyond it the batched
# Hungarian algorithm (O(M^3)) is used.
MAX_DP_SIZE = 16


def _shape_str(x):
  return str(tuple(x.shape.as_list())) if x.shape.rank is not None else '<unknown rank>'


def _check_cost(cost):
  """`cost` as a float32 `[batch, M, M]` tensor and its static M, or ValueError."""
  if not isinstance(cost, (tf.Tensor, tf.Variable)):
    cost = tf.convert_to_tensor(cost)
  if not cost.dtype.is_floating:
    raise ValueError(f'cost must be a floating-point tensor, got dtype {cost.dtype.name} '
                     f'with shape {_shape_str(cost)}.')
  if cost.shape.rank != 3:
    raise ValueError(f'cost must have rank 3, got shape {_shape_str(cost)}.')
  num = cost.shape[1]
  if num is None:
    raise ValueError(f'The reference dimension (axis 1) of cost must be known statically, '
                     f'got shape {_shape_str(cost)}.')
  if cost.shape[2] is not None and cost.shape[2] != num:
    raise ValueError(f'cost must be square, got shape {_shape_str(cost)}.')
  return tf.cast(cost, tf.float32), num


@functools.lru_cache(maxsize=None)
def _subset_dp_tables(num_sources):
  """Static index tables of the subset dynamic program.

  Layer i (i = 1..M) holds the subsets of estimates of size i, i.e. the states
  after assigning references 0..i-1. For each subset and each member j: the
  index, in layer i-1, of the subset without j.
  """
  layers = []
  index_of = {0: 0}
  for size in range(1, num_sources + 1):
    masks = [sum(1 << j for j in combo)
             for combo in itertools.combinations(range(num_sources), size)]
    members = np.array([[j for j in range(num_sources) if mask >> j & 1] for mask in masks],
                       dtype=np.int32)  # [C(M, size), size]
    previous = np.array([[index_of[mask ^ (1 << j)] for j in row] for mask, row in
                         zip(masks, members)], dtype=np.int32)
    layers.append((members, previous))
    index_of = {mask: k for k, mask in enumerate(masks)}
  return layers


def _min_cost_assignment_dp(cost):
  """Exact min-cost perfect matching by dynamic programming over subsets.

  O(M 2^M) per example; Python loop over the M references only (static M).

  Args:
    cost: `[batch, M, M]`, cost[b, i, j] of giving estimate j to reference i.

  Returns:
    `[batch, M]` int32: the estimate given to each reference.
  """
  num_sources = cost.shape[1]
  batch = tf.shape(cost)[0]
  best = tf.zeros([batch, 1], cost.dtype)  # layer 0: the empty subset
  choices = []
  for i, (members, previous) in enumerate(_subset_dp_tables(num_sources)):
    candidates = (tf.gather(best, previous, axis=1) +  # [B, C, size]
                  tf.gather(cost[:, i, :], members, axis=1))
    pick = tf.argmin(candidates, axis=2, output_type=tf.int32)  # first minimum
    best = tf.reduce_min(candidates, axis=2)
    choices.append((pick, members, previous))
  # Walk back from the full set.
  state = tf.zeros([batch], tf.int32)
  assigned = []
  for pick, members, previous in reversed(choices):
    slot = tf.gather(pick, state, axis=1, batch_dims=1)
    pair = tf.stack([state, slot], axis=1)
    assigned.append(tf.gather_nd(tf.constant(members), pair))
    state = tf.gather_nd(tf.constant(previous), pair)
  return tf.stack(assigned[::-1], axis=1)


def _min_cost_assignment_hungarian(cost):
  """Exact min-cost perfect matching: batched Hungarian (shortest augmenting path).

  O(M^3) per example with potentials (the Jonker-Volgenant form of the
  Hungarian algorithm), written with `tf.while_loop` so it runs in graph mode and
  under XLA. Examples of one batch advance in lockstep; those already done mask
  their updates.

  Args:
    cost: `[batch, M, M]` float32.

  Returns:
    `[batch, M]` int32: the estimate given to each reference.
  """
  m = cost.shape[1]
  batch = tf.shape(cost)[0]
  inf = tf.constant(np.inf, cost.dtype)
  # Column 0 is a virtual column; rows and columns of `cost` are 1-based here.
  cost_pad = tf.pad(cost, [[0, 0], [1, 0], [1, 0]])
  cols = tf.range(m + 1)
  batch_ids = tf.range(batch)

  def take(vec, idx):  # vec[b, idx[b]]
    return tf.gather(vec, idx[:, None], axis=1, batch_dims=1)[:, 0]

  def put(vec, idx, value):  # vec[b, idx[b]] = value[b]
    return tf.tensor_scatter_nd_update(vec, tf.stack([batch_ids, idx], axis=1), value)

  def add_row(row, state):
    u, v, match = state  # match[b, j]: row matched to column j (0 = none)
    match = tf.concat([row * tf.ones([batch, 1], tf.int32), match[:, 1:]], axis=1)
    min_v = tf.fill([batch, m + 1], inf)
    used = tf.zeros([batch, m + 1], tf.bool)
    way = tf.zeros([batch, m + 1], tf.int32)
    col0 = tf.zeros([batch], tf.int32)
    active = tf.ones([batch], tf.bool)

    def search_cond(u, v, min_v, used, way, col0, active):
      return tf.reduce_any(active)

    def search_body(u, v, min_v, used, way, col0, active):
      used_new = tf.logical_or(used, tf.equal(cols[None, :], col0[:, None]))
      i0 = take(match, col0)
      row_cost = tf.gather(cost_pad, i0[:, None], axis=1, batch_dims=1)[:, 0, :]  # [B, m+1]
      reduced = row_cost - take(u, i0)[:, None] - v
      free = tf.logical_and(tf.logical_not(used_new), cols[None, :] > 0)
      improve = tf.logical_and(free, reduced < min_v)
      min_v_new = tf.where(improve, reduced, min_v)
      way_new = tf.where(improve, col0[:, None], way)
      masked = tf.where(free, min_v_new, inf)
      delta = tf.reduce_min(masked, axis=1)
      col1 = tf.argmin(masked, axis=1, output_type=tf.int32)
      # Rows matched to used columns gain delta, used columns lose it.
      used_rows = tf.where(used_new, match, -1)
      row_hits = tf.reduce_any(
          tf.equal(used_rows[:, :, None], tf.range(m + 1)[None, None, :]), axis=1)
      u_new = u + tf.where(row_hits, delta[:, None], 0.0)
      v_new = v - tf.where(used_new, delta[:, None], 0.0)
      min_v_new = tf.where(free, min_v_new - delta[:, None], min_v_new)
      keep = active[:, None]
      u = tf.where(keep, u_new, u)
      v = tf.where(keep, v_new, v)
      min_v = tf.where(keep, min_v_new, min_v)
      used = tf.where(keep, used_new, used)
      way = tf.where(keep, way_new, way)
      col0 = tf.where(active, col1, col0)
      active = tf.logical_and(active, tf.not_equal(take(match, col0), 0))
      return u, v, min_v, used, way, col0, active

    u, v, min_v, used, way, col0, active = tf.while_loop(
        search_cond, search_body, (u, v, min_v, used, way, col0, active),
        maximum_iterations=m + 1)

    # Augment along `way` back to the virtual column.
    def aug_cond(match, col0):
      return tf.reduce_any(col0 > 0)

    def aug_body(match, col0):
      going = col0 > 0
      col1 = take(way, col0)
      match = tf.where(going[:, None],
                       put(match, col0, take(match, col1)), match)
      return match, tf.where(going, col1, col0)

    match, _ = tf.while_loop(aug_cond, aug_body, (match, col0), maximum_iterations=m + 1)
    return u, v, match

  def outer_body(row, u, v, match):
    u, v, match = add_row(row, (u, v, match))
    return row + 1, u, v, match

  init = (tf.constant(1, tf.int32), tf.zeros([batch, m + 1], cost.dtype),
          tf.zeros([batch, m + 1], cost.dtype), tf.zeros([batch, m + 1], tf.int32))
  _, _, _, match = tf.while_loop(lambda row, *_: row <= m, outer_body, init,
                                 maximum_iterations=m)
  # match[b, j] = reference (1-based) of estimate j (1-based); invert it.
  reference_of_estimate = tf.one_hot(match[:, 1:] - 1, m, axis=1)  # [B, ref, est]
  return tf.argmax(reference_of_estimate, axis=2, output_type=tf.int32)


def min_cost_assignment(cost):
  """Exact minimum-cost assignment of M estimates to M references.

  Subset dynamic program up to M = 16, batched Hungarian beyond; both are exact,
  graph- and XLA-safe.

  Args:
    cost: `[batch, M, M]`; cost[b, i, j] of giving estimate j to reference i.

  Returns:
    `[batch, M]` int32: the estimate given to each reference.
  """
  cost, num = _check_cost(cost)
  cost = tf.where(tf.math.is_finite(cost), cost, tf.constant(1e30, tf.float32))
  if num <= MAX_DP_SIZE:
    return _min_cost_assignment_dp(cost)
  return _min_cost_assignment_hungarian(cost)
