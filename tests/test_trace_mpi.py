"""The task timeline: one Chrome trace of every task, merged on the head, and its PNG."""

import json
import subprocess
import sys

from conftest import HERE, ROOT, run_mpi


def test_trace_records_every_task_and_draws(tmp_path):
    path = tmp_path / 'trace.json'
    result = run_mpi([HERE / 'mpi_trace.py', path], n=3, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'SUMS [262144.0, 262144.0]' in result.stdout
    trace = json.loads(path.read_text())
    events = trace['traceEvents']
    tasks = [e for e in events if e['ph'] == 'X']
    names = {e['pid']: e['args']['name'] for e in events if e['name'] == 'process_name'}
    assert names == {0: 'head', 1: 'worker:1', 2: 'worker:2'}
    works = [t for t in tasks if t['name'] == 'Worker.work']
    assert sorted(t['pid'] for t in works) == [1, 2]              # one on each worker
    for t in works:
        assert t['dur'] >= 0.19e6                                  # slept 0.2 s inside
        assert t['args']['bytes_in'] >= 1 << 20                    # the 1 MiB argument
        assert 0 <= t['args']['submitted_us'] <= t['ts']          # submitted before it started
    out = {t['pid']: t['args']['bytes_out'] for t in works}
    assert out[1] >= 1 << 20 and out[2] == 0      # worker:1's result went to the consumer on 2
    uses = [t for t in tasks if t['name'] == 'Worker.use']
    remote_use = [t for t in uses if t['args']['bytes_in'] >= 1 << 20]
    assert len(uses) == 2 and len(remote_use) == 1                 # one dependency crossed ranks
    inits = [t for t in tasks if t['name'] == 'Worker.__init__']
    assert len(inits) == 2
    halfway = [e for e in events if e['name'] == 'halfway']
    assert len(halfway) == 2 and all(e['args']['fraction'] == 0.5 for e in halfway)
    assert len([e for e in events if e['name'] == 'submitted-here' and e['pid'] == 0]) == 2
    image = tmp_path / 'timeline.png'
    drawn = subprocess.run([sys.executable, '-m', 'mosaic_mpi.trace', str(path), '-o', str(image)],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert drawn.returncode == 0, drawn.stderr
    assert image.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'worker:1 ' in drawn.stdout and 'worker:2 ' in drawn.stdout


def test_drawing_a_file_that_is_not_a_trace_is_a_clear_error(tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text('[1, 2]')
    drawn = subprocess.run([sys.executable, '-m', 'mosaic_mpi.trace', str(bad)],
                           capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert drawn.returncode == 1 and 'not a Chrome Trace Event file' in drawn.stderr
