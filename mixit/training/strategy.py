"""Choosing the `tf.distribute` strategy a training run uses.

One function maps the `--strategy` flag to a strategy object:

- `default`: no distribution (the default strategy, one device).
- `one_device`: `OneDeviceStrategy` on the first GPU, else the CPU.
- `mirrored`: `MirroredStrategy` over every local GPU; on a machine without
  GPUs, over every logical CPU device (see `split_cpu`, used by tests and by
  `mixit-train --virtual_cpus`).
- `multi_worker`: `MultiWorkerMirroredStrategy`; the cluster comes from
  `cluster_config` (a TF_CONFIG JSON string or a path to a JSON file) or from
  the `TF_CONFIG` environment variable.
- `tpu`: `TPUStrategy` on the TPU named by `tpu` (a name, `grpc://` address or
  `local`). This path follows the documented TF recipe but is untested here:
  no TPU was available.
"""
import json
import os
from typing import Optional

import tensorflow as tf

STRATEGIES = ('default', 'one_device', 'mirrored', 'multi_worker', 'tpu')


def split_cpu(num_devices: int) -> None:
  """Splits the physical CPU into `num_devices` logical devices.

  Must run before TensorFlow initialises its devices (before any op runs), so
  tests that need several CPU replicas call it at the top of a subprocess.
  """
  if num_devices < 1:
    raise ValueError(f'num_devices must be >= 1, got {num_devices}')
  cpus = tf.config.list_physical_devices('CPU')
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)
  except RuntimeError as e:
    raise RuntimeError('split_cpu must be called before TensorFlow initialises its devices '
                       f'(before any op runs): {e}') from e


def _load_cluster_config(cluster_config: str) -> dict:
  """Reads a TF_CONFIG dictionary from a JSON string or a JSON file."""
  text = cluster_config.strip()
  if not text.startswith('{'):
    if not tf.io.gfile.exists(text):
      raise ValueError(f'--cluster_config {cluster_config!r} is neither a JSON object nor an '
                       'existing file')
    with tf.io.gfile.GFile(text) as f:
      text = f.read()
  try:
    config = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f'cluster config {cluster_config!r} is not valid JSON: {e}') from e
  if 'cluster' not in config or 'task' not in config:
    raise ValueError(f'cluster config {cluster_config!r} needs "cluster" and "task" entries '
                     '(the TF_CONFIG format)')
  return config


def get_strategy(name: str = 'default',
                 tpu: Optional[str] = None,
                 cluster_config: Optional[str] = None) -> tf.distribute.Strategy:
  """Builds the distribution strategy named `name` (one of `STRATEGIES`)."""
  if name not in STRATEGIES:
    raise ValueError(f'unknown strategy {name!r}; choose one of {STRATEGIES}')
  if name == 'default':
    return tf.distribute.get_strategy()
  if name == 'one_device':
    gpus = tf.config.list_logical_devices('GPU')
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else '/cpu:0')
  if name == 'mirrored':
    gpus = tf.config.list_logical_devices('GPU')
    devices = [d.name for d in (gpus or tf.config.list_logical_devices('CPU'))]
    # NCCL (the default on GPU) does not exist for CPU devices.
    cross_device_ops = None if gpus else tf.distribute.ReductionToOneDevice()
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=cross_device_ops)
  if name == 'multi_worker':
    if cluster_config:
      os.environ['TF_CONFIG'] = json.dumps(_load_cluster_config(cluster_config))
    if 'TF_CONFIG' not in os.environ:
      raise ValueError('--strategy=multi_worker needs --cluster_config or the TF_CONFIG '
                       'environment variable')
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
  # TPU: the documented TF2 recipe; untested here (no TPU available).
  if not tpu:
    raise ValueError('--strategy=tpu needs --tpu (a TPU name, grpc:// address or "local")')
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
  if tpu != 'local':
    tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes checkpoints, configs and summaries.

  Single-process strategies are always chief; in a multi-worker cluster the
  chief is the `chief` task, or worker 0 when the cluster has no chief.
  """
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type is None:
    return True
  if task_type == 'chief':
    return True
  cluster = resolver.cluster_spec().as_dict()
  return task_type == 'worker' and task_id == 0 and 'chief' not in cluster


def describe(strategy: tf.distribute.Strategy) -> str:
  """One log line naming the strategy, its replica count and its devices."""
  try:
    devices = list(strategy.extended.worker_devices)
  except RuntimeError:  # the default strategy places ops where TF chooses
    devices = [d.name for d in tf.config.list_logical_devices()]
  # Public names: MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy.
  named = ((tf.distribute.TPUStrategy, 'TPUStrategy'),
           (tf.distribute.MultiWorkerMirroredStrategy, 'MultiWorkerMirroredStrategy'),
           (tf.distribute.MirroredStrategy, 'MirroredStrategy'),
           (tf.distribute.OneDeviceStrategy, 'OneDeviceStrategy'))
  name = next((n for cls, n in named if isinstance(strategy, cls)),
              'default strategy (no distribution)')
  return (f'strategy {name} with {strategy.num_replicas_in_sync} replica(s) '
          f'in sync; devices of this worker: {devices}')
