"""Mixtures of mixtures (MoMs), built on the fly in tf.data.

A MoM example takes N >= 2 reference mixtures at random from a stream of
single mixtures: the stream goes through a shuffle buffer (so partners are
random draws from the buffer, not neighbours in a file list) and then
consecutive groups of N are stacked. An optional gain, uniform in
[gain_db[0], gain_db[1]] dB and drawn per reference mixture, is applied before
summing. With a seed, pairing and gains are deterministic: gains come from
stateless random ops keyed by (seed, element index).

Input elements: {'mixture': [T]} (+ 'labels': [C]); other keys are dropped.
Output elements: {'mixtures': [N, T], 'mom': [T]} (+ 'labels': [N, C]),
`mom` being exactly the sum over N of `mixtures` (after gains).
"""
from typing import Optional, Tuple

import tensorflow as tf


def mixtures_of_mixtures(dataset: tf.data.Dataset,
                         num_mixtures: int = 2,
                         shuffle_buffer: int = 256,
                         gain_db: Optional[Tuple[float, float]] = None,
                         seed: Optional[int] = None) -> tf.data.Dataset:
  """Groups a stream of mixtures into MoM examples.

  Args:
    dataset: elements {'mixture': [T]} (+ 'labels': [C]).
    num_mixtures: N, reference mixtures per MoM (>= 2).
    shuffle_buffer: size of the pairing buffer (1 disables random pairing).
    gain_db: (low, high) range of the per-mixture random gain in dB, or None.
    seed: makes pairing and gains deterministic.

  Returns:
    Dataset of {'mixtures': [N, T], 'mom': [T]} (+ 'labels': [N, C]).
  """
  if num_mixtures < 2:
    raise ValueError(f'num_mixtures must be >= 2, got {num_mixtures}')
  if shuffle_buffer < 1:
    raise ValueError(f'shuffle_buffer must be >= 1, got {shuffle_buffer}')
  if gain_db is not None:
    gain_db = tuple(float(g) for g in gain_db)
    if len(gain_db) != 2 or gain_db[0] > gain_db[1]:
      raise ValueError(f'gain_db must be (low, high) with low <= high, got {gain_db}')
  keys = [k for k in ('mixture', 'labels') if k in dataset.element_spec]
  if 'mixture' not in keys:
    raise ValueError(f'mixtures_of_mixtures needs elements with a "mixture" key, got '
                     f'{dataset.element_spec}')
  dataset = dataset.map(lambda element: {k: element[k] for k in keys})
  if shuffle_buffer > 1:
    dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  dataset = dataset.batch(num_mixtures, drop_remainder=True)
  dataset = dataset.enumerate()

  def combine(index, group):
    mixtures = group['mixture']
    if gain_db is not None:
      if seed is None:
        gains = tf.random.uniform([num_mixtures], gain_db[0], gain_db[1])
      else:
        # Key 1 separates gain draws from any other stateless stream of `seed`.
        gains = tf.random.stateless_uniform(
            [num_mixtures], seed=tf.stack([tf.cast(seed, tf.int64) * 2 + 1, index]),
            minval=gain_db[0], maxval=gain_db[1])
      mixtures = mixtures * tf.pow(10.0, gains / 20.0)[:, tf.newaxis]
    out = {'mixtures': mixtures, 'mom': tf.reduce_sum(mixtures, axis=0)}
    if 'labels' in group:
      out['labels'] = group['labels']
    return out

  return dataset.map(combine, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
