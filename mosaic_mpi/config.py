"""The runtime's configuration: one frozen, validated record.

Values come, in order of precedence, from keyword arguments, ``MOSAIC_MPI_<NAME>`` environment
variables, and the defaults below. This module is the only reader of those variables.
"""

import dataclasses
import os

__all__ = ['Config', 'make_config']

_ENV_PREFIX = 'MOSAIC_MPI_'
_NOT_SETTINGS = ('MOSAIC_MPI_REAL_MODEL',)     # the examples' and tests' own variable (a path)


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of one runtime.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm or None
        Communicator the runtime lives on; it is duplicated, never used directly. ``None`` means
        ``COMM_WORLD``. Not settable from the environment.
    log_level : str or None
        Level of the ``mosaic_mpi`` logger (``'debug'``, ``'info'``, ``'warning'``, ``'error'``).
        When set (and the application has configured no logging of its own), each rank's records
        are printed on its stderr, prefixed with the rank's uid. ``None``: silent, as a library.
    oob_threshold : int
        Buffers of at least this many bytes travel out of band, as their own MPI messages, straight
        from and into array memory; smaller ones are copied into the message header. Bytes.
    max_chunk : int
        Largest single MPI message, in bytes; bigger buffers are split. Keeps every count below
        2**31 whatever the MPI library's large-count support, and bounds how long one MPI call
        can take: MPICH copies a whole shared-memory message inside one call
        (``process_vm_readv``), which into memory touched for the first time ran at 60-250 MB/s
        on our virtual machines (1 GiB: 4-17 s without a heartbeat). 64 MiB moves as fast as
        1 GiB when the memory is warm (``bench/bench_bandwidth.py``).
    spin_time : float
        Seconds the progress thread keeps polling (yielding the core between polls) after the last
        message before it starts to sleep: sleeps of 20 us doubling up to 200 us for the first
        50 ms, then up to ``max_sleep``. Also how long an idle event loop drives progress itself
        (assists) before it blocks.
    max_sleep : float
        Longest sleep of an idle progress thread, in seconds: the worst-case pick-up delay of a
        message arriving at a rank idle for more than 50 ms. A timed wait costs 70-130 us of CPU
        on our 2-core VM (even ``time.sleep``), so 10 ms keeps an idle rank near 1 % of a core
        (``bench/bench_lifecycle.py``). Also the longest the progress thread stands aside for an
        event loop that assisted it and then went into user code.
    buffer_pool : int
        Bytes of freed large receive buffers each rank keeps for reuse (receiving into memory used
        before avoids the page faults of fresh memory: about twice as fast). 0 disables it.
    worker_exit : bool
        Whether a worker rank ends its process (exit code 0) once the head stops the runtime. Set
        it to ``False`` when the runtime is embedded in a larger MPI program whose workers must go on.
    heartbeat : float
        Seconds between the heartbeats the head and each worker send each other, so that a rank
        that died (killed, segfault, ``os._exit``) is noticed even when the launcher leaves the
        others running.
    heartbeat_timeout : float
        Seconds without any message from a peer after which it is declared lost: on the head,
        every task waiting on that worker fails with ``RuntimeDisconnectedError`` naming the
        worker and the task; a worker that loses the head exits. 0 turns heartbeats off. A
        rank whose progress thread cannot run for that long (C code holding the GIL, e.g. a
        numba kernel without ``nogil``) looks dead: give such codes a larger value.
    worker_lost : str
        What the head does when a worker is lost: ``'abort'`` ends the job (exit code 1, or the
        code ``main`` ends with) within ``heartbeat_timeout`` seconds if ``main`` has not ended
        first; ``'continue'`` lets ``main`` carry on with the other workers
        (``async_for(..., safe=True)`` drops the lost worker's items); the job still ends with a
        non-zero exit code.
    max_pending : int
        Back-pressure (S32): calls the head may have in flight on one worker (submitted, not
        finished). A call beyond it blocks the caller until one finishes, so a loop of calls on
        a slow tessera cannot grow memory without bound. Workers' calls (actor to actor) never
        block: the calls their tesserae wait for may need the blocked worker itself.
    trace : str or None
        Path of a task timeline to write at the end of the run (Chrome Trace Event JSON; see
        :mod:`mosaic_mpi.runtime.timeline`). ``None``: no tracing (nothing recorded).
    output_prefix : bool
        Whether every line a worker writes to its standard output or error (``print``,
        ``logging``, C extensions) starts with the worker's name and a space, ``[worker:N]``. The
        descriptors are redirected, ``sys.stdout`` is not replaced.
    start_timeout : float
        Seconds a head waits for the workers it spawned (``num_workers`` in a single process,
        ``interactive('on')``) to join; past it start-up fails with an error instead of hanging.
    num_workers : int or None
        Number of workers. In a single process (``python script.py`` without ``mpiexec``, or a
        notebook) the head starts this many worker processes with MPI dynamic process creation
        (``MPI_Comm_spawn``). On a communicator of several ranks (``mpiexec -n N``) the workers are
        its other ranks: it must then be ``N - 1`` (or ``None``), anything else raises
        ``ValueError`` at start-up. ``None``: the communicator's size decides (a single process
        then raises ``ValueError``, as there would be no worker).
    """

    comm: object = None
    log_level: object = None
    oob_threshold: int = 65536
    max_chunk: int = 64 << 20
    spin_time: float = 0.001
    max_sleep: float = 0.01
    buffer_pool: int = 512 << 20
    worker_exit: bool = True
    output_prefix: bool = True
    max_pending: int = 100_000
    heartbeat: float = 0.5
    heartbeat_timeout: float = 6.0
    worker_lost: str = 'abort'
    trace: object = None
    num_workers: int = None
    start_timeout: float = 60.0

    def __post_init__(self):
        self._check_types()
        if self.log_level is not None and str(self.log_level).upper() not in (
                'DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'):
            raise ValueError(f'log_level must be one of debug, info, warning, error; '
                             f'got {self.log_level!r}')
        if self.oob_threshold < 0:
            raise ValueError(f'oob_threshold must be >= 0 bytes, got {self.oob_threshold}')
        if not 1 <= self.max_chunk <= (1 << 31) - 1:
            raise ValueError(f'max_chunk must be in [1, 2**31 - 1] bytes, got {self.max_chunk}')
        if self.buffer_pool < 0:
            raise ValueError(f'buffer_pool must be >= 0 bytes, got {self.buffer_pool}')
        if self.heartbeat_timeout and not self.heartbeat_timeout > self.heartbeat > 0:
            raise ValueError(f'heartbeat_timeout ({self.heartbeat_timeout} s) must exceed '
                             f'heartbeat ({self.heartbeat} s) > 0, or be 0 (off)')
        if self.worker_lost not in ('abort', 'continue'):
            raise ValueError(f"worker_lost must be 'abort' or 'continue', got "
                             f"{self.worker_lost!r}")
        if self.max_pending < 1:
            raise ValueError(f'max_pending must be >= 1 call, got {self.max_pending}')
        if self.num_workers is not None and (isinstance(self.num_workers, bool) or not isinstance(
                self.num_workers, int) or self.num_workers < 1):
            raise ValueError(f'num_workers must be an integer >= 1 (worker processes to use), '
                             f'got {self.num_workers!r}')
        if not self.start_timeout > 0:
            raise ValueError(f'start_timeout must be > 0 seconds, got {self.start_timeout}')
        if self.spin_time < 0 or self.max_sleep <= 0:
            raise ValueError('spin_time must be >= 0 and max_sleep > 0 seconds')


    def _check_types(self):
        """Every setting has the type its field says (no silent ``'no'`` taken as true)."""
        import math
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if (value is None and field.default is None) or field.name == 'num_workers':
                continue                    # (num_workers has its own check, below)
            kind = field.type if isinstance(field.type, str) else field.type.__name__
            if kind == 'bool' and not isinstance(value, bool):
                raise TypeError(f'{field.name} must be True or False, got {value!r}')
            if kind == 'int' and (isinstance(value, bool) or not isinstance(value, int)):
                # a number of the wrong kind (2.5) is a bad value; anything else a bad type
                error = ValueError if isinstance(value, float) else TypeError
                raise error(f'{field.name} must be an integer, got {value!r}')
            if kind == 'float':
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise TypeError(f'{field.name} must be a number of seconds, got {value!r}')
                if not math.isfinite(value):
                    raise ValueError(f'{field.name} must be finite, got {value!r}')
        if self.trace is not None and not isinstance(self.trace, (str, os.PathLike)):
            raise TypeError(f'trace must be a file path, got {self.trace!r}')
        if self.worker_lost is not None and not isinstance(self.worker_lost, str):
            raise TypeError(f"worker_lost must be 'abort' or 'continue', got {self.worker_lost!r}")


def _parse(field, text):
    name = _ENV_PREFIX + field.name.upper()
    kind = field.type if isinstance(field.type, str) else field.type.__name__
    if kind == 'int' or kind == 'float':
        try:
            return int(text) if kind == 'int' else float(text)
        except ValueError:
            raise ValueError(f'{name} must be a number ({kind}), got {text!r}') from None
    if kind == 'bool':
        value = text.strip().lower()
        if value in ('1', 'true', 'yes', 'on'):
            return True
        if value in ('0', 'false', 'no', 'off'):
            return False
        raise ValueError(f'{name} must be a boolean, got {text!r}')
    return text


def make_config(**kwargs):
    """Build a :class:`Config` from keyword arguments, the environment and the defaults.

    Parameters
    ----------
    **kwargs
        Any field of :class:`Config`.

    Returns
    -------
    Config
        The validated configuration.

    Raises
    ------
    TypeError
        If a keyword is not a configuration field (the message names it).
    ValueError
        If a value (from a keyword or the environment) is out of range or cannot be parsed.
    """
    fields = {f.name: f for f in dataclasses.fields(Config)}
    unknown = sorted(set(kwargs) - set(fields))
    if unknown:
        raise TypeError(f'unknown mosaic_mpi configuration key(s): {", ".join(unknown)}; '
                        f'known keys are {", ".join(sorted(fields))}')
    unknown_env = sorted(k for k in os.environ if k.startswith(_ENV_PREFIX)
                         and k[len(_ENV_PREFIX):].lower() not in fields
                         and k not in _NOT_SETTINGS)
    if unknown_env:
        import warnings
        warnings.warn(f'unknown mosaic_mpi variable(s) ignored: {", ".join(unknown_env)}; known '
                      f'ones are {", ".join(_ENV_PREFIX + n.upper() for n in sorted(fields))}',
                      RuntimeWarning, stacklevel=2)
    values = {}
    for name, field in fields.items():
        env = os.environ.get(_ENV_PREFIX + name.upper())
        if name in kwargs:
            values[name] = kwargs[name]
        elif env is not None and name != 'comm':
            values[name] = _parse(field, env)
    return Config(**values)
