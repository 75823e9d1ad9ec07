"""mixit/owned_files.py: what a command wrote is recorded, `--overwrite` deletes exactly that,
the records earlier versions wrote are still read, and writes are atomic.

The expectations are written out by hand: the JSON texts below are byte for byte what the
code before `mixit/owned_files.py` wrote (training's `mixit_run.json`, `mixit-export`'s
`mixit_export.json`, `mixit-separate`'s `.mixit_separate.json`, `mixit-evaluate`'s
`.mixit_evaluate.json`), including the versions without their newer fields.
"""
import json
import os
import time

import gin
import pytest
import tensorflow as tf

from eval import fuss
from mixit import owned_files
from mixit.serving import export
from mixit.serving import separate
from mixit.training import model_dir as model_dir_lib

# --------------------------------------------------------------------------------------------
# The records as the code before this module wrote them.

STARTED = 1_700_000_000.25
# mixit/training/loop.py: json.dumps({...}, indent=1) + '\n'; the first version had no
# "started".
RUN_V2 = json.dumps({'format': 'mixit-run-manifest', 'started': STARTED,
                     'files': ['config.gin', 'operative_config.gin', 'train/events.out.tfevents.1',
                               'ckpt-2.index', 'ckpt-2.data-00000-of-00001', 'checkpoint']},
                    indent=1) + '\n'
RUN_V1 = json.dumps({'format': 'mixit-run-manifest',
                     'files': ['config.gin', 'ckpt-2.index', 'ckpt-2.data-00000-of-00001',
                               'checkpoint']}, indent=1) + '\n'
# mixit/serving/export.py: json.dump(metadata, f, indent=2); before "files" (and the model
# card) the metadata had no list of files.
_EXPORT_METADATA = {
    'format': 'mixit-separation-savedmodel', 'format_version': 1, 'sample_rate': 16000,
    'num_sources': 4, 'num_classes': 0, 'signature': 'serving_default',
    'input': 'mixture_waveform', 'output': 'separated_waveforms', 'model_dir': '/runs/m',
    'checkpoint': '/runs/m/ckpt-6', 'step': 6, 'num_parameters': 1234,
    'tensorflow_version': '2.16.1', 'created': '2026-12-01T10:00:00+00:00',
    'verified_max_abs_difference': 1e-07}
EXPORT_V1 = json.dumps(_EXPORT_METADATA, indent=2)
EXPORT_V2 = json.dumps(dict(_EXPORT_METADATA, model_card='README.md', files=[
    'README.md', 'fingerprint.pb', 'mixit_export.json', 'saved_model.pb',
    'variables/variables.data-00000-of-00001', 'variables/variables.index']), indent=2)
# mixit/serving/separate.py: json.dump({...}, f, indent=1, sort_keys=True).
SEPARATE = json.dumps({'format': 'mixit-separate-record', 'inputs': {
    'bird': {'input': '/data/bird.wav', 'num_sources': 4, 'dropped': [3],
             'outputs': ['bird_source0.wav', 'bird_source1.wav', 'bird_source2.wav']},
    'frog': {'input': '/data/frog.flac', 'num_sources': 4, 'dropped': [],
             'outputs': ['frog_source0.wav', 'frog_source1.wav', 'frog_source2.wav',
                         'frog_source3.wav']}}}, indent=1, sort_keys=True)
# eval/fuss.py: json.dump({...}, f, indent=1).
REPORT = json.dumps({'format': 'mixit-evaluate-record', 'files': [
    'msi_vs_1s.png', 'over_separation.png', 'scores.csv', 'scores_mixture.csv',
    'separation_counts.png', 'sisnri_per_count.png', 'summary.json', 'summary.txt']}, indent=1)


def _write(path, text='x', mtime=None):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    f.write(text)
  if mtime is not None:
    os.utime(path, (mtime, mtime))
  return path


def _files(folder):
  found = []
  for root, _, names in os.walk(folder):
    found.extend(os.path.relpath(os.path.join(root, n), folder).replace(os.sep, '/')
                 for n in names)
  return sorted(found)


# --------------------------------------------------------------------------------------------
# Atomic writes.


def test_write_atomically_replaces_text_and_bytes(tmp_path):
  path = str(tmp_path / 'a.json')
  owned_files.write_atomically(path, 'old')
  owned_files.write_atomically(path, 'new')
  assert open(path).read() == 'new'
  owned_files.write_atomically(path, b'\x00\xff')
  assert open(path, 'rb').read() == b'\x00\xff'
  assert os.listdir(tmp_path) == ['a.json']


class _FailingFile:
  """A GFile whose write puts half the text on disk and then fails (a full disk, say)."""

  def __init__(self, path, mode):
    self._file = open(path, mode)

  def write(self, text):
    self._file.write(text[:len(text) // 2])
    self._file.flush()
    raise OSError('No space left on device')

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self._file.close()


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
  path = str(tmp_path / 'config.gin')
  owned_files.write_atomically(path, 'the old config\n')
  with monkeypatch.context() as patch:
    patch.setattr(tf.io.gfile, 'GFile', _FailingFile)
    with pytest.raises(OSError, match='No space left'):
      owned_files.write_atomically(path, 'the new config, longer than the old one\n')
  assert open(path).read() == 'the old config\n'
  assert os.listdir(tmp_path) == ['config.gin']
  # Nothing is in the way of the retry.
  owned_files.write_atomically(path, 'the new config\n')
  assert open(path).read() == 'the new config\n'
  assert os.listdir(tmp_path) == ['config.gin']


def test_a_rename_that_fails_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
  folder = str(tmp_path)
  record = owned_files.Record(folder, owned_files.RUN)
  record.add(['ckpt-1.index'])
  before = open(os.path.join(folder, 'mixit_run.json')).read()

  def rename(*args, **kwargs):
    raise tf.errors.UnavailableError(None, None, 'the bucket went away')

  with monkeypatch.context() as patch:
    patch.setattr(tf.io.gfile, 'rename', rename)
    with pytest.raises(tf.errors.UnavailableError):
      owned_files.Record(folder, owned_files.RUN).add(['ckpt-2.index'])
  assert open(os.path.join(folder, 'mixit_run.json')).read() == before
  assert os.listdir(folder) == ['mixit_run.json']
  owned_files.Record(folder, owned_files.RUN).add(['ckpt-2.index'])
  assert json.load(open(os.path.join(folder, 'mixit_run.json')))['files'] == [
      'ckpt-1.index', 'ckpt-2.index']


def test_temporary_names_are_the_ones_a_kill_leaves(tmp_path):
  # What the run's clean-up rule matches for a write killed before its rename.
  path = str(tmp_path / 'mixit_run.json')
  assert owned_files.temporary_path(path) == f'{path}.tmp-{os.getpid()}'
  assert model_dir_lib._RUN_FILES.fullmatch(f'mixit_run.json.tmp-{os.getpid()}')
  assert model_dir_lib._RUN_FILES.fullmatch('config.gin.tmp-123')
  assert not model_dir_lib._RUN_FILES.fullmatch('config.gin.tmp-mine')


def test_records_on_ram(ram_dir):
  folder = f'{ram_dir}/export'
  tf.io.gfile.makedirs(f'{folder}/variables')
  owned_files.write_atomically(f'{folder}/variables/variables.index', b'index')
  owned_files.write_atomically(f'{folder}/notes.txt', 'mine')
  owned_files.Record(folder, owned_files.EXPORT).write(
      ['variables/variables.index', 'mixit_export.json'], {'step': 3})
  assert owned_files.list_files(folder) == ['mixit_export.json', 'notes.txt',
                                            'variables/variables.index']
  record = owned_files.Record(folder, owned_files.EXPORT)
  assert record.data['step'] == 3 and record.owns('variables/variables.index')
  assert owned_files.remove_files(folder, record.files, empty_folders=['variables']) == [
      'variables/variables.index', 'mixit_export.json']
  assert tf.io.gfile.listdir(folder) == ['notes.txt']


# --------------------------------------------------------------------------------------------
# Recording and removing.


def test_files_are_recorded_in_the_layout_earlier_versions_wrote(tmp_path):
  folder = str(tmp_path)
  before = time.time()
  record = owned_files.Record(folder, owned_files.RUN)
  assert not record.exists and record.files is None
  record.add(['config.gin', 'ckpt-1.index'])
  record.add(['ckpt-1.index', 'train/events.out.tfevents.1'])
  text = open(os.path.join(folder, 'mixit_run.json')).read()
  data = json.loads(text)
  assert list(data) == ['format', 'started', 'files']
  assert before <= data['started'] <= time.time()
  assert text == json.dumps({'format': 'mixit-run-manifest', 'started': data['started'],
                             'files': ['config.gin', 'ckpt-1.index',
                                       'train/events.out.tfevents.1']}, indent=1) + '\n'
  again = owned_files.Record(folder, owned_files.RUN)
  assert again.files == ['config.gin', 'ckpt-1.index', 'train/events.out.tfevents.1']
  assert again.owns('ckpt-1.index') and not again.owns('ckpt-2.index')

  owned_files.Record(folder, owned_files.REPORT).write(['scores.csv', 'summary.json'])
  assert open(os.path.join(folder, '.mixit_evaluate.json')).read() == json.dumps(
      {'format': 'mixit-evaluate-record', 'files': ['scores.csv', 'summary.json']}, indent=1)

  separation = owned_files.Record(folder, owned_files.SEPARATION)
  separation.set_group('mix', ['mix_source0.wav'], input='/in/mix.wav', num_sources=2,
                       dropped=[1])
  assert open(os.path.join(folder, '.mixit_separate.json')).read() == json.dumps(
      {'format': 'mixit-separate-record', 'inputs': {'mix': {
          'input': '/in/mix.wav', 'num_sources': 2, 'outputs': ['mix_source0.wav'],
          'dropped': [1]}}}, indent=1, sort_keys=True)


def test_remove_files_deletes_exactly_the_recorded_files(tmp_path):
  folder = tmp_path / 'out'
  for name in ('a.csv', 'sub/b.csv', 'mine.txt', 'sub/mine.txt', 'c.csv/inside.txt'):
    _write(str(folder / name))
  outside = _write(str(tmp_path / 'outside.txt'))
  deleted = owned_files.remove_files(
      str(folder), ['a.csv', 'sub/b.csv', 'c.csv', 'missing.csv', '../outside.txt',
                    str(outside), 'sub/../mine.txt'], empty_folders=['sub', 'c.csv'])
  assert deleted == ['a.csv', 'sub/b.csv']
  assert _files(str(folder)) == ['c.csv/inside.txt', 'mine.txt', 'sub/mine.txt']
  assert os.path.exists(outside)
  # `keep` spares a user's file that took a recorded name; an emptied folder goes.
  deleted = owned_files.remove_files(str(folder), ['mine.txt', 'sub/mine.txt'],
                                     keep=lambda name, path: name == 'mine.txt',
                                     empty_folders=['sub'])
  assert deleted == ['sub/mine.txt']
  assert _files(str(folder)) == ['c.csv/inside.txt', 'mine.txt']
  assert not os.path.exists(folder / 'sub')


def test_unrecorded_files_are_the_commands_only_when_newer_than_the_record(tmp_path):
  folder = str(tmp_path)
  _write(os.path.join(folder, 'mixit_run.json'), RUN_V2)
  _write(os.path.join(folder, 'ckpt-9.index'), mtime=STARTED - 3600)  # a user's, older
  _write(os.path.join(folder, 'ckpt-8.index'), mtime=STARTED + 60)  # written, not recorded
  record = owned_files.Record(folder, owned_files.RUN)
  assert record.started == STARTED
  assert record.unrecorded(['ckpt-2.index', 'ckpt-8.index', 'ckpt-9.index']) == (
      ['ckpt-8.index'], ['ckpt-9.index'])
  # A manifest without "started" (the first version) claims nothing it did not record.
  _write(os.path.join(folder, 'mixit_run.json'), RUN_V1)
  assert owned_files.Record(folder, owned_files.RUN).unrecorded(
      ['ckpt-8.index', 'ckpt-9.index']) == ([], ['ckpt-8.index', 'ckpt-9.index'])


@pytest.mark.parametrize('spec, text', [
    (owned_files.RUN, '{"format": "mixit-run-manifest"}'),
    (owned_files.RUN, '{"format": "mixit-run-manifest", "started": "soon", "files": []}'),
    (owned_files.RUN, '[1, 2]'),
    (owned_files.SEPARATION, '{"format": "something-else", "inputs": {}}'),
    (owned_files.SEPARATION, '{"format": "mixit-separate-record", "inputs": {"a": {}}}'),
    (owned_files.REPORT, '{"format": "mixit-evaluate-record", "files": "scores.csv"}'),
    (owned_files.REPORT, 'not json'),
])
def test_a_file_that_is_not_a_record_is_refused_naming_it(tmp_path, spec, text):
  _write(str(tmp_path / spec.filename), text)
  with pytest.raises(ValueError, match=f'{spec.filename}: not a {spec.description}'):
    owned_files.Record(str(tmp_path), spec)


# --------------------------------------------------------------------------------------------
# The records of earlier versions, through the commands that read them.


def _model_dir(folder, manifest):
  """A model dir of an earlier run (the files a run writes, the manifest `manifest`) with a
  user's files beside them."""
  run = ['checkpoint', 'config.gin', 'operative_config.gin', 'ckpt-2.index',
         'ckpt-2.data-00000-of-00001', 'train/events.out.tfevents.1']
  for name in run:
    _write(os.path.join(folder, name), "network.num_sources = 4\n" if name.endswith('.gin')
           else 'x', mtime=STARTED + 10)
  if manifest is not None:
    _write(os.path.join(folder, 'mixit_run.json'), manifest, mtime=STARTED + 10)
  _write(os.path.join(folder, 'notes.txt'), 'mine', mtime=STARTED + 10)
  _write(os.path.join(folder, 'ckpt-notes.txt'), 'mine', mtime=STARTED + 10)
  return run


@pytest.mark.parametrize('manifest', ['v2', 'v1', None])
def test_overwrite_of_a_run_deletes_what_the_run_recorded(tmp_path, manifest):
  folder = str(tmp_path / 'model')
  _model_dir(folder, {'v2': RUN_V2, 'v1': RUN_V1, None: None}[manifest])
  # Killed between writing and recording: a checkpoint and a temporary manifest, newer
  # than the run's start; a user's file named like a checkpoint, older than it.
  _write(os.path.join(folder, 'ckpt-4.index'), mtime=STARTED + 20)
  _write(os.path.join(folder, 'mixit_run.json.tmp-4242'), mtime=STARTED + 20)
  _write(os.path.join(folder, 'ckpt-1.index'), 'my own index', mtime=STARTED - 3600)
  gin.clear_config()
  try:
    if manifest is not None:
      # With a manifest the user's ckpt-1.index is kept, and the command says so.
      with pytest.raises(ValueError, match=r'still holds checkpoints that no run recorded '
                                           r'\(.*\bckpt-1\b'):
        model_dir_lib.prepare_model_dir(folder, overwrite=True)
    else:
      assert model_dir_lib.prepare_model_dir(folder, overwrite=True) is False
  finally:
    gin.clear_config()
  expected = {
      # v2 records the run's start: the newer unrecorded files were the run's.
      'v2': ['ckpt-1.index', 'ckpt-notes.txt', 'notes.txt'],
      # v1 did not: the unrecorded files stay (operative_config.gin and the events file
      # were not in that manifest either).
      'v1': ['ckpt-1.index', 'ckpt-4.index', 'ckpt-notes.txt', 'mixit_run.json.tmp-4242',
             'notes.txt', 'operative_config.gin', 'train/events.out.tfevents.1'],
      # Without a manifest: every file named as a run names them.
      None: ['ckpt-notes.txt', 'notes.txt'],
  }[manifest]
  assert _files(folder) == expected
  assert open(os.path.join(folder, 'notes.txt')).read() == 'mine'


def _export_dir(folder, record):
  names = ['saved_model.pb', 'fingerprint.pb', 'variables/variables.index',
           'variables/variables.data-00000-of-00001']
  for name in names:
    _write(os.path.join(folder, name))
  _write(os.path.join(folder, 'mixit_export.json'), record)
  _write(os.path.join(folder, 'notes.txt'), 'mine')
  _write(os.path.join(folder, 'variables', 'mine.txt'), 'mine too')


@pytest.mark.parametrize('version', ['v2', 'v1', 'unreadable'])
def test_overwrite_of_an_export_deletes_what_the_export_wrote(tmp_path, version):
  folder = str(tmp_path / 'export')
  _export_dir(folder, {'v2': EXPORT_V2, 'v1': EXPORT_V1, 'unreadable': EXPORT_V2[:40]}[version])
  if version == 'v2':
    _write(os.path.join(folder, 'README.md'), 'my own readme')  # replaced the card: kept
  export._prepare_output_dir(folder, overwrite=True)
  expected = ['notes.txt', 'variables/mine.txt']
  if version == 'v2':
    expected = ['README.md'] + expected
  assert _files(folder) == expected


def test_old_export_records_are_read_by_the_loader_and_the_exporter(tmp_path):
  folder = str(tmp_path)
  _write(os.path.join(folder, 'mixit_export.json'), EXPORT_V1)
  record = owned_files.Record(folder, owned_files.EXPORT)
  assert record.exists and record.files is None and record.data['num_sources'] == 4
  _write(os.path.join(folder, 'mixit_export.json'), EXPORT_V2)
  record = owned_files.Record(folder, owned_files.EXPORT)
  assert record.owns('variables/variables.index') and record.data['model_card'] == 'README.md'


def test_old_separate_records_are_read_by_separate_and_the_evaluator(tmp_path):
  folder = str(tmp_path / 'separated')
  _write(os.path.join(folder, '.mixit_separate.json'), SEPARATE)
  _write(os.path.join(folder, 'bird_source3.wav'))  # dropped: not recorded, not ours
  record = separate.OutputRecord(folder)
  assert record.owns(os.path.join(folder, 'bird_source2.wav'))
  assert record.owns(os.path.join(folder, 'frog_source3.wav'))
  assert not record.owns(os.path.join(folder, 'bird_source3.wav'))
  assert record.outputs_of('bird') == [os.path.join(folder, f'bird_source{i}.wav')
                                       for i in range(3)]
  assert separate.Records().owns(os.path.join(folder, 'frog_source0.wav'))
  entries = fuss.read_separate_record(folder)
  assert sorted(entries) == ['bird', 'frog']
  assert entries['bird']['num_sources'] == 4 and entries['bird']['dropped'] == [3]
  # A new entry keeps the others and the layout.
  record.set('cat', os.path.join(folder, 'cat.wav'), 2, [os.path.join(folder, 'cat_source0.wav')],
             [1])
  data = json.load(open(os.path.join(folder, '.mixit_separate.json')))
  assert data['inputs']['frog'] == json.loads(SEPARATE)['inputs']['frog']
  assert data['inputs']['cat'] == {'input': os.path.join(folder, 'cat.wav'), 'num_sources': 2,
                                   'outputs': ['cat_source0.wav'], 'dropped': [1]}
  # Another tool's file of that name is refused, in both readers.
  _write(os.path.join(folder, '.mixit_separate.json'), '{"format": "other", "inputs": {}}')
  with pytest.raises(ValueError, match='not a mixit-separate record'):
    separate.OutputRecord(folder)
  with pytest.raises(ValueError, match='not a mixit-separate record'):
    fuss.read_separate_record(folder)
  assert fuss.read_separate_record(str(tmp_path)) == {}


def test_old_report_records_let_overwrite_remove_only_the_report(tmp_path):
  folder = str(tmp_path / 'report')
  recorded = json.loads(REPORT)['files']
  for name in recorded + ['my_notes.txt', 'scores_oracle_binary_mask.csv.bak']:
    _write(os.path.join(folder, name))
  _write(os.path.join(folder, '.mixit_evaluate.json'), REPORT)
  with pytest.raises(FileExistsError, match='already holds a report'):
    fuss.check_output_dir(folder)
  assert sorted(fuss.check_output_dir(folder, overwrite=True)) == sorted(
      recorded + ['.mixit_evaluate.json'])
  # A report file the record does not list is a user's: refused, nothing removed.
  _write(os.path.join(folder, 'scores_oracle_binary_mask.csv'), 'mine')
  with pytest.raises(ValueError, match='scores_oracle_binary_mask.csv was not written by '
                                       'mixit-evaluate'):
    fuss.check_output_dir(folder, overwrite=True)
  # A report older than the record: ours when its summary is a FUSS summary.
  legacy = str(tmp_path / 'legacy')
  _write(os.path.join(legacy, 'summary.json'),
         json.dumps({'msi': 1.0, 'per_count': {}, 'num_examples': 2}))
  _write(os.path.join(legacy, 'scores.csv'))
  _write(os.path.join(legacy, 'my_notes.txt'))
  assert sorted(fuss.check_output_dir(legacy, overwrite=True)) == ['scores.csv', 'summary.json']


def test_concurrent_writers_add_parts_that_every_reader_merges(tmp_path):
  """mixit-separate-beam's workers: one part per input, written by its own worker; readers
  (mixit-separate, mixit-evaluate) see them merged; one writer folds them in at the end."""
  folder = str(tmp_path / 'separated')
  _write(os.path.join(folder, '.mixit_separate.json'), SEPARATE)
  # Two workers, each with the record as it was when it started (read once, no parts).
  first = separate.OutputRecord(folder, shared=True)
  second = separate.OutputRecord(folder, shared=True)
  first.set('cat', os.path.join(folder, 'cat.wav'), 2,
            [os.path.join(folder, 'cat_source0.wav'), os.path.join(folder, 'cat_source1.wav')],
            [])
  second.claim('dog', os.path.join(folder, 'dog.wav'), 2,
               [os.path.join(folder, f'dog_source{i}.wav') for i in range(2)])
  second.set('bird', os.path.join(folder, 'bird.wav'), 2,
             [os.path.join(folder, 'bird_source0.wav')], [1])
  assert json.load(open(os.path.join(folder, '.mixit_separate.json'))) == json.loads(SEPARATE)
  parts = os.path.join(folder, '.mixit_separate.parts')
  assert sorted(os.listdir(parts)) == ['bird.json', 'cat.json', 'dog.json']
  # Readers: finished parts replace or add entries; a pending one only claims its files.
  for entries in (fuss.read_separate_record(folder), separate.OutputRecord(folder).inputs):
    assert sorted(entries) == ['bird', 'cat', 'frog']
    assert entries['bird']['num_sources'] == 2 and entries['cat']['dropped'] == []
  reader = separate.OutputRecord(folder)
  assert reader.owns(os.path.join(folder, 'dog_source1.wav'))
  assert reader.owns(os.path.join(folder, 'bird_source2.wav'))  # the earlier bird output
  assert reader.outputs_of('bird') == [os.path.join(folder, f'bird_source{i}.wav')
                                       for i in range(3)]
  assert reader.state('dog', 2) == 'incomplete' and reader.state('cat', 2) == 'incomplete'
  assert reader.state('cat', 3) == 'other' and reader.state('owl', 2) == 'new'
  for name in ('cat_source0.wav', 'cat_source1.wav'):
    _write(os.path.join(folder, name))
  assert separate.OutputRecord(folder).state('cat', 2) == 'complete'
  # A worker's view of another input's part is read when it needs it.
  assert first.owns(os.path.join(folder, 'dog_source0.wav'))
  # The end of the run: the finished parts go into the record; the pending one stays.
  record = owned_files.Record(folder, owned_files.SEPARATION)
  assert record.merge_parts() == ['bird', 'cat']
  data = json.load(open(os.path.join(folder, '.mixit_separate.json')))
  assert sorted(data['inputs']) == ['bird', 'cat', 'frog']
  assert data['inputs']['frog'] == json.loads(SEPARATE)['inputs']['frog']
  assert os.listdir(parts) == ['dog.json']
  # mixit-separate recording an input folds its part in too; the parts folder goes.
  separate.OutputRecord(folder).set('dog', os.path.join(folder, 'dog.wav'), 2,
                                    [os.path.join(folder, 'dog_source0.wav')], [1])
  assert not os.path.exists(parts)
  assert sorted(fuss.read_separate_record(folder)) == ['bird', 'cat', 'dog', 'frog']
  # Many parts are read and removed on threads; none is lost.
  writer = owned_files.Record(folder, owned_files.SEPARATION, read_parts=False)
  for i in range(20):
    writer.write_part(f'n{i:02d}', [f'n{i:02d}_source0.wav'], input=f'n{i}.wav', num_sources=1,
                      dropped=[])
  assert len(owned_files.Record(folder, owned_files.SEPARATION).parts) == 20
  assert len(writer.merge_parts()) == 20 and not os.path.exists(parts)
  assert len(fuss.read_separate_record(folder)) == 24
  # A file in the parts folder that is not a part is refused, naming it.
  _write(os.path.join(parts, 'owl.json'), '{"format": "other"}')
  with pytest.raises(ValueError, match='owl.json: not a part of a mixit-separate record'):
    separate.OutputRecord(folder)
