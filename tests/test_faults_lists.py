"""FUSS lists whose paths leave the dataset root are refused in one line (list, line, path),
unless the caller allows them; the training input and the evaluator refuse them too."""
import os

import numpy as np
import pytest
import soundfile

from data_pipeline import fuss

RATE = 8000


def _wav(path, seed=0):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  soundfile.write(path, 0.1 * np.random.default_rng(seed).standard_normal(RATE), RATE,
                  subtype='PCM_16')


@pytest.fixture(name='layout')
def fixture_layout(tmp_path):
  """<tmp>/data/root (the dataset) and <tmp>/data/elsewhere/x.wav (a real WAV outside it)."""
  root = tmp_path / 'data' / 'root'
  _wav(str(root / 'train' / 'ex_sources' / 'background0_sound.wav'))
  _wav(str(root / 'train' / 'ex.wav'))
  _wav(str(tmp_path / 'data' / 'elsewhere' / 'x.wav'))
  return root


def _list(root, *lines):
  path = root / 'train_example_list.txt'
  path.write_text('\n'.join(lines) + '\n')
  return str(path)


@pytest.mark.parametrize('bad', [
    '../elsewhere/x.wav',
    'train/../../elsewhere/x.wav',
    '../../../../../../../../etc/passwd',
])
def test_relative_paths_that_leave_the_root_are_refused(layout, bad):
  list_path = _list(layout, 'train/ex.wav\ttrain/ex_sources/background0_sound.wav',
                    f'train/ex.wav\t{bad}')
  with pytest.raises(ValueError) as raised:
    fuss.read_example_list(list_path, check_files=False)
  message = str(raised.value)
  assert '\n' not in message
  assert f'{list_path}:2:' in message and repr(bad) in message
  assert 'leaves the dataset root' in message


def test_absolute_path_elsewhere_is_refused_and_inside_is_kept(layout):
  outside = str(layout.parent / 'elsewhere' / 'x.wav')
  inside = str(layout / 'train' / 'ex.wav')
  with pytest.raises(ValueError, match='leaves the dataset root'):
    fuss.read_example_list(_list(layout, f'{inside}\t{outside}'))
  examples = fuss.read_example_list(_list(layout, f'{inside}\t{inside}'))
  assert examples[0].source_paths == (inside,)


def test_a_name_that_only_starts_like_the_root_is_outside(tmp_path):
  root = tmp_path / 'root'
  _wav(str(tmp_path / 'root2' / 'x.wav'))
  _wav(str(root / 'x.wav'))
  with pytest.raises(ValueError, match='leaves the dataset root'):
    fuss.read_example_list(_list(root, 'x.wav\t../root2/x.wav'))


def test_outside_paths_are_read_when_allowed(layout):
  list_path = _list(layout, 'train/ex.wav\t../elsewhere/x.wav')
  examples = fuss.read_example_list(list_path, allow_outside_root=True)
  assert os.path.normpath(examples[0].source_paths[0]) == str(layout.parent / 'elsewhere' / 'x.wav')


def test_dotdot_that_stays_inside_is_fine(layout):
  list_path = _list(layout, 'train/ex.wav\ttrain/../train/ex_sources/background0_sound.wav')
  assert len(fuss.read_example_list(list_path)) == 1


def test_training_input_refuses_the_list_unless_the_source_allows_it(layout):
  from data_pipeline import sources
  list_path = _list(layout, 'train/ex.wav\t../elsewhere/x.wav')
  with pytest.raises(ValueError, match=r'train_example_list.txt:1: path leaves'):
    fuss.load_examples(list_path)
  clips = sources.Clips(batch_size=1, num_mixtures=2, max_sources=4, sample_rate=RATE,
                        clip_seconds=0.5, random_crop=False, shuffle_buffer=1, gain_db=None,
                        labels=False, seed=0)
  with pytest.raises(ValueError, match='leaves the dataset root'):
    sources.FussMixtures(data_root=str(layout), split='train').stream(clips, seed=0)
  dataset, _ = sources.FussMixtures(data_root=str(layout), split='train',
                                    allow_outside_root=True).stream(clips, seed=0)
  assert next(iter(dataset))['num_sources'] == 1


def test_evaluator_refuses_the_list(layout, tmp_path):
  from eval import fuss as fuss_eval
  list_path = _list(layout, 'train/ex.wav\t../elsewhere/x.wav')
  with pytest.raises(ValueError, match='leaves the dataset root'):
    fuss_eval.evaluate_and_report(list_path, str(tmp_path / 'report'),
                                  separated_dir=str(tmp_path), progress=False)
  assert not os.path.exists(tmp_path / 'report' / 'summary.json')
