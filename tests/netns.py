"""Three "hosts" on this machine for multi-host MPI tests: Linux network namespaces on a bridge.

Recipe (verified, with its pitfalls): ``shared/recipes/multihost.md``. Each host is a network
namespace with one veth ``eth0`` (10.200.0.<i>/24) whose other end sits on a bridge in a namespace
of its own (nothing is added to the root namespace). Hydra (MPICH's mpiexec) runs inside the first
host and starts its proxies in every host (its own included) through a stand-in for ssh that
enters the namespace, with a UTS namespace of its own whose host name is the namespace's name (so
``MPI_Get_processor_name`` tells the hosts apart). ``UCX_TLS=tcp`` makes MPI use TCP between the
hosts: by default UCX recognises one machine and uses shared memory, and nothing crosses the veths.

Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN), ``ip`` (iproute2) and ``unshare`` (util-linux).
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, mpiexec

# Hydra calls its launcher as ``LAUNCHER [options] HOST "proxy command"``.
_NSEXEC = r'''#!/bin/sh
while [ "${1#-}" != "$1" ]; do shift; done
host=$1; shift
exec ip netns exec "$host" unshare --uts sh -c \
    'echo "$0" > /proc/sys/kernel/hostname && exec sh -c "$1"' "$host" "$*"
'''


class Hosts:
    """Three namespaces ``<prefix>1..3`` (the hosts) and ``<prefix>s`` (the bridge).

    Parameters
    ----------
    workdir : pathlib.Path
        Where the launcher stand-in is written.
    prefix : str
        Start of the namespace names (names are global to the machine: concurrent sessions need
        distinct prefixes). At most 9 characters (veth names have at most 15).
    """

    def __init__(self, workdir, prefix):
        self.prefix = prefix
        self.names = [f'{prefix}{i}' for i in (1, 2, 3)]
        self.switch = f'{prefix}s'
        self.nsexec = Path(workdir) / 'nsexec'

    def up(self):
        """Create the namespaces and the bridge.

        Raises
        ------
        OSError
            If a namespace cannot be made (the message has ``ip``'s error).
        """
        for tool in ('ip', 'unshare'):
            if shutil.which(tool) is None:
                raise OSError(f'`{tool}` is not installed (apt-get install iproute2 util-linux)')
        self.down()
        steps = [['ip', 'netns', 'add', self.switch],
                 ['ip', '-n', self.switch, 'link', 'add', 'br0', 'type', 'bridge'],
                 ['ip', '-n', self.switch, 'link', 'set', 'br0', 'up']]
        for i, name in enumerate(self.names, 1):
            steps += [['ip', 'netns', 'add', name],
                      ['ip', 'link', 'add', f'p-{name}', 'netns', self.switch, 'type', 'veth',
                       'peer', 'name', 'eth0', 'netns', name],
                      ['ip', '-n', self.switch, 'link', 'set', f'p-{name}', 'master', 'br0', 'up'],
                      ['ip', '-n', name, 'addr', 'add', f'10.200.0.{i}/24', 'dev', 'eth0'],
                      ['ip', '-n', name, 'link', 'set', 'eth0', 'up'],
                      ['ip', '-n', name, 'link', 'set', 'lo', 'up']]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=30)
            if done.returncode != 0:
                self.down()
                raise OSError(f'`{" ".join(step)}` failed: {done.stderr.strip()}')
        self.nsexec.write_text(_NSEXEC)
        self.nsexec.chmod(0o755)

    def pids(self, name=None):
        """list of int: the processes in namespace ``name`` (every host's if ``None``)."""
        out = []
        for n in [name] if name else self.names:
            done = subprocess.run(['ip', 'netns', 'pids', n], capture_output=True, text=True,
                                  timeout=30)
            out += [int(p) for p in done.stdout.split()]
        return out

    def kill(self, name):
        """SIGKILL every process in namespace ``name`` (a host that crashes).

        Returns
        -------
        list of int
            The pids killed.
        """
        pids = self.pids(name)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def down(self):
        """Kill what runs in the namespaces and delete them (their veths go with them)."""
        for name in [*self.names, self.switch]:
            if subprocess.run(['ip', 'netns', 'pids', name], capture_output=True,
                              timeout=30).returncode == 0:
                self.kill(name)
                subprocess.run(['ip', 'netns', 'del', name], capture_output=True, timeout=30)

    def counters(self):
        """``{host: (rx_bytes, tx_bytes)}`` of every host's ``eth0`` (its link to the bridge)."""
        out = {}
        for name in self.names:
            values = []
            for kind in ('rx_bytes', 'tx_bytes'):
                done = subprocess.run(['ip', 'netns', 'exec', name, 'cat',
                                       f'/sys/class/net/eth0/statistics/{kind}'],
                                      capture_output=True, text=True, timeout=30, check=True)
                values.append(int(done.stdout))
            out[name] = tuple(values)
        return out

    def command(self, args, ranks=(1, 1, 1), env=None):
        """Command line and environment running ``python *args`` with ``ranks[i]`` ranks on host
        ``i`` (rank 0, the head, on the first host that has any).

        Parameters
        ----------
        args : list
            Script and arguments.
        ranks : tuple of int
            Ranks per host.
        env : dict, optional
            Extra environment variables.
        """
        hosts = ','.join(f'{name}:{n}' for name, n in zip(self.names, ranks) if n)
        first = next(name for name, n in zip(self.names, ranks) if n)
        full_env = dict(os.environ)
        full_env['PYTHONPATH'] = os.pathsep.join([str(ROOT), full_env.get('PYTHONPATH', '')])
        if env:
            full_env.update(env)
        command = ['ip', 'netns', 'exec', first, mpiexec(), '-launcher', 'ssh',
                   '-launcher-exec', str(self.nsexec), '-iface', 'eth0', '-hosts', hosts,
                   '-n', str(sum(ranks)), '-genv', 'UCX_TLS', 'tcp',
                   sys.executable, *map(str, args)]
        return command, full_env

    def wait_empty(self, timeout=10.0):
        """Wait until no process is left in any host; return those left after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.pids()
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)
