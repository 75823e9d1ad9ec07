"""Every shipped gin file parses and builds its network (and trainer where it has losses)."""
import pathlib

import gin
import numpy as np
import pytest
import tensorflow as tf

from mixit import gin_config
from mixit import model as model_lib
from mixit.training import loop as train_loop  # noqa: F401  (registers precision / training)
from mixit.training import trainer as trainer_lib
from data_pipeline import inputs as inputs_lib  # registers train_data / eval_data
from data_pipeline import old_train_data
from data_pipeline import sources

GIN_DIR = pathlib.Path(gin_config.package_gin_dir())
GIN_FILES = sorted(str(p.relative_to(GIN_DIR)) for p in GIN_DIR.rglob('*.gin'))
PAPER_BASE = 'papers/waspaa2021/base.gin'
PAPER_FILES = [f for f in GIN_FILES if f.startswith('papers/') and f != PAPER_BASE]


# Experiment files are built with a shrunken core: their structure (M, front end,
# losses, data) is what they configure; the full-size models are built in test_model.py.
_SHRINK = ['network.bottleneck = 8', 'network.conv_channels = 16', 'network.num_repeats = 1',
           'network.num_dilations = 2', 'network.skip_from = []', 'network.skip_to = []']


def _parse(gin_file, shrink=False):
  params = ["DATA_ROOT = '/nonexistent'"] + (_SHRINK if shrink else [])
  if 'NUM_CLASSES = %gin.REQUIRED' in (GIN_DIR / gin_file).read_text():
    params.append('NUM_CLASSES = 6')
  gin_config.parse([gin_file], params)


def test_there_are_paper_variants():
  names = {pathlib.Path(f).stem for f in PAPER_FILES}
  for required in ['mixit_m4_exhaustive', 'mixit_m8_efficient', 'mixit_m16_efficient_sparse_l1l2',
                   'mixit_m32_efficient', 'mixit_m8_efficient_covariance',
                   'mixit_m8_efficient_classification', 'supervised_fuss_m4',
                   'semi_supervised_m8_efficient_sparse', 'wild_m8_efficient_sparse']:
    assert required in names


@pytest.mark.parametrize('gin_file', GIN_FILES)
def test_gin_file_parses_and_builds(gin_file):
  _parse(gin_file, shrink=gin_file.startswith('papers/'))
  try:
    network = model_lib.build_network()
    out = network(tf.zeros([1, 3000]))['separated_waveforms']
    assert out.shape[0] == 1 and out.shape[2] == 3000
    assert out.shape[1] == network.num_sources
    if gin_file.startswith(('papers/', 'demo/')):
      trainer = trainer_lib.build_trainer(network)
      assert trainer.network is network
    bindings = gin.get_bindings('train_data')  # builds the data source a config chooses
    if 'source' in bindings:
      assert isinstance(bindings['source'], sources.SOURCES)
  finally:
    gin.clear_config()


def test_paper_variant_settings():
  """The file names say what the files configure."""
  for gin_file in PAPER_FILES:
    _parse(gin_file)
    try:
      stem = pathlib.Path(gin_file).stem
      m = gin.query_parameter('%NUM_SOURCES')
      assert f'_m{m}_' in stem + '_', (gin_file, m)
      if 'mixit' in stem or 'wild' in stem or 'semi' in stem:
        method = gin.query_parameter('trainer.mixit_method')
        assert method == ('exhaustive' if 'exhaustive' in stem else 'least_squares'), gin_file
      sparse = 'sparse' in stem
      try:
        lam = gin.query_parameter('trainer.lambda_sparse')
      except ValueError:
        lam = 0.0
      assert (lam > 0) == sparse, gin_file
    finally:
      gin.clear_config()


def test_paper_files_share_one_base_and_one_batch_size():
  """The includes every paper config needs stand once, in papers/waspaa2021/base.gin, and
  validation batches follow the `batch_size` macro like training batches."""
  for gin_file in PAPER_FILES:
    assert f"include '{PAPER_BASE}'" in (GIN_DIR / gin_file).read_text(), gin_file
  gin_config.parse(['papers/waspaa2021/mixit_m8_efficient.gin'],
                   ["DATA_ROOT = '/nonexistent'", 'batch_size = 4'])
  try:
    for name in ('train_data', 'eval_data'):
      binding = gin.query_parameter(f'{name}.batch_size')
      assert binding.scoped_configurable_fn() == 4, name
    for name in ('fuss_mixtures', 'fuss_sources', 'eval_data'):
      assert gin.query_parameter(f'{name}.data_root').scoped_configurable_fn() == '/nonexistent'
  finally:
    gin.clear_config()


# The trainable parameter count of the network of every config that builds one, at full size
# (NUM_CLASSES = 6 where the config requires it), as the code before the network was composed
# of its parts (commit bd66d98, one 22-parameter factory) built them. The demo's since its
# third repeat: the small network's 2 repeats plus one more of 6 blocks, 101424 parameters
# (the count is linear in the repeats: 355620, 457044, 558468 for 2, 3, 4).
PARAMETER_COUNTS = {
    'demo/synthetic_small.gin': 355620 + 101424,
    'models/tdcnpp_base.gin': 9048835,
    'models/tdcnpp_learned_basis.gin': 9067009,
    'models/tdcnpp_paper.gin': 9443593,
    'models/tdcnpp_small.gin': 355620,
    'papers/waspaa2021/base.gin': 9443593,
    'papers/waspaa2021/mixit_m16_efficient.gin': 9971977,
    'papers/waspaa2021/mixit_m16_efficient_covariance.gin': 9971977,
    'papers/waspaa2021/mixit_m16_efficient_sparse_classification.gin': 9973525,
    'papers/waspaa2021/mixit_m16_efficient_sparse_covariance.gin': 9971977,
    'papers/waspaa2021/mixit_m16_efficient_sparse_l1l2.gin': 9971977,
    'papers/waspaa2021/mixit_m16_efficient_sparse_l1l2_proxy.gin': 9971977,
    'papers/waspaa2021/mixit_m16_efficient_sparse_lp.gin': 9971977,
    'papers/waspaa2021/mixit_m32_efficient.gin': 11028745,
    'papers/waspaa2021/mixit_m32_efficient_sparse_l1l2.gin': 11028745,
    'papers/waspaa2021/mixit_m4_efficient.gin': 9179401,
    'papers/waspaa2021/mixit_m4_efficient_sparse_l1l2.gin': 9179401,
    'papers/waspaa2021/mixit_m4_exhaustive.gin': 9179401,
    'papers/waspaa2021/mixit_m8_efficient.gin': 9443593,
    'papers/waspaa2021/mixit_m8_efficient_classification.gin': 9445141,
    'papers/waspaa2021/mixit_m8_efficient_covariance.gin': 9443593,
    'papers/waspaa2021/mixit_m8_efficient_sparse_covariance.gin': 9443593,
    'papers/waspaa2021/mixit_m8_efficient_sparse_l1l2.gin': 9443593,
    'papers/waspaa2021/mixit_m8_efficient_sparse_l1l2_proxy.gin': 9443593,
    'papers/waspaa2021/mixit_m8_efficient_sparse_lp.gin': 9443593,
    'papers/waspaa2021/mixit_m8_exhaustive.gin': 9443593,
    'papers/waspaa2021/mixit_m8_exhaustive_sparse_l1l2.gin': 9443593,
    'papers/waspaa2021/semi_supervised_m8_efficient_sparse.gin': 9443593,
    'papers/waspaa2021/supervised_fuss_m4.gin': 9179401,
    'papers/waspaa2021/wild_m16_efficient_sparse.gin': 9971977,
    'papers/waspaa2021/wild_m8_efficient_sparse.gin': 9443593,
    'real_audio/workbench_small.gin': 355620,
}


def test_every_network_config_is_pinned():
  building = {f for f in GIN_FILES if not f.startswith(('datasets/', 'losses/', 'optimization/'))}
  assert building == set(PARAMETER_COUNTS)


@pytest.mark.parametrize('gin_file', sorted(PARAMETER_COUNTS))
def test_configs_build_the_same_network_as_before(gin_file):
  _parse(gin_file)
  try:
    network = model_lib.build_network()
    assert sum(int(np.prod(v.shape)) for v in network.trainable_variables) == \
        PARAMETER_COUNTS[gin_file]
  finally:
    gin.clear_config()


def test_paper_configs_choose_the_data_source_their_names_say():
  """The training data of each paper config is the source object its name says."""
  for gin_file in PAPER_FILES:
    _parse(gin_file)
    try:
      stem = pathlib.Path(gin_file).stem
      source = gin.get_bindings('train_data')['source']
      expected = (sources.FussSources if stem.startswith('supervised') else
                  sources.SemiSupervised if stem.startswith('semi_supervised') else
                  sources.WildMixtures if stem.startswith('wild') else sources.FussMixtures)
      assert type(source) is expected, gin_file
    finally:
      gin.clear_config()


OLD_CONFIGS = pathlib.Path(__file__).parent / 'fixtures' / 'configs_before_sources'
OLD_NAMES = old_train_data.NEW_BINDINGS


@pytest.mark.parametrize('old,new,params', [
    ('semi_supervised.gin', 'papers/waspaa2021/semi_supervised_m8_efficient_sparse.gin', []),
    ('wild.gin', 'papers/waspaa2021/wild_m8_efficient_sparse.gin',
     ["WILD_SOURCE = '/data/recordings'", 'wild_mixtures.skip_bad = True']),
    ('supervised.gin', 'papers/waspaa2021/supervised_fuss_m4.gin', []),
])
def test_configs_written_before_the_sources_still_parse_and_build(tmp_path, old, new, params):
  """A model dir's config.gin of the code before the data sources, the network parts and the
  gin-configured loss settings (bindings `train_data.mode`, `train_data.data_root`, ...;
  `network.*`; `trainer.*`) is read as the shipped config of its recipe is: same network,
  same loss settings, same data source."""
  model_dir = tmp_path / 'run'
  model_dir.mkdir()
  (model_dir / 'config.gin').write_text((OLD_CONFIGS / old).read_text())
  tiny = ['network.bottleneck = 16', 'network.conv_channels = 32', 'network.num_repeats = 1',
          'network.num_dilations = 2', 'network.skip_from = []', 'network.skip_to = []']
  built = []
  for parse in (lambda: gin_config.parse_model_dir(str(model_dir)),
                lambda: gin_config.parse([new], ["DATA_ROOT = '/data/fuss_dev'",
                                                 'NUM_SOURCES = 4'] + tiny + params)):
    parse()
    try:
      network = model_lib.build_network()
      settings = trainer_lib.LossSettings()
      bindings = gin.get_bindings('train_data')
      source = inputs_lib.chosen_source(**{k: v for k, v in bindings.items()
                                           if k == 'source' or k in OLD_NAMES})
      built.append((network.get_config(), settings, source))
    finally:
      gin.clear_config()
  assert built[0] == built[1]

