"""Files a command owns: the one implementation of "record what this command wrote into a
folder, and let `--overwrite` delete only that".

Every command that writes into a folder the user names lists what it wrote in a JSON record
in that folder (`RecordSpec`, one per command: `RUN` for training's model dir, `EXPORT` for
`mixit-export`, `SEPARATION` for each folder of `mixit-separate` outputs, `REPORT` for
`mixit-evaluate`). `Record` reads such a record (records of every earlier version included:
the file names and JSON layouts never change, and a field added later is optional), tells
which files it lists (`files`, `owns`), adds to it (`add`, `set_group`) or replaces it
(`write`); `remove_files` deletes the listed files and never anything else; a file named like
one of the command's but not recorded is the command's only when it is newer than the record
(`Record.unrecorded`: a command killed between writing a file and recording it).
`write_atomically` writes any file through a temporary file and a rename, so a kill or an
error leaves the old file or the new one, never a half-written one.

Concurrent writers (the workers of `mixit-separate-beam`) never rewrite a shared record: a
grouped record with `RecordSpec.parts` takes one part per group, a small JSON file in the
record's parts folder written atomically by the one writer of that group (`write_part`), and
a single writer at the end folds the parts into the record (`merge_parts`). Every reader
(`Record(folder, spec)`) sees the record with its parts merged, so a run killed before the
merge is still understood; a pending part (a group being written) makes its files the
command's without giving the group an entry.

Paths go through `tf.io.gfile` (local, gs://, ram://); names inside a folder are '/'-joined
relative paths. Imports TensorFlow and the standard library only (nothing of the package), so
every part of the package, eval included, may use it.

`FolderLock` holds a folder for one process (training's model dir, `LOCK_FILE`): a JSON file
with the holder's host and PID, created exclusively, removed on exit. A second holder is
refused in one line naming the first; a lock whose process is gone on this host is stale and
taken over with a warning. Readers (export, evaluate) never take it. On a local disk the
creation is atomic (O_CREAT | O_EXCL); on gs:// and other remote file systems it is a
check-then-write through `tf.io.gfile`, which catches runs started seconds apart, not two
started in the same instant, and a holder on another host is never judged stale.
"""
import concurrent.futures
import dataclasses
import datetime
import json
import os
import socket
import time
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

from absl import logging
import tensorflow as tf

# What `write_atomically` appends to a path for its temporary file (the PID of the writer).
TEMPORARY_SUFFIX = r'\.tmp-\d+'
# Clock and file-system slack when comparing a file's mtime with a record's start.
MTIME_SLACK_SECONDS = 2.0
# Threads that read or remove the parts of a record (`Record.merge_parts`).
PART_THREADS = 16


# ----------------------------------------------------------------------------------- writing

def temporary_path(path: str) -> str:
  """Where `write_atomically` writes `path` before renaming it (matches TEMPORARY_SUFFIX)."""
  return f'{path}.tmp-{os.getpid()}'


def _remove_quietly(path: str) -> None:
  try:
    if tf.io.gfile.exists(path):
      tf.io.gfile.remove(path)
  except (OSError, tf.errors.OpError):
    pass


def write_atomically(path: str, contents: Union[str, bytes]) -> None:
  """Writes `path` through a temporary file and a rename: a kill leaves the old or the new.

  When the write or the rename fails, the temporary file is removed (a kill cannot do
  that: a command's clean-up rules know the TEMPORARY_SUFFIX names) and the error raised;
  the old file is untouched.
  """
  path = os.fspath(path)
  temporary = temporary_path(path)
  try:
    with tf.io.gfile.GFile(temporary, 'wb' if isinstance(contents, bytes) else 'w') as f:
      f.write(contents)
    tf.io.gfile.rename(temporary, path, overwrite=True)
  except BaseException:
    _remove_quietly(temporary)
    raise


# ----------------------------------------------------------------------------------- folders

def list_files(folder: str, subfolders: Optional[Sequence[str]] = None) -> List[str]:
  """The files in `folder`, as sorted '/'-joined paths relative to it.

  `subfolders` None: every file below `folder`; a sequence: the files at its top level and
  those below the named subfolders only (a big folder of the user's is not walked).
  """
  folder = os.fspath(folder)
  if not tf.io.gfile.isdir(folder):
    return []
  if subfolders is None:
    found = []
    for root, _, names in tf.io.gfile.walk(folder):
      relative = os.path.relpath(root, folder).replace(os.sep, '/')
      found.extend(name if relative == '.' else f'{relative}/{name}' for name in names)
    return sorted(found)
  found = [name.rstrip('/') for name in tf.io.gfile.listdir(folder)
           if not tf.io.gfile.isdir(os.path.join(folder, name.rstrip('/')))]
  for sub in subfolders:
    found.extend(f'{sub}/{name}' for name in list_files(os.path.join(folder, sub)))
  return sorted(found)


def is_safe_name(name) -> bool:
  """Whether `name` is a relative path that stays inside its folder (no '..', not absolute)."""
  return (isinstance(name, str) and bool(name) and not name.startswith('/') and '\\' not in name
          and '://' not in name and '..' not in name.split('/'))


def modified_since(path: str, started: Optional[float]) -> bool:
  """Whether the file `path` was modified after the Unix time `started` (less the slack)."""
  if started is None:
    return False
  return tf.io.gfile.stat(path).mtime_nsec / 1e9 >= started - MTIME_SLACK_SECONDS


def remove_files(folder: str, names: Iterable[str],
                 keep: Optional[Callable[[str, str], bool]] = None,
                 empty_folders: Sequence[str] = ()) -> List[str]:
  """Deletes the files `names` ('/'-joined, relative to `folder`) that exist, and nothing
  else; returns the names deleted.

  A folder is never deleted by name, nor is a name that leaves `folder` ('..', absolute).
  `keep(name, path)`: True spares that file (a user's file that took the name). The
  subfolders `empty_folders` are removed afterwards when they are empty.
  """
  folder = os.fspath(folder)
  deleted = []
  for name in dict.fromkeys(names):
    if not is_safe_name(name):
      continue
    path = os.path.join(folder, *name.split('/'))
    if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
      continue
    if keep is not None and keep(name, path):
      continue
    tf.io.gfile.remove(path)
    deleted.append(name)
  for sub in empty_folders:
    path = os.path.join(folder, sub)
    if tf.io.gfile.isdir(path) and not tf.io.gfile.listdir(path):
      tf.io.gfile.rmtree(path)
  return deleted


# ----------------------------------------------------------------------------------- records

@dataclasses.dataclass(frozen=True)
class RecordSpec:
  """The record one command keeps in its output folder (names and layout never change).

  Attributes:
    filename: the record's name in the folder.
    format: the value of its "format" key.
    description: what errors call it ('mixit run manifest').
    files_key: the key of the list of files.
    groups: for a record whose files are listed per group (`mixit-separate`: per input),
      the key of the `{group name: {files_key: [...], ...}}` mapping; None: one list at the
      top level.
    check_format: refuse a record whose "format" is another.
    lenient: an unreadable record, or one without a list of files (written before the list
      existed), lists nothing (`Record.files` None: the command's rule for older versions
      applies); otherwise either is a ValueError.
    indent, sort_keys, final_newline: the JSON layout written.
    parts: for a grouped record that concurrent writers add to, the subfolder holding one
      part per group (`<parts>/<group>.json`, `Record.write_part`) until a single writer
      folds them into the record (`Record.merge_parts`); None: no parts.
  """
  filename: str
  format: str
  description: str
  files_key: str = 'files'
  groups: Optional[str] = None
  check_format: bool = False
  lenient: bool = False
  indent: int = 1
  sort_keys: bool = False
  final_newline: bool = False
  parts: Optional[str] = None


# A training run's model dir: `{"format", "started": Unix time, "files": [...]}`; files are
# added as the run writes them (`Record.add`); `started` came in with it.
RUN = RecordSpec('mixit_run.json', 'mixit-run-manifest', 'mixit run manifest',
                 final_newline=True)
# `mixit-export`: the export's metadata (read by `mixit.serving.separator` too) with
# `files`; exports older than `files` have none (lenient).
EXPORT = RecordSpec('mixit_export.json', 'mixit-separation-savedmodel', 'mixit export record',
                    lenient=True, indent=2)
# `mixit-separate`, one per folder of outputs: `{"format", "inputs": {"<stem>": {"input",
# "num_sources", "outputs": [...], "dropped": [...]}}}` (`eval/fuss.py` reads it too). The
# workers of `mixit-separate-beam` write one part per input into `.mixit_separate.parts/`,
# folded into the record at the end of the run.
SEPARATION = RecordSpec('.mixit_separate.json', 'mixit-separate-record',
                        'mixit-separate record', files_key='outputs', groups='inputs',
                        check_format=True, sort_keys=True, parts='.mixit_separate.parts')
# `mixit-evaluate`: `{"format", "files": [...]}`.
REPORT = RecordSpec('.mixit_evaluate.json', 'mixit-evaluate-record', 'mixit-evaluate record')

SPECS = (RUN, EXPORT, SEPARATION, REPORT)


class Record:
  """The record `spec` of the files a command wrote into `folder` (read at construction).

  With `read_parts` (and a spec with parts), the parts folder is read too: `groups`, `files`
  and `owns` are those of the record with its parts merged (a finished part's entry replaces
  the record's; a pending part adds its files only). A writer that reads one group's part
  when it needs it (`read_part`: a worker of a concurrent run) passes False.

  Attributes:
    folder, spec, path: where it is and what it is.
    exists: a record file is there.
    data: its JSON object ({} when there is none, or an unreadable one of a lenient spec).

  Raises:
    ValueError: the record is not one of `spec` (unless `spec.lenient`).
  """

  def __init__(self, folder: str, spec: RecordSpec, read_parts: bool = True):
    self.folder = os.fspath(folder)
    self.spec = spec
    self.path = os.path.join(self.folder, spec.filename)
    self.exists = tf.io.gfile.exists(self.path)
    self.data = {}
    self._files = None
    self._parts = {}  # group name -> part, as read (`read_parts`, `read_part`) or written
    if self.exists:
      self._read()
    if read_parts and spec.parts:
      self._read_parts()

  def _read(self) -> None:
    try:
      with tf.io.gfile.GFile(self.path) as f:
        data = json.load(f)
      if not isinstance(data, dict):
        raise ValueError(f'a JSON {type(data).__name__}, not an object')
    except ValueError as e:
      if self.spec.lenient:
        return
      raise ValueError(f'{self.path}: not a {self.spec.description} ({e}); move it away') from e
    try:
      if self.spec.check_format and data.get('format') != self.spec.format:
        raise ValueError(f'format {data.get("format")!r}')
      if data.get('started') is not None:
        data['started'] = float(data['started'])
      files = self._listed(data)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
      if not self.spec.lenient:
        raise ValueError(f'{self.path}: not a {self.spec.description} ({e}); move it '
                         'away') from e
      files = None
    self.data = data
    self._files = files

  def _listed(self, data: dict) -> List[str]:
    """The safe names `data` lists; raises KeyError / TypeError when it lists none."""
    if self.spec.groups is None:
      lists = [data[self.spec.files_key]]
    else:
      lists = [entry[self.spec.files_key] for entry in dict(data[self.spec.groups]).values()]
    for names in lists:
      if not isinstance(names, list):
        raise TypeError(f'"{self.spec.files_key}" is a {type(names).__name__}, not a list')
    return [name for names in lists for name in names if is_safe_name(name)]

  @property
  def files(self) -> Optional[List[str]]:
    """The files recorded ('/'-joined, relative), or None when no record lists any."""
    if self._files is None and not self._parts:
      return None
    recorded = list(self._files or [])
    return recorded + [name for name in self._part_files() if name not in recorded]

  @property
  def started(self) -> Optional[float]:
    """When the command that created the record started (Unix time), if recorded."""
    return self.data.get('started')

  def owns(self, name: str) -> bool:
    """Whether the file `name` (relative to the folder) is recorded."""
    return (self._files is not None and name in self._files) or name in self._part_files()

  def unrecorded(self, names: Iterable[str]) -> Tuple[List[str], List[str]]:
    """Splits the names of `names` the record does not list into (those modified since the
    record started: written by the command, which was killed before recording them; the
    older ones: never the command's, e.g. a user's file with such a name)."""
    claimed, older = [], []
    for name in names:
      if self.owns(name):
        continue
      path = os.path.join(self.folder, *name.split('/'))
      (claimed if modified_since(path, self.started) else older).append(name)
    return claimed, older

  # ------------------------------------------------------------------------------ groups

  @property
  def groups(self) -> dict:
    """`{group name: entry}` of a grouped record ({} when there is none), finished parts
    included."""
    self._check_grouped(True)
    groups = dict(self.data.get(self.spec.groups, {}))
    groups.update({name: dict(part['entry']) for name, part in self._parts.items()
                   if not part['pending']})
    return groups

  def group(self, name: str) -> Optional[dict]:
    return self.groups.get(name)

  def group_files(self, name: str) -> List[str]:
    """The files of group `name` in the record and in its part (finished or pending), the
    record's first."""
    self._check_grouped(True)
    part = self._parts.get(name)
    entries = {}
    for key, entry in (('record', self.data.get(self.spec.groups, {}).get(name)),
                       ('part', part['entry'] if part else None)):
      if entry is not None:
        entries[key] = entry
    return list(dict.fromkeys(self._listed({self.spec.groups: entries}))) if entries else []

  def set_group(self, name: str, files: Sequence[str], **fields) -> None:
    """Records group `name` (its `files` and other `fields`), replacing its earlier entry,
    and saves the record."""
    self._check_grouped(True)
    entry = dict(fields)
    entry[self.spec.files_key] = list(files)
    groups = self.groups
    groups[name] = entry
    folded = [n for n, part in self._parts.items() if not part['pending']]
    self._set({'format': self.spec.format, **self.data, self.spec.groups: groups})
    # The finished parts are in the record now, and `name`'s part (finished or pending) is
    # replaced by its new entry.
    if self.spec.parts:
      self.remove_parts(set(folded) | {name})

  # ------------------------------------------------------------------------------ parts

  @property
  def parts_folder(self) -> str:
    self._check_parts()
    return os.path.join(self.folder, self.spec.parts)

  def part_path(self, name: str) -> str:
    """Where group `name`'s part is written (`<parts>/<name>.json`)."""
    if not is_safe_name(name) or '/' in name:
      raise ValueError(f'{self.spec.description}: {name!r} cannot name a part')
    return os.path.join(self.parts_folder, f'{name}.json')

  @property
  def parts(self) -> dict:
    """`{group name: {"group", "pending", "entry"}}`, the parts read or written."""
    return {name: dict(part) for name, part in self._parts.items()}

  def read_part(self, name: str) -> Optional[dict]:
    """Reads group `name`'s part afresh (a writer's view of its own group); None: none."""
    path = self.part_path(name)
    if not tf.io.gfile.exists(path):
      self._parts.pop(name, None)
      return None
    part = self._read_part_file(path)
    self._parts[name] = part
    return dict(part)

  def write_part(self, name: str, files: Sequence[str], pending: bool = False,
                 **fields) -> None:
    """Writes group `name`'s part (atomically): its `files` and other `fields`, like
    `set_group`; `pending`: the group is being written, its files are claimed but it gets no
    entry. Only the writer of group `name` writes its part, so concurrent writers of other
    groups lose nothing."""
    entry = dict(fields)
    entry[self.spec.files_key] = list(files)
    part = {'format': self.spec.format, 'group': name, 'pending': bool(pending),
            'entry': entry}
    self._check_part(part, name)
    tf.io.gfile.makedirs(self.parts_folder)
    text = json.dumps(part, indent=self.spec.indent, sort_keys=self.spec.sort_keys)
    write_atomically(self.part_path(name), text)
    self._parts[name] = part

  def merge_parts(self) -> List[str]:
    """Folds the finished parts into the record (the single writer at the end of a concurrent
    run): the record and every part are read afresh, the record is written with their entries
    (atomically), then those parts are removed. Pending parts stay. Returns the groups
    folded."""
    self._check_parts()
    fresh = Record(self.folder, self.spec)
    done = sorted(n for n, part in fresh._parts.items() if not part['pending'])
    if done:
      fresh._set({'format': self.spec.format, **fresh.data, self.spec.groups: fresh.groups})
      fresh.remove_parts(done)
    elif tf.io.gfile.isdir(fresh.parts_folder) and not tf.io.gfile.listdir(fresh.parts_folder):
      tf.io.gfile.rmtree(fresh.parts_folder)
    self.exists, self.data, self._files, self._parts = (fresh.exists, fresh.data, fresh._files,
                                                        fresh._parts)
    return done

  def remove_parts(self, names: Iterable[str]) -> None:
    """Removes the parts of `names` that exist (only those), then the parts folder when it is
    empty."""
    names = list(names)
    for name in names:
      self._parts.pop(name, None)
    _in_threads(_remove_quietly, [self.part_path(name) for name in names])
    folder = self.parts_folder
    if tf.io.gfile.isdir(folder) and not tf.io.gfile.listdir(folder):
      tf.io.gfile.rmtree(folder)

  def _read_parts(self) -> None:
    folder = self.parts_folder
    if not tf.io.gfile.isdir(folder):
      return
    # Only `<group>.json`: a temporary (`TEMPORARY_SUFFIX`) left by a kill is not a part.
    paths = [os.path.join(folder, filename) for filename in sorted(tf.io.gfile.listdir(folder))
             if filename.endswith('.json')]
    for part in _in_threads(self._read_part_file, paths):
      self._parts[part['group']] = part

  def _read_part_file(self, path: str) -> dict:
    try:
      with tf.io.gfile.GFile(path) as f:
        part = json.load(f)
      name = os.path.basename(path)[:-len('.json')]
      self._check_part(part, name)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
      raise ValueError(f'{path}: not a part of a {self.spec.description} ({e}); move it '
                       'away') from e
    return part

  def _check_part(self, part, name: str) -> None:
    if not isinstance(part, dict) or part.get('format') != self.spec.format:
      raise ValueError(f'format {part.get("format") if isinstance(part, dict) else None!r}')
    if part.get('group') != name or not isinstance(part.get('pending'), bool):
      raise ValueError(f'group {part.get("group")!r}, pending {part.get("pending")!r}')
    self._listed({self.spec.groups: {name: dict(part['entry'])}})

  def _part_files(self) -> List[str]:
    if not self._parts:
      return []
    return self._listed({self.spec.groups: {name: part['entry']
                                            for name, part in self._parts.items()}})

  def _check_parts(self) -> None:
    if not self.spec.parts:
      raise TypeError(f'{self.spec.description} has no parts')

  def _check_grouped(self, grouped: bool) -> None:
    if (self.spec.groups is not None) != grouped:
      raise TypeError(f'{self.spec.description} lists its files '
                      f'{"per group" if self.spec.groups else "in one list"}')

  # ------------------------------------------------------------------------------ writing

  def add(self, names: Iterable[str]) -> None:
    """Adds `names` to the record; a new record also gets `started` (now: before the command
    has written anything it could miss recording). Writes only when something is new."""
    self._check_grouped(False)
    files = self._files or []
    new = [name for name in dict.fromkeys(names) if name not in files]
    if not new and self._files is not None:
      return
    data = dict(self.data) if self._files is not None else {'format': self.spec.format,
                                                            'started': time.time()}
    data[self.spec.files_key] = files + new
    self._set(data)

  def write(self, files: Sequence[str], fields: Optional[dict] = None) -> None:
    """Replaces the record: "format", then `fields` (in their order), then `files`."""
    self._check_grouped(False)
    data = {'format': self.spec.format}
    data.update(fields or {})
    data[self.spec.files_key] = list(files)
    self._set(data)

  def _set(self, data: dict) -> None:
    files = self._listed(data)
    self.data, self._files = data, files
    self.save()

  def save(self) -> None:
    """Writes the record (atomically), creating the folder."""
    tf.io.gfile.makedirs(self.folder)
    text = json.dumps(self.data, indent=self.spec.indent, sort_keys=self.spec.sort_keys)
    write_atomically(self.path, text + ('\n' if self.spec.final_newline else ''))
    self.exists = True


def _in_threads(function: Callable, items: Sequence) -> list:
  """[function(item) for item in items], on threads when there are many: a part is a small
  file, and on a remote file system (gs://) reading or removing one is a round trip."""
  if len(items) < 8:
    return [function(item) for item in items]
  with concurrent.futures.ThreadPoolExecutor(PART_THREADS) as pool:
    return list(pool.map(function, items))


# -------------------------------------------------------------------------------------- lock

LOCK_FILE = 'mixit.lock'


class FolderLockedError(RuntimeError):
  """The folder is held by another live process."""


def _process_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # it exists, under another user
  return True


def _describe(holder: dict) -> str:
  return (f"PID {holder.get('pid')} on host {holder.get('host')} "
          f"(since {holder.get('started', '?')}, {holder.get('command', '?')})")


class FolderLock:
  """Holds `folder` for this process while a run writes into it (a context manager).

  `acquire()` creates `<folder>/mixit.lock` holding this process's host, PID, start time
  and command, or raises FolderLockedError naming the live holder. A lock left by a process
  that is gone (same host, no such PID) is taken over with a warning. `release()` removes
  the lock if it is still this process's.
  """

  def __init__(self, folder: str, command: str = 'mixit'):
    self.folder = os.fspath(folder)
    self.path = os.path.join(self.folder, LOCK_FILE)
    self.command = command
    self.held = False
    self._info = {'host': socket.gethostname(), 'pid': os.getpid(), 'command': command,
                  'started': datetime.datetime.now().isoformat(timespec='seconds')}

  def read(self) -> Optional[dict]:
    """The holder recorded in the lock file, None without one ({} if unreadable)."""
    if not tf.io.gfile.exists(self.path):
      return None
    try:
      with tf.io.gfile.GFile(self.path) as f:
        holder = json.load(f)
      return holder if isinstance(holder, dict) else {}
    except (ValueError, OSError, tf.errors.OpError):
      return {}

  def _local(self) -> bool:
    return '://' not in self.folder

  def _create(self) -> bool:
    """Creates the lock file exclusively; False when it exists."""
    text = json.dumps(self._info) + '\n'
    if self._local():
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        return False
      with os.fdopen(fd, 'w') as f:
        f.write(text)
      return True
    if tf.io.gfile.exists(self.path):
      return False
    write_atomically(self.path, text)
    return True

  def _stale(self, holder: dict) -> bool:
    if holder.get('host') != socket.gethostname():
      return False
    try:
      pid = int(holder.get('pid'))
    except (TypeError, ValueError):
      return False
    return pid != os.getpid() and not _process_alive(pid)

  def acquire(self) -> 'FolderLock':
    tf.io.gfile.makedirs(self.folder)
    for _ in range(3):
      if self._create():
        self.held = True
        return self
      holder = self.read()
      if holder is None:
        continue  # released between our look and our create: try again
      if holder and self._stale(holder):
        logging.warning('%s: taking over a stale lock of %s, which is no longer running',
                        self.path, _describe(holder))
        _remove_quietly(self.path)
        continue
      shown = _describe(holder) if holder else 'an unreadable lock file'
      raise FolderLockedError(
          f'{self.folder} is in use by {shown}: {self.path}. Wait for that run to end, or use '
          'another folder; if that run is gone (a crash on another host), delete the lock '
          'file')
    raise FolderLockedError(f'{self.folder}: could not take {self.path} (another process keeps '
                            'creating it)')

  def release(self) -> None:
    if not self.held:
      return
    self.held = False
    holder = self.read()
    if holder and holder.get('pid') == self._info['pid'] and \
        holder.get('host') == self._info['host']:
      _remove_quietly(self.path)

  def __enter__(self) -> 'FolderLock':
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()
