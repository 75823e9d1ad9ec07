"""The folder lock (mixit/owned_files.py): one holder at a time, named in the refusal; a stale
lock of a dead process on this host is taken over; readers never need it."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from mixit import owned_files

HOLD = '''
import sys, time
from mixit import owned_files
lock = owned_files.FolderLock(sys.argv[1], command='holder').acquire()
print('held', flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
'''


def test_second_holder_is_refused_naming_the_first(tmp_path):
  holder = subprocess.Popen([sys.executable, '-c', HOLD, str(tmp_path), '30'],
                            stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'held'
    with pytest.raises(owned_files.FolderLockedError) as raised:
      owned_files.FolderLock(str(tmp_path)).acquire()
    message = str(raised.value)
    assert f'PID {holder.pid}' in message and socket.gethostname() in message
    assert 'holder' in message and '\n' not in message
  finally:
    holder.kill()
    holder.wait()


def test_lock_is_released_and_can_be_taken_again(tmp_path):
  with owned_files.FolderLock(str(tmp_path), command='first') as lock:
    assert lock.held
    recorded = json.loads((tmp_path / owned_files.LOCK_FILE).read_text())
    assert recorded['pid'] == os.getpid() and recorded['command'] == 'first'
  assert not (tmp_path / owned_files.LOCK_FILE).exists()
  with owned_files.FolderLock(str(tmp_path)):
    pass


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
  dead = subprocess.Popen([sys.executable, '-c', 'pass'])
  dead.wait()
  (tmp_path / owned_files.LOCK_FILE).write_text(json.dumps(
      {'host': socket.gethostname(), 'pid': dead.pid, 'command': 'killed run'}))
  with caplog.at_level('WARNING'):
    with owned_files.FolderLock(str(tmp_path)) as lock:
      assert lock.held
  assert any('stale lock' in r.getMessage() and str(dead.pid) in r.getMessage()
             for r in caplog.records)


def test_a_lock_from_another_host_is_never_stale(tmp_path):
  (tmp_path / owned_files.LOCK_FILE).write_text(json.dumps(
      {'host': 'some-other-host', 'pid': 1, 'command': 'remote run'}))
  with pytest.raises(owned_files.FolderLockedError, match='some-other-host'):
    owned_files.FolderLock(str(tmp_path)).acquire()
  assert (tmp_path / owned_files.LOCK_FILE).exists()  # not ours: never removed


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path):
  lock = owned_files.FolderLock(str(tmp_path)).acquire()
  (tmp_path / owned_files.LOCK_FILE).write_text(json.dumps(
      {'host': 'other', 'pid': 1}))
  lock.release()
  assert (tmp_path / owned_files.LOCK_FILE).exists()


def test_exactly_one_of_many_racing_processes_gets_the_lock(tmp_path):
  race = '''
import sys, time
from mixit import owned_files
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
try:
  owned_files.FolderLock(sys.argv[1]).acquire()
  print('won', flush=True)
  time.sleep(3)
except owned_files.FolderLockedError:
  print('lost', flush=True)
'''
  start = time.time() + 4
  procs = [subprocess.Popen([sys.executable, '-c', race, str(tmp_path), str(start)],
                            stdout=subprocess.PIPE, text=True) for _ in range(4)]
  outcomes = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
  assert outcomes == ['lost', 'lost', 'lost', 'won']
