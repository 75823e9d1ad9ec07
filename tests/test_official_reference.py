"""Imported official checkpoints against a float64 reference, at random input lengths.

`official_reference.OfficialReference` runs the official TDCN++ of a fixture in
float64 from its variable names. With `float32_sums=True` it keeps the one
float32 rounding that shapes the official outputs: the sequential float32 sums
of the STFT feature normalisation (TF's FusedBatchNorm kernel). The fixture's
official output validates the reference; the reference then stands in for the
official code at lengths the fixtures do not have.
"""
import numpy as np
import pytest
import tensorflow as tf

from mixit import import_official
from mixit import model
import official_reference
# The fixtures' folder and reader, the variants, the error measure and the autouse gin reset.
from test_import_official import clear_gin  # noqa: F401
from test_import_official import FIXTURES, VARIANTS, relative_error
from test_import_official import reference as fixture_io

STFT_VARIANTS = VARIANTS[:2]
# Measured (2-core CPU, TF 2.21): <= 1.1e-6 for every variant and length tried.
TOLERANCE = 1e-5


def random_lengths(seed, ranges=((200, 4000), (4000, 20000), (20000, 48000))):
  rng = np.random.default_rng(seed)
  return [int(rng.integers(low, high)) for low, high in ranges]


def random_mixture(length, seed):
  # About the level of the fixtures' mixtures (std 0.17).
  return (0.17 * np.random.default_rng(seed).standard_normal(length)).astype(np.float32)


def imported_network(variant, input_feature_norm=None):
  values = import_official.read_checkpoint(str(FIXTURES / variant / 'model.ckpt'))
  found, settings = import_official.infer_settings(values)
  if input_feature_norm is not None:
    settings['input_feature_norm'] = input_feature_norm
  network = model.build_network(**settings)
  import_official.assign_official(network, found, values)
  return network


def separate(network, mixture):
  return network(tf.constant(mixture[None]))['separated_waveforms'].numpy()[0]


@pytest.mark.parametrize('variant', VARIANTS)
def test_the_reference_reproduces_the_official_output(variant):
  reference = official_reference.OfficialReference(FIXTURES / variant)
  mixture, separated = fixture_io(variant)
  official_sums = reference.separate(mixture, float32_sums=True)
  assert official_sums.shape == separated.shape
  # Measured: 1.1e-6 (fuss_baseline), 6.9e-7 (train_stft), 1.1e-6 (mixit_neurips2020).
  assert relative_error(official_sums, separated) < 3e-6
  if variant in STFT_VARIANTS:
    # Exact sums land further from the official output (4.2e-6, 2.8e-6): the
    # float32 sums of the feature normalisation are what the official code loses.
    exact = reference.separate(mixture)
    assert relative_error(exact, separated) > 2 * relative_error(official_sums, separated)


@pytest.mark.parametrize('variant', VARIANTS)
def test_import_matches_the_reference_at_random_lengths(variant, tmp_path):
  _, network = import_official.import_checkpoint(str(FIXTURES / variant / 'model.ckpt'),
                                                 str(tmp_path / 'model'))
  reference = official_reference.OfficialReference(FIXTURES / variant)
  for seed, length in enumerate(random_lengths(VARIANTS.index(variant))):
    mixture = random_mixture(length, seed)
    expected = reference.separate(mixture, float32_sums=True)
    actual = separate(network, mixture)
    assert actual.shape == expected.shape
    assert relative_error(actual, expected) < TOLERANCE, length


@pytest.mark.parametrize('variant', STFT_VARIANTS)
def test_plain_feature_norm_matches_the_exact_reference(variant):
  """Without the official kernel, the same weights compute the exact result (to
  float32), which the official outputs miss by up to ~5e-5 at these lengths."""
  network = imported_network(variant, 'mean_and_variance')
  reference = official_reference.OfficialReference(FIXTURES / variant)
  for seed, length in enumerate(random_lengths(10 + VARIANTS.index(variant))):
    mixture = random_mixture(length, seed)
    assert relative_error(separate(network, mixture), reference.separate(mixture)) < TOLERANCE


# A few seconds each: 100k-200k samples (6-12 s at 16 kHz).
@pytest.mark.parametrize('variant', VARIANTS)
def test_import_matches_the_reference_on_long_inputs(variant):
  network = imported_network(variant)
  reference = official_reference.OfficialReference(FIXTURES / variant)
  for seed, length in enumerate(random_lengths(20, ((100000, 200000),))):
    mixture = random_mixture(length, seed)
    expected = reference.separate(mixture, float32_sums=True)
    assert relative_error(separate(network, mixture), expected) < TOLERANCE, length
