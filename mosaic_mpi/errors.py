"""Every public exception of mosaic_mpi, under one base class."""

__all__ = ['MosaicError', 'RemoteError', 'RemoteTraceback', 'DependencyError',
           'SerialisationError', 'RuntimeNotRunning', 'RuntimeDisconnectedError', 'DeadlockError',
           'CollectiveError']


class MosaicError(Exception):
    """Base class of every exception mosaic_mpi raises on its own account."""


class RemoteTraceback(MosaicError):
    """The formatted traceback of an exception raised on another rank.

    It is attached as ``__cause__`` of the re-raised exception, so that Python prints the remote
    traceback (rank, tessera, method) above the local one.

    Parameters
    ----------
    text : str
        The remote traceback, already formatted.
    """

    def __init__(self, text):
        super().__init__(text)
        self.text = text

    def __str__(self):
        return '\n' + self.text


class RemoteError(MosaicError):
    """An exception raised remotely that could not be pickled.

    Parameters
    ----------
    type_name : str
        Qualified name of the original exception type.
    message : str
        ``str()`` of the original exception.
    traceback : str
        The formatted remote traceback.
    """

    def __init__(self, type_name, message, traceback=''):
        super().__init__(f'{type_name}: {message}')
        self.type_name = type_name
        self.message = message
        self.traceback = traceback

    def __reduce__(self):
        return type(self), (self.type_name, self.message, self.traceback)


class DependencyError(MosaicError):
    """A task was not run because a task it depends on failed.

    The upstream exception is chained as ``__cause__``.
    """


class SerialisationError(MosaicError, TypeError):
    """An object could not be pickled (neither by pickle nor by cloudpickle)."""


class RuntimeNotRunning(MosaicError, RuntimeError):
    """An operation needed a running runtime and there is none on this rank."""


class RuntimeDisconnectedError(MosaicError, RuntimeError):
    """A worker (or another rank) the operation needed has been lost (Mosaic's name)."""


class DeadlockError(MosaicError, RuntimeError):
    """A method awaits a call that can only run after it returns (S31): the message names the
    cycle."""


class CollectiveError(MosaicError, RuntimeError):
    """A collective tessera array (S29) was used in a way that could leave its members waiting
    for each other forever: a method called on one member alone, a collective array made or
    called by a worker, ``mosaic.comm()`` outside a collective array's method."""
