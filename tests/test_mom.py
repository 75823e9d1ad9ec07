"""Mixtures of mixtures and the gin input functions' batch structures."""
import os

import numpy as np
import pytest
import tensorflow as tf

from data_pipeline import inputs
from data_pipeline import mom
from data_pipeline import sources

T = 64


def _identified_mixtures(count, num_classes=0):
  """Mixture i is a random vector whose first sample is i (its identity)."""
  rng = np.random.default_rng(0)
  mixtures = rng.uniform(-1, 1, size=(count, T)).astype(np.float32)
  mixtures[:, 0] = np.arange(count)
  tensors = {'mixture': mixtures}
  if num_classes:
    tensors['labels'] = np.eye(num_classes, dtype=np.float32)[np.arange(count) % num_classes]
  return mixtures, tf.data.Dataset.from_tensor_slices(tensors)


def _groups(dataset):
  return [{k: v.numpy() for k, v in e.items()} for e in dataset]


@pytest.mark.parametrize('num_mixtures', [2, 3])
def test_mom_is_the_sum_of_distinct_mixtures(num_mixtures):
  mixtures, dataset = _identified_mixtures(60, num_classes=5)
  groups = _groups(mom.mixtures_of_mixtures(dataset, num_mixtures=num_mixtures,
                                            shuffle_buffer=60, seed=0))
  assert len(groups) == 60 // num_mixtures
  used = []
  for group in groups:
    assert group['mixtures'].shape == (num_mixtures, T) and group['mom'].shape == (T,)
    ids = group['mixtures'][:, 0].astype(int)
    np.testing.assert_array_equal(group['mixtures'], mixtures[ids])
    np.testing.assert_allclose(group['mom'], mixtures[ids].sum(axis=0), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(group['labels'], np.eye(5)[ids % 5])
    used.extend(ids)
  assert sorted(used) == list(range(len(used)))  # each mixture used once per epoch


def test_pairing_is_random_but_seeded():
  _, dataset = _identified_mixtures(64)

  def pairs(seed):
    groups = _groups(mom.mixtures_of_mixtures(dataset, shuffle_buffer=64, seed=seed))
    return [tuple(g['mixtures'][:, 0].astype(int)) for g in groups]

  first = pairs(1)
  assert first == pairs(1)
  assert first != pairs(2)
  # Not file-list neighbours: with a 64-element buffer few pairs are (i, i+1).
  neighbours = sum(abs(a - b) == 1 for a, b in first)
  assert neighbours <= 4
  # Without the buffer, pairs are neighbours: the test above can fail.
  unshuffled = [tuple(g['mixtures'][:, 0].astype(int))
                for g in _groups(mom.mixtures_of_mixtures(dataset, shuffle_buffer=1))]
  assert unshuffled == [(2 * i, 2 * i + 1) for i in range(32)]


def test_random_gains_in_range_and_seeded():
  mixtures, dataset = _identified_mixtures(40)

  def run(seed):
    return _groups(mom.mixtures_of_mixtures(dataset, shuffle_buffer=40, gain_db=(-6.0, 3.0),
                                            seed=seed))

  first = run(5)
  gains_db = []
  for group in first:
    # Identity sample 0 is scaled too; recover the id from sample ratios instead.
    for row in group['mixtures']:
      ratios = row[1:] / mixtures[:, 1:]
      matches = np.flatnonzero(np.ptp(ratios, axis=1) < 1e-4)
      assert matches.size == 1
      gains_db.append(20 * np.log10(ratios[matches[0]].mean()))
    np.testing.assert_allclose(group['mom'], group['mixtures'].sum(0), atol=1e-6)
  gains_db = np.array(gains_db)
  assert gains_db.min() >= -6.0 - 1e-3 and gains_db.max() <= 3.0 + 1e-3
  assert np.std(gains_db) > 1.0
  for a, b in zip(first, run(5)):
    np.testing.assert_array_equal(a['mixtures'], b['mixtures'])


def test_bad_arguments():
  _, dataset = _identified_mixtures(4)
  with pytest.raises(ValueError, match='num_mixtures must be >= 2'):
    mom.mixtures_of_mixtures(dataset, num_mixtures=1)
  with pytest.raises(ValueError, match='gain_db'):
    mom.mixtures_of_mixtures(dataset, gain_db=(3.0, -3.0))
  with pytest.raises(ValueError, match='shuffle_buffer'):
    mom.mixtures_of_mixtures(dataset, shuffle_buffer=0)
  with pytest.raises(ValueError, match='"mixture" key'):
    mom.mixtures_of_mixtures(tf.data.Dataset.from_tensor_slices({'x': np.zeros([4, 2])}))


# --------------------------------------------------------------------------
# Input functions on synthetic FUSS data.

RATE = 8000
CLIP = 0.25


@pytest.fixture(scope='module', name='root')
def fixture_root(make_synthetic_fuss):
  return make_synthetic_fuss(num_train=8, num_validation=4, seed=3, sample_rate=RATE,
                             clip_seconds=0.5)


def _batches(dataset, count):
  return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(count)]


def _train(source, **kwargs):
  """Batches of `source`, or of the MoMs of the FUSS list under the root `source`."""
  kwargs.setdefault('batch_size', 4)
  if isinstance(source, str):
    source = sources.FussMixtures(data_root=source)
  return inputs.train_input_fn(source=source, sample_rate=RATE, clip_seconds=CLIP, seed=0,
                               **kwargs)


def test_unsupervised_batches(root):
  dataset = _train(root, labels=True, gain_db=(-3.0, 3.0))
  n = int(CLIP * RATE)
  spec = dataset.element_spec
  assert spec['mom'].shape == (4, n) and spec['mixtures'].shape == (4, 2, n)
  assert spec['sources'].shape == (4, 4, n) and spec['labels'].shape == (4, 2, 6)
  assert spec['num_sources'].dtype == tf.int32 and spec['supervised'].dtype == tf.bool
  for batch in _batches(dataset, 2):
    np.testing.assert_allclose(batch['mom'], batch['mixtures'].sum(1), atol=1e-6)
    assert not batch['supervised'].any() and not batch['num_sources'].any()
    assert not batch['sources'].any()
    assert np.all(batch['labels'].max(axis=-1) == 1)  # every mixture has a background


def test_supervised_batches(root):
  for batch in _batches(_train(sources.FussSources(data_root=root), labels=True), 2):
    assert batch['supervised'].all()
    assert set(batch['num_sources']) <= {1, 2, 3, 4}
    np.testing.assert_allclose(batch['mom'], batch['sources'].sum(1), atol=1e-6)
    np.testing.assert_array_equal(batch['mixtures'][:, 0], batch['mom'])
    np.testing.assert_array_equal(batch['mixtures'][:, 1], 0.0)
    np.testing.assert_array_equal(batch['labels'][:, 1], 0.0)
    for b, k in enumerate(batch['num_sources']):
      np.testing.assert_array_equal(batch['sources'][b, k:], 0.0)
      assert np.all(np.abs(batch['sources'][b, :k]).max(axis=1) > 0)


def test_semi_supervised_interleave_ratio(root):
  semi = sources.SemiSupervised(sources.FussSources(data_root=root),
                                sources.FussMixtures(data_root=root), supervised_fraction=0.25)
  batches = _batches(_train(semi, batch_size=2), 8)
  flags = [bool(b['supervised'][0]) for b in batches]
  assert all(b['supervised'].all() == b['supervised'][0] for b in batches)
  assert flags == [False, False, False, True] * 2


def test_input_context_batch_and_shards(root):
  contexts = [tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i,
                                         num_replicas_in_sync=2) for i in range(2)]
  for context in contexts:
    spec = inputs.train_input_fn(context, sources.FussMixtures(data_root=root), batch_size=4,
                                 sample_rate=RATE, clip_seconds=CLIP).element_spec
    assert spec['mom'].shape[0] == 2
  # Eval order is the list order, so each pipeline's shard is checkable.
  seen = []
  for context in contexts:
    batch = _batches(inputs.eval_input_fn(context, batch_size=4, data_root=root,
                                          sample_rate=RATE, clip_seconds=CLIP), 1)[0]
    seen.append(batch)
  full = _batches(inputs.eval_input_fn(batch_size=4, data_root=root, sample_rate=RATE,
                                       clip_seconds=CLIP), 1)[0]
  np.testing.assert_array_equal(seen[0]['mixture'], full['mixture'][[0, 2]])
  np.testing.assert_array_equal(seen[1]['sources'], full['sources'][[1, 3]])
  assert set(full) == {'mixture', 'sources', 'num_sources'}
  np.testing.assert_allclose(full['mixture'], full['sources'].sum(1), atol=1e-6)


def test_distribute_datasets_from_function(root):
  strategy = tf.distribute.get_strategy()
  dataset = strategy.distribute_datasets_from_function(
      lambda context: inputs.train_input_fn(context, sources.FussMixtures(data_root=root),
                                            batch_size=2, sample_rate=RATE, clip_seconds=CLIP))
  batch = next(iter(dataset))
  assert batch['mom'].shape == (2, int(CLIP * RATE))


def test_input_fn_errors(root):
  with pytest.raises(ValueError, match='DATA_ROOT'):
    inputs.train_input_fn()
  with pytest.raises(ValueError, match='fuss_sources.data_root is not set.*DATA_ROOT'):
    _train(sources.FussSources())
  with pytest.raises(ValueError, match='supervised_fraction'):
    sources.SemiSupervised(supervised_fraction=1.0)
  with pytest.raises(ValueError, match='wild_mixtures.path is not set.*WILD_SOURCE'):
    _train(sources.WildMixtures())
  with pytest.raises(ValueError, match='no full batch'):
    inputs.eval_input_fn(batch_size=8, data_root=root, sample_rate=RATE)
  with pytest.raises(FileNotFoundError, match=os.path.join('nope', 'train_example_list.txt')):
    _train(sources.FussMixtures(data_root=root, subfolder='nope'))


def test_gin_configs_compose(root):
  from mixit import gin_config
  params = [f'DATA_ROOT = {root!r}', f'SAMPLE_RATE = {RATE}', f'CLIP_SECONDS = {CLIP}',
            'SEED = 0', 'train_data.batch_size = 2', 'eval_data.batch_size = 2']
  gin_config.parse(['datasets/synthetic.gin', 'datasets/semi_supervised.gin',
                    'datasets/weak_labels.gin'], params)
  try:
    batches = _batches(inputs.train_input_fn(), 2)
    assert [bool(b['supervised'][0]) for b in batches] == [False, True]
    assert batches[0]['labels'].shape == (2, 2, 6)
    assert inputs.eval_input_fn().element_spec['mixture'].shape == (2, int(CLIP * RATE))
    gin_config.parse(['datasets/fuss_reverb.gin'], params)
    with pytest.raises(FileNotFoundError, match='ssdata_reverb'):
      inputs.train_input_fn()
  finally:
    import gin
    gin.clear_config()


# --------------------------------------------------------------------------
# The data source: an object chosen in gin, or by the string-mode API's old names.


@pytest.mark.parametrize('gin_files,params,expected', [
    (['datasets/synthetic.gin'], [], sources.FussMixtures),
    (['datasets/synthetic.gin'], ['train_data.source = @fuss_sources()'], sources.FussSources),
    (['datasets/synthetic.gin', 'datasets/semi_supervised.gin'], [], sources.SemiSupervised),
    (['datasets/wild_folder.gin'], ["WILD_SOURCE = '/data/recordings'"], sources.WildMixtures),
], ids=['fuss_mixtures', 'fuss_sources', 'semi_supervised', 'wild_mixtures'])
def test_gin_chooses_the_data_source(gin_files, params, expected):
  import gin
  from mixit import gin_config
  gin_config.parse(gin_files, ["DATA_ROOT = '/data/fuss'"] + params)
  try:
    source = gin.query_parameter('train_data.source').scoped_configurable_fn()
    assert type(source) is expected
    if expected is sources.WildMixtures:
      assert source.path == '/data/recordings'
    else:
      # Every FUSS list of the source follows the DATA_ROOT macro.
      parts = ([source.supervised, source.unsupervised] if expected is sources.SemiSupervised
               else [source])
      assert [part.data_root for part in parts] == ['/data/fuss'] * len(parts)
  finally:
    gin.clear_config()


def _same_batches(dataset, other, count=2):
  for batch, expected in zip(_batches(dataset, count), _batches(other, count)):
    assert sorted(batch) == sorted(expected)
    for key in batch:
      np.testing.assert_array_equal(batch[key], expected[key], err_msg=key)


def test_old_train_data_names_choose_the_same_source_and_batches(root):
  """Model dirs and scripts of the string-mode API pass `mode`, `data_root`, ...: they get
  the source object those names describe, and the very same batches."""
  from data_pipeline import old_train_data
  wild_folder = os.path.join(root, 'train')
  fuss = sources.FussMixtures(data_root=root)
  supervised = sources.FussSources(data_root=root)
  cases = [
      (dict(data_root=root), fuss),
      (dict(data_root=root, mode='unsupervised'), fuss),
      (dict(data_root=root, mode='supervised'), supervised),
      (dict(data_root=root, mode='semi_supervised', supervised_fraction=0.5),
       sources.SemiSupervised(supervised, fuss, 0.5)),
      (dict(unsupervised_source='wild', wild_source=wild_folder, skip_bad=True),
       sources.WildMixtures(path=wild_folder, skip_bad=True)),
      (dict(data_root=root, mode='semi_supervised', unsupervised_source='wild',
            wild_source=wild_folder), sources.SemiSupervised(
                supervised, sources.WildMixtures(path=wild_folder))),
  ]
  for old, source in cases:
    assert old_train_data.apply(sources.FussMixtures(), old) == source, old
    _same_batches(inputs.train_input_fn(batch_size=2, sample_rate=RATE, clip_seconds=CLIP,
                                        seed=0, **old),
                  _train(source, batch_size=2))


def test_old_names_set_their_field_on_the_chosen_source(root):
  """An old name on top of a config that chooses a source sets the field it became."""
  import dataclasses
  from data_pipeline import old_train_data
  wild = sources.WildMixtures(path='/data/recordings', labels_csv='/data/labels.csv')
  assert old_train_data.apply(wild, {'skip_bad': True}) == dataclasses.replace(wild,
                                                                                skip_bad=True)
  fuss = sources.FussMixtures(data_root=root, subfolder='ssdata', check_mixture=True)
  assert old_train_data.apply(fuss, {'mode': 'supervised'}) == sources.FussSources(
      data_root=root, subfolder='ssdata', check_mixture=True)
  semi = sources.SemiSupervised(sources.FussSources(data_root=root), wild)
  assert old_train_data.apply(semi, {'supervised_fraction': 0.25}) == dataclasses.replace(
      semi, supervised_fraction=0.25)
  assert old_train_data.apply(fuss, {'mode': None}) is fuss  # None: not given
  # A bad value is one line naming the binding that replaced the name.
  with pytest.raises(ValueError, match=r"^train_data.mode must be one of .* got 'weakly' \(or "
                     r"bind train_data.source = @fuss_mixtures\(\) \| @wild_mixtures\(\)"):
    old_train_data.apply(fuss, {'mode': 'weakly'})
  with pytest.raises(TypeError, match=r"train_data has no setting\(s\) \['bach_size'\]"):
    _train(fuss, bach_size=2)


def test_old_names_in_gin_on_top_of_the_shipped_configs(root):
  import gin
  from mixit import gin_config
  params = [f'DATA_ROOT = {root!r}', f'SAMPLE_RATE = {RATE}', f'CLIP_SECONDS = {CLIP}',
            'SEED = 0', 'train_data.batch_size = 2', "train_data.mode = 'supervised'"]
  gin_config.parse(['datasets/synthetic.gin'], params)
  try:
    assert all(b['supervised'].all() for b in _batches(inputs.train_input_fn(), 2))
    # A name that never was a setting is refused when the config is parsed.
    with pytest.raises(ValueError, match="'train_data' doesn't have a parameter named 'mod'"):
      gin_config.parse(['datasets/synthetic.gin'], params + ["train_data.mod = 'supervised'"])
  finally:
    gin.clear_config()
