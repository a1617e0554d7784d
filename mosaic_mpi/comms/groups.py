"""Communicators of collective tessera arrays: built among their members only.

A collective array (``Cls.remote(len=N, collective=True)``, SPEC S29) gets a communicator of its
own whose group is its members' ranks in member order, so that a member's rank in it is its index
in the array. It is made with ``MPI_Comm_create_group`` on the runtime's private duplicate of the
communicator: that call is collective over the new group only (ranks that are not members take no
part), and its tag keeps it apart from the runtime's point-to-point traffic on the same
communicator (MPI-3.1, section 6.4.2: "the tag argument does not conflict with tags used in
point-to-point communication").

``MPI_Comm_create_group`` blocks until every member has called it. The worker calls it from its
collective thread (:mod:`mosaic_mpi.runtime.collective`), never from the progress thread (which
keeps sending heartbeats and moving data meanwhile) nor from the event loop (which keeps running
the rank's other tesserae), and at the same point of every member's sequence of collective work,
so all members reach it.
"""

__all__ = ['GROUP_TAG', 'create_group', 'free_group']

GROUP_TAG = 19      # the tag of MPI_Comm_create_group's own messages on the private communicator


def create_group(parent, ranks, tag=GROUP_TAG):
    """Build the communicator of the ranks ``ranks`` of ``parent`` (collective over them only).

    Parameters
    ----------
    parent : mpi4py.MPI.Intracomm
        The runtime's private communicator (every rank of ``ranks`` belongs to it).
    ranks : sequence of int
        The members' ranks in ``parent``, in member order (distinct); the calling rank among them.
    tag : int
        Tag of the creation's messages (must not exceed ``MPI_TAG_UB``).

    Returns
    -------
    mpi4py.MPI.Intracomm
        The new communicator; rank ``i`` in it is ``ranks[i]``.

    Raises
    ------
    ValueError
        If ``ranks`` repeats a rank or does not contain the calling rank.
    """
    ranks = list(ranks)
    if len(set(ranks)) != len(ranks):
        raise ValueError(f'the members of a collective array need distinct ranks, got {ranks}')
    if parent.Get_rank() not in ranks:
        raise ValueError(f'rank {parent.Get_rank()} is not among the members {ranks}')
    group = parent.Get_group().Incl(ranks)
    try:
        return parent.Create_group(group, tag)
    finally:
        group.Free()


def free_group(comm):
    """Free a communicator made by :func:`create_group` (local in MPICH and Open MPI: it sends
    nothing, so members may free it at different times)."""
    comm.Free()
