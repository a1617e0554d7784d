"""User-facing types: tasks (``mosaic_mpi.core.task``) and tesserae (``mosaic_mpi.core.tessera``)."""
