"""The MixIT train step and validation step as a Keras model.

`MixITTrainer` wraps a `SeparationNetwork` (`trainer.network`). Its
`train_step` separates the mixture of mixtures (MoM), scores unsupervised
examples with MixIT and supervised ones with the permutation-invariant loss,
adds the weighted regularisers (docs/formulas.md, "Losses"), and updates the
weights; `test_step` separates single mixtures with known sources and has the
FUSS evaluator's code (`eval.metrics`) accumulate validation SI-SNR, MSi, 1S and
under/over-separation counts (docs/formulas.md, "Evaluation").

Distribution (docs/formulas.md, "Distributed training"). Every loss term is a
mean over the *global* batch: a replica's contribution is the sum of its
per-example values divided by the global number of examples of that kind
(all-reduced counts). For terms over all examples that is the per-replica
mean times 1/num_replicas_in_sync, so the summed replica gradients equal the
gradient of the global mean whatever the replica count (the 1-vs-2-replica
test checks this). The train step all-reduces the gradients itself and clips
their global norm *after* that reduction (Keras optimizers clip before their
own all-reduce, i.e. per replica), so the optimizer must not sum them again:
`build_optimizer` makes optimizers with `PreReducedGradients`.

Losses and assignments are computed in float32 (validation scores in float64,
on the host) whatever the Keras mixed-precision policy; under `mixed_float16`
the optimizer is a `LossScaleOptimizer` and the clip threshold is scaled with
the loss scale (the global norm is linear in the scale, so this equals
clipping unscaled gradients).
"""
import dataclasses
from typing import Dict, Optional

import gin
import keras
import tensorflow as tf

from eval import metrics as eval_metrics
from mixit import losses

NONFINITE_MODES = ('stop', 'skip')
LOSS_TERMS = ('mixit', 'supervised', 'sparsity', 'covariance', 'classification')

# Validation running sums, pooled as the FUSS evaluator pools (eval.metrics).
EVAL_SUMS = eval_metrics.POOLED_SUMS


class PreReducedGradients:
  """Optimizer mixin: gradients arrive already summed over replicas.

  Keras' TF optimizers all-reduce (sum) the gradients inside `apply`, after
  their own clipping. `MixITTrainer.train_step` reduces and clips first, so a
  second reduction would multiply the update by the replica count.
  """

  def _all_reduce_sum_gradients(self, grads_and_vars):
    return list(grads_and_vars)


class PreReducedAdam(PreReducedGradients, keras.optimizers.Adam):
  pass


class PreReducedSGD(PreReducedGradients, keras.optimizers.SGD):
  pass


_OPTIMIZERS = {'adam': PreReducedAdam, 'sgd': PreReducedSGD}

PRECISION_POLICIES = ('float32', 'mixed_float16', 'mixed_bfloat16')


@gin.configurable('precision')
def set_precision_policy(policy: str = 'float32') -> str:
  """Sets the global Keras dtype policy (before the network is built).

  `mixed_float16` on GPU (the optimizer then scales the loss), `mixed_bfloat16`
  on TPU. The network's front end and heads and all losses stay float32.
  """
  if policy not in PRECISION_POLICIES:
    raise ValueError(f'precision.policy must be one of {PRECISION_POLICIES}, got {policy!r}')
  keras.mixed_precision.set_global_policy(policy)
  return policy


SCHEDULES = ('staircase', 'cosine')


@gin.configurable('optimizer')
def build_optimizer(learning_rate: float = 1e-4,
                    decay_steps: int = 2_000_000,
                    decay_rate: float = 0.5,
                    name: str = 'adam',
                    loss_scale: Optional[bool] = None,
                    schedule: str = 'staircase',
                    final_fraction: float = 0.0) -> keras.optimizers.Optimizer:
  """The optimizer (Adam or SGD) with a learning-rate schedule of the step.

  `schedule='staircase'` (the paper's): `learning_rate * decay_rate **
  floor(step / decay_steps)`; the paper recipe is lr 1e-4 halved every 2M
  steps. `schedule='cosine'`: half a cosine from `learning_rate` down to
  `final_fraction * learning_rate` over `decay_steps` steps, then that floor
  (`decay_rate` is unused). The schedule is evaluated at
  `optimizer.iterations`, which the checkpoint saves, so a resumed run
  continues it exactly. `loss_scale` wraps the optimizer in a dynamic
  `LossScaleOptimizer`; by default exactly when the global Keras policy is
  `mixed_float16`. Build it inside `strategy.scope()`.
  """
  if name not in _OPTIMIZERS:
    raise ValueError(f'optimizer.name must be one of {sorted(_OPTIMIZERS)}, got {name!r}')
  if schedule not in SCHEDULES:
    raise ValueError(f'optimizer.schedule must be one of {SCHEDULES}, got {schedule!r}')
  if learning_rate <= 0 or decay_steps <= 0 or not 0 < decay_rate <= 1:
    raise ValueError(f'bad learning-rate schedule: learning_rate={learning_rate}, '
                     f'decay_steps={decay_steps}, decay_rate={decay_rate}')
  if not 0 <= final_fraction <= 1:
    raise ValueError(f'optimizer.final_fraction must be in [0, 1], got {final_fraction}')
  if schedule == 'cosine':
    rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=decay_steps,
                                                  alpha=final_fraction)
  else:
    rate = keras.optimizers.schedules.ExponentialDecay(
        learning_rate, decay_steps=decay_steps, decay_rate=decay_rate, staircase=True)
  optimizer = _OPTIMIZERS[name](learning_rate=rate)
  if loss_scale is None:
    loss_scale = keras.mixed_precision.global_policy().name == 'mixed_float16'
  if loss_scale:
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
  """The learning rate the next update will use."""
  inner = getattr(optimizer, 'inner_optimizer', optimizer)
  lr = inner.learning_rate
  return float(lr.numpy() if hasattr(lr, 'numpy') else lr)


@gin.configurable('trainer')
@dataclasses.dataclass(frozen=True)
class LossSettings:
  """Loss composition of the train step; gin-configurable as `trainer.*`.

  `LossSettings()` takes the `trainer.*` bindings (the names the trainer's
  settings always had); arguments given explicitly win over them.

  Attributes:
    mixit_method: 'exhaustive' or 'least_squares' (the paper's efficient MixIT).
    max_snr: SNR threshold (dB) of the MixIT loss.
    lambda_sparse, sparsity_kind, sparsity_p: weight and variant of
      `losses.sparsity_loss`.
    sparsity_warmup_steps: the sparsity weight ramps linearly from 0 to
      `lambda_sparse` over this many optimizer steps (0: full weight from the
      start), so the network learns to separate before it is pushed to
      silence outputs. The ramp follows `optimizer.iterations`, which the
      checkpoint saves.
    lambda_cov, covariance_kind: weight and variant of `losses.covariance_loss`.
    lambda_class: weight of `losses.classification_loss`; needs labels in the
      data and a network with a classification head.
    lambda_sup: weight of `losses.pit_loss` on supervised examples.
    clip_norm: global gradient-norm clip after the cross-replica reduction
      (None: no clipping). 5.0 as in Google's TDCN++ recipe.
    nonfinite: 'stop' (the training loop raises naming the step and the
      non-finite terms) or 'skip' (the batch is skipped). Either way a
      non-finite step never touches the weights.
  """
  mixit_method: str = 'least_squares'
  max_snr: float = 30.0
  lambda_sparse: float = 0.0
  sparsity_kind: str = losses.DEFAULT_SPARSITY_KIND
  sparsity_p: float = 0.5
  sparsity_warmup_steps: int = 0
  lambda_cov: float = 0.0
  covariance_kind: str = 'squared'
  lambda_class: float = 0.0
  lambda_sup: float = 1.0
  clip_norm: Optional[float] = 5.0
  nonfinite: str = 'stop'

  def __post_init__(self):
    if self.mixit_method not in losses.ASSIGNMENT_METHODS:
      raise ValueError(f'trainer.mixit_method must be one of {losses.ASSIGNMENT_METHODS}, '
                       f'got {self.mixit_method!r}')
    if self.sparsity_kind not in losses.SPARSITY_KINDS:
      raise ValueError(f'trainer.sparsity_kind must be one of {losses.SPARSITY_KINDS}, '
                       f'got {self.sparsity_kind!r}')
    if self.covariance_kind not in losses.COVARIANCE_KINDS:
      raise ValueError(f'trainer.covariance_kind must be one of {losses.COVARIANCE_KINDS}, '
                       f'got {self.covariance_kind!r}')
    if self.nonfinite not in NONFINITE_MODES:
      raise ValueError(f'trainer.nonfinite must be one of {NONFINITE_MODES}, '
                       f'got {self.nonfinite!r}')
    for name in ('lambda_sparse', 'lambda_cov', 'lambda_class', 'lambda_sup'):
      if getattr(self, name) < 0:
        raise ValueError(f'trainer.{name} must be >= 0, got {getattr(self, name)}')
    if self.clip_norm is not None and self.clip_norm <= 0:
      raise ValueError(f'trainer.clip_norm must be positive or None, got {self.clip_norm}')
    if (isinstance(self.sparsity_warmup_steps, bool) or
        not isinstance(self.sparsity_warmup_steps, int) or self.sparsity_warmup_steps < 0):
      raise ValueError('trainer.sparsity_warmup_steps must be an integer >= 0, got '
                       f'{self.sparsity_warmup_steps!r}')


def build_trainer(network: keras.Model, settings: Optional[LossSettings] = None,
                  **overrides) -> 'MixITTrainer':
  """The trainer around `network` (a `SeparationNetwork`).

  Args:
    network: a `SeparationNetwork`.
    settings: the loss settings; None for `LossSettings()`, i.e. the `trainer.*`
      gin bindings.
    **overrides: fields of `LossSettings` replaced in `settings` (scripts, tests).
  """
  if settings is None:
    settings = LossSettings()
  if overrides:
    settings = dataclasses.replace(settings, **overrides)
  return MixITTrainer(network, settings)


def _require_keys(data, what: str, layout: Dict[str, str]) -> None:
  """Raises naming the expected keys and shapes unless `data` is a dict holding them."""
  if isinstance(data, dict) and all(key in data for key in layout):
    return
  keys = sorted(data) if isinstance(data, dict) else type(data).__name__
  wanted = ' and '.join(f"{key!r} {shape}" for key, shape in layout.items())
  raise ValueError(f'{what} must be a dict with {wanted}; got {keys}')


def _static_shape(name: str, x: tf.Tensor, rank: int) -> list:
  if x.shape.rank != rank:
    raise ValueError(f'batch[{name!r}] must have rank {rank}, got shape {x.shape}')
  return x.shape.as_list()


def _same_dim(what: str, dims: Dict[str, Optional[int]]) -> None:
  known = {k: v for k, v in dims.items() if v is not None}
  if len(set(known.values())) > 1:
    raise ValueError(f'inconsistent {what} dimension in the batch: {known}')


def _host_pooled_sums(estimates: tf.Tensor, sources: tf.Tensor, mixture: tf.Tensor) -> tf.Tensor:
  """`eval.metrics.pooled_sums` of a batch, run on the host: `[len(EVAL_SUMS)]` float64."""

  def score():
    sums = tf.numpy_function(
        lambda e, r, m: eval_metrics.pooled_sums(estimates=e, references=r, mixtures=m),
        [estimates, sources, mixture], tf.float64, name='fuss_pooled_sums')
    return tf.ensure_shape(sums, [len(EVAL_SUMS)])

  if isinstance(tf.distribute.get_strategy(), tf.distribute.TPUStrategy):
    # A TPU cannot run Python: the scoring is placed on the TPU host (untested: no TPU here).
    return tf.tpu.outside_compilation(score)
  return score()


class MixITTrainer(keras.Model):
  """Train/validation steps of (sparse, semantic, semi-supervised) MixIT.

  Compile with an optimizer from `build_optimizer` (built in the same
  `strategy.scope()`), then drive `train_step` / `test_step` through
  `strategy.run` (as `mixit.training.loop` does) or through `fit`.

  Training batch (DESIGN.md): `{'mom': [B,T], 'mixtures': [B,N,T]}` plus
  optionally `'sources': [B,S,T]`, `'num_sources': [B]`, `'supervised': [B]`
  and `'labels': [B,N,C]`. Eval batch: `{'mixture': [B,T], 'sources': [B,S,T]}`.
  """

  def __init__(self, network: keras.Model, settings: Optional[LossSettings] = None, **kwargs):
    super().__init__(**kwargs)
    self.network = network
    self.settings = settings if settings is not None else LossSettings()
    # float64: the sums hold the evaluator's float64 scores (counts stay exact).
    self._eval_trackers = {name: keras.metrics.Sum(name=name, dtype='float64')
                           for name in EVAL_SUMS}
    self._xla_forward_backward = None

  def call(self, inputs, training=False):
    return self.network(inputs, training=training)

  @property
  def metrics(self):
    return list(self._eval_trackers.values())

  def _optimizer_parts(self):
    optimizer = self.optimizer
    if optimizer is None:
      raise ValueError('MixITTrainer has no optimizer: call compile(optimizer=...) first')
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    inner = optimizer.inner_optimizer if scaled else optimizer
    if not isinstance(inner, PreReducedGradients):
      raise ValueError(
          f'MixITTrainer needs an optimizer from mixit.training.trainer.build_optimizer (got '
          f'{type(inner).__name__}): the train step all-reduces and clips the gradients '
          'itself, and a stock Keras optimizer would sum them over the replicas again')
    return optimizer, scaled

  # ---------------------------------------------------------------- training

  def _check_train_batch(self, data) -> None:
    _require_keys(data, 'training batch', {'mom': '[B,T]', 'mixtures': '[B,N,T]'})
    mom = _static_shape('mom', data['mom'], 2)
    mixtures = _static_shape('mixtures', data['mixtures'], 3)
    batch = {'mom': mom[0], 'mixtures': mixtures[0]}
    time = {'mom': mom[1], 'mixtures': mixtures[2]}
    if mixtures[1] is not None and mixtures[1] < 2:
      raise ValueError(f"MixIT needs N >= 2 reference mixtures; batch['mixtures'] has shape "
                       f"{data['mixtures'].shape}")
    num_outputs = self.network.num_sources
    if mixtures[1] is not None and mixtures[1] > num_outputs:
      raise ValueError(f'MixIT needs M >= N: the network has {num_outputs} outputs but the '
                       f"batch has {mixtures[1]} mixtures per MoM")
    if 'sources' in data:
      sources = _static_shape('sources', data['sources'], 3)
      batch['sources'], time['sources'] = sources[0], sources[2]
      if sources[1] is not None and sources[1] > num_outputs:
        raise ValueError(f"batch['sources'] holds {sources[1]} sources but the network "
                         f'separates only {num_outputs}')
    for key in ('supervised', 'num_sources'):
      if key in data:
        batch[key] = _static_shape(key, data[key], 1)[0]
    if 'supervised' in data and 'sources' not in data:
      raise ValueError("batch has 'supervised' but no 'sources' for the supervised loss")
    if 'labels' in data:
      labels = _static_shape('labels', data['labels'], 3)
      batch['labels'] = labels[0]
      _same_dim('mixture', {'mixtures': mixtures[1], 'labels': labels[1]})
      num_classes = getattr(self.network, 'num_classes', 0)
      if num_classes and labels[2] is not None and labels[2] != num_classes:
        raise ValueError(f"batch['labels'] has {labels[2]} classes but the network's "
                         f'classification head has {num_classes}')
    _same_dim('batch', batch)
    _same_dim('time', time)
    if self.settings.lambda_class > 0:
      if 'labels' not in data:
        raise ValueError('trainer.lambda_class > 0 but the training batches carry no labels')
      if not getattr(self.network, 'num_classes', 0):
        raise ValueError('trainer.lambda_class > 0 but the network has no classification head '
                         '(num_classes = 0)')

  def _loss_terms(self, data, outputs, counts) -> Dict[str, tf.Tensor]:
    """This replica's contribution to each global-mean loss term (float32)."""
    s = self.settings
    mom = tf.cast(data['mom'], tf.float32)
    mixtures = tf.cast(data['mixtures'], tf.float32)
    estimates = tf.cast(outputs['separated_waveforms'], tf.float32)
    batch_size = tf.shape(mom)[0]
    supervised = data.get('supervised')
    if supervised is None:
      supervised = tf.zeros([batch_size], tf.bool)
    supervised = tf.cast(supervised, tf.bool)

    def global_mean(values, mask, count):
      # tf.where, not a product: a masked-out example may hold NaN (0 * NaN = NaN).
      if mask is not None:
        values = tf.where(mask, values, 0.0)
      return tf.reduce_sum(values) / tf.maximum(count, 1.0)

    terms = {}
    mixit_values, mix_matrix = losses.mixit_loss(mixtures, estimates, method=s.mixit_method,
                                                 max_snr=s.max_snr)
    terms['mixit'] = global_mean(mixit_values, ~supervised, counts['unsupervised'])
    if 'sources' in data:
      sources = tf.cast(data['sources'], tf.float32)
      num_sources = data.get('num_sources')

      def supervised_loss():
        values, _ = losses.pit_loss(sources, estimates, mom, num_sources=num_sources)
        return values

      # The assignment of PIT is skipped on the (usual) all-unsupervised batches.
      pit_values = tf.cond(tf.reduce_any(supervised), supervised_loss,
                           lambda: tf.zeros([batch_size], tf.float32))
      terms['supervised'] = global_mean(pit_values, supervised, counts['supervised'])
    else:
      terms['supervised'] = tf.constant(0.0)
    terms['sparsity'] = global_mean(
        losses.sparsity_loss(estimates, mom, kind=s.sparsity_kind, p=s.sparsity_p), None,
        counts['all'])
    terms['covariance'] = global_mean(
        losses.covariance_loss(estimates, kind=s.covariance_kind), None, counts['all'])
    if 'labels' in data and 'source_logits' in outputs:
      # Supervised examples carry mixtures [mom, 0, ...]: the MixIT assignment
      # gives every output to mixture 0, whose labels are those of the mom.
      terms['classification'] = global_mean(
          losses.classification_loss(tf.cast(outputs['source_logits'], tf.float32),
                                     mix_matrix, tf.cast(data['labels'], tf.float32)),
          None, counts['all'])
    else:
      terms['classification'] = tf.constant(0.0)
    terms['loss'] = (terms['mixit'] + s.lambda_sup * terms['supervised'] +
                     self._sparsity_weight() * terms['sparsity'] +
                     s.lambda_cov * terms['covariance'] +
                     s.lambda_class * terms['classification'])
    return terms

  def _sparsity_weight(self) -> tf.Tensor:
    """`lambda_sparse * min(1, step / sparsity_warmup_steps)` at the optimizer's step."""
    s = self.settings
    if not s.sparsity_warmup_steps:
      return tf.constant(s.lambda_sparse, tf.float32)
    step = tf.cast(self.optimizer.iterations, tf.float32)
    return s.lambda_sparse * tf.minimum(1.0, step / float(s.sparsity_warmup_steps))

  def _forward_backward(self, data, counts):
    """Loss terms and (loss-scaled) gradients of this replica; no collectives."""
    optimizer, scaled = self._optimizer_parts()
    with tf.GradientTape() as tape:
      outputs = self.network(data['mom'], training=True)
      terms = self._loss_terms(data, outputs, counts)
      objective = optimizer.scale_loss(terms['loss']) if scaled else terms['loss']
    return terms, tape.gradient(objective, self.network.trainable_variables)

  def _gradient_fn(self):
    # Only the collective-free part is XLA-compiled, so `jit_compile` works
    # under every strategy (all-reduce and merge_call stay outside XLA).
    if self.jit_compile is not True:
      return self._forward_backward
    if getattr(self, '_xla_forward_backward', None) is None:
      self._xla_forward_backward = tf.function(self._forward_backward, jit_compile=True)
    return self._xla_forward_backward

  def train_step(self, data):
    """One update in replica context; returns the global values of every term.

    Returned dict (identical on every replica): each of `LOSS_TERMS` (global
    means, unweighted), `loss` (the weighted total), `grad_norm` (global norm
    before clipping), `finite` (1.0, or 0.0 when the step was not applied
    because a loss term or the gradient was NaN/Inf) and `sparsity_weight`
    (the weight of the sparsity term in this step's `loss`).
    """
    self._check_train_batch(data)
    optimizer, scaled = self._optimizer_parts()
    ctx = tf.distribute.get_replica_context()
    supervised = data.get('supervised')
    batch_size = tf.cast(tf.shape(data['mom'])[0], tf.float32)
    num_supervised = (tf.reduce_sum(tf.cast(supervised, tf.float32))
                      if supervised is not None else tf.constant(0.0))
    all_count, sup_count = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                                          [batch_size, num_supervised])
    counts = {'all': all_count, 'supervised': sup_count, 'unsupervised': all_count - sup_count}

    variables = self.network.trainable_variables
    terms, grads = self._gradient_fn()(data, counts)
    used = [i for i, g in enumerate(grads) if g is not None]
    reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in used])
    names = sorted(terms)
    values = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [terms[k] for k in names])
    logs = dict(zip(names, values))

    scale = tf.cast(optimizer.dynamic_scale, tf.float32) if scaled else tf.constant(1.0)
    norm = tf.linalg.global_norm(reduced)
    if self.settings.clip_norm is not None:
      reduced, _ = tf.clip_by_global_norm(reduced, self.settings.clip_norm * scale, use_norm=norm)
    finite = tf.reduce_all(tf.math.is_finite(tf.stack(values)))
    if not scaled:
      # Under loss scaling, an overflowing gradient is routine: the
      # LossScaleOptimizer skips that update and lowers the scale itself.
      finite = finite & tf.math.is_finite(norm)
    logs['sparsity_weight'] = self._sparsity_weight()  # read before the update
    self._apply_if(finite, reduced, [variables[i] for i in used])
    logs['grad_norm'] = norm / scale
    logs['finite'] = tf.cast(finite, tf.float32)
    return logs

  def _apply_if(self, finite, grads, variables) -> None:
    """Applies the update when `finite` (identical on every replica).

    The condition is evaluated in cross-replica context (as Keras'
    LossScaleOptimizer does): a `tf.cond` in replica context cannot hold the
    optimizer's own `merge_call`.
    """
    optimizer = self.optimizer

    def apply(grads):
      optimizer.apply(grads, variables)

    def cross_replica(distribution, finite, grads):
      first = distribution.experimental_local_results(finite)[0]

      def do_apply():
        distribution.extended.call_for_each_replica(apply, args=(grads,))
        return tf.constant(True)

      return tf.cond(first, do_apply, lambda: tf.constant(False))

    tf.distribute.get_replica_context().merge_call(cross_replica, args=(finite, grads))

  # -------------------------------------------------------------- validation

  def test_step(self, data):
    """Accumulates validation scores of a batch of single mixtures.

    The network runs in the graph; the batch is then scored on the host by the
    FUSS evaluator's own float64 code (`eval.metrics.pooled_sums`, through
    `tf.numpy_function`), so validation and `mixit-evaluate` cannot disagree.
    This step is therefore not XLA-compilable as a whole.

    Returns the running metrics of `eval_results` (meaningful without a
    distribution strategy; under one, this replica's share: read
    `eval_results()` in cross-replica context after the loop).
    """
    _require_keys(data, 'eval batch', {'mixture': '[B,T]', 'sources': '[B,S,T]'})
    mixture_shape = _static_shape('mixture', data['mixture'], 2)
    sources_shape = _static_shape('sources', data['sources'], 3)
    _same_dim('batch', {'mixture': mixture_shape[0], 'sources': sources_shape[0]})
    _same_dim('time', {'mixture': mixture_shape[1], 'sources': sources_shape[2]})
    if sources_shape[1] is None:
      raise ValueError(f"batch['sources'] needs a static source dimension, got "
                       f"{data['sources'].shape}")
    mixture = tf.cast(data['mixture'], tf.float32)
    sources = tf.cast(data['sources'], tf.float32)
    if 'num_sources' in data:
      real = tf.range(sources_shape[1])[None, :] < tf.cast(data['num_sources'], tf.int32)[:, None]
      sources = tf.where(real[:, :, None], sources, 0.0)
    outputs = self.network(data['mixture'], training=False)
    estimates = tf.cast(outputs['separated_waveforms'], tf.float32)
    sums = _host_pooled_sums(estimates, sources, mixture)
    for i, name in enumerate(EVAL_SUMS):
      self._eval_trackers[name].update_state(sums[i])
    return self.eval_results()

  def reset_eval(self) -> None:
    for tracker in self._eval_trackers.values():
      tracker.reset_state()

  def eval_sums(self) -> Dict[str, tf.Tensor]:
    return {name: tracker.result() for name, tracker in self._eval_trackers.items()}

  def eval_results(self) -> Dict[str, tf.Tensor]:
    """Validation metrics accumulated since `reset_eval` (tensors; NaN if unscored)."""
    sums = self.eval_sums()

    def ratio(num, den):
      count = sums[den]
      return tf.where(count > 0, tf.math.divide_no_nan(sums[num], count),
                      tf.constant(float('nan'), count.dtype))

    return {
        'si_snr': ratio('si_snr_sum', 'si_snr_count'),
        'one_source_si_snr': ratio('one_source_sum', 'one_source_count'),
        'msi': ratio('msi_sum', 'msi_count'),
        'under_separation': ratio('under', 'num_examples'),
        'equal_separation': ratio('equal', 'num_examples'),
        'over_separation': ratio('over', 'num_examples'),
        'num_examples': sums['num_examples'],
    }
