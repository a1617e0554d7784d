"""Outputs of the job: traces in HDF5 and a PNG of the model, ring and one shot gather."""

from __future__ import annotations

import hashlib
import inspect
import os
import shlex
import sys
from datetime import datetime, timezone

import numpy as np

__all__ = ['write_traces', 'read_traces', 'plot_shots', 'model_checksum', 'provenance']

#: ``units`` attribute of each dataset of the traces file. The solver's pressure is linear in
#: the wavelet, which has no physical scale (``AcousticSolver2D.run_shot``): "arbitrary".
DATASET_UNITS = dict(traces='arbitrary', model='m/s', positions='m', wavelet='arbitrary',
                     time='s')

#: Units of the root group's numeric attributes, stored beside them as ``<name>_units``.
ATTRIBUTE_UNITS = dict(dt='s', spacing='m', frequency='Hz', absorbing='cells',
                       duration='s')


def model_checksum(model):
    """SHA-256 of the input model: of the file it was read from, else of its array.

    Parameters
    ----------
    model : ultrasound.model.SoundSpeedModel
        The job's model.

    Returns
    -------
    digest : str
        64 hexadecimal digits.
    of : str
        ``'file'`` (the bytes of ``model.source``) or ``'array'`` (the bytes of
        ``model.data``, float32 in C order, for the built-in phantom or a model built in
        memory).
    """
    if os.path.isfile(model.source):
        digest = hashlib.sha256()
        with open(model.source, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                digest.update(block)
        return digest.hexdigest(), 'file'
    data = np.ascontiguousarray(model.data, dtype=np.float32)
    return hashlib.sha256(data.tobytes()).hexdigest(), 'array'


def _solver_defaults():
    """Settings of ``AcousticSolver2D`` that the job leaves at their defaults."""
    from .solver import AcousticSolver2D
    from .boundary import PML_REFLECTION

    parameters = inspect.signature(AcousticSolver2D).parameters
    boundary = parameters['boundary'].default
    reflection = parameters['reflection'].default
    if reflection is None:
        reflection = PML_REFLECTION if boundary == 'pml' else 1e-3
    return dict(boundary=boundary, reflection=float(reflection),
                time_correction=bool(parameters['time_correction'].default))


def provenance(config, argv=None, workers=None):
    """Provenance attributes of a traces file: what made it, from what, when and how.

    Parameters
    ----------
    config : ultrasound.job.ShotConfig
        The job.
    argv : list of str, optional
        The command line (default ``sys.argv``); recorded shell-quoted after the
        interpreter's name.
    workers : int, optional
        Processes that computed the shots (``None``: not recorded).

    Returns
    -------
    dict
        ``mosaic_mpi_version, python_version, numpy_version, h5py_version, command_line,
        created_utc`` (ISO 8601, UTC, seconds), ``model_sha256, model_sha256_of`` (see
        :func:`model_checksum`), ``solver, boundary, pml_reflection, time_correction`` and,
        if given, ``workers``.
    """
    import h5py
    import mosaic_mpi

    argv = list(sys.argv if argv is None else argv)
    digest, of = model_checksum(config.model)
    solver = _solver_defaults()
    record = dict(mosaic_mpi_version=mosaic_mpi.__version__,
                  python_version='.'.join(map(str, sys.version_info[:3])),
                  numpy_version=np.__version__, h5py_version=h5py.__version__,
                  command_line=shlex.join([os.path.basename(sys.executable)] + argv),
                  created_utc=datetime.now(timezone.utc).isoformat(timespec='seconds'),
                  model_sha256=digest, model_sha256_of=of,
                  solver='AcousticSolver2D (ultrasound.solver)',
                  boundary=solver['boundary'], pml_reflection=solver['reflection'],
                  time_correction=solver['time_correction'])
    if workers is not None:
        record['workers'] = int(workers)
    return record


def write_traces(path, config, traces: np.ndarray, provenance=None) -> str:
    """Write the traces, their axes and metadata to an HDF5 file.

    Datasets, each with a ``units`` attribute (:data:`DATASET_UNITS`):

    - ``traces``: float32, ``(shots, receivers, steps)``, pressure in arbitrary units (the
      solver's pressure is linear in the wavelet, which has no physical scale); its
      dimensions are labelled ``shot``, ``receiver``, ``time`` and the last has ``time`` as
      its dimension scale;
    - ``time``: float64, ``(steps,)``, s: ``t_n = n dt``, the sample times of every trace;
    - ``model``: float32, ``(nx, ny)``, m/s;
    - ``source_indices``: int64, ``(shots,)``: the transducer fired in each shot;
    - ``positions``: float64, ``(transducers, 2)``, m;
    - ``wavelet``: float32, ``(steps,)``, arbitrary units.

    Root attributes: ``dt``, ``spacing``, ``frequency``, ``absorbing``, ``duration``
    (``num_steps * dt``), each with its unit in ``<name>_units``; ``wavelet_kind``,
    ``num_steps``, ``space_order``, ``stencil``, ``model_source``; and the ``provenance``
    items (see :func:`provenance`).

    Parameters
    ----------
    path : str or os.PathLike
        File to create (overwritten); its directory is created if missing.
    config : ultrasound.job.ShotConfig
        The job that produced the traces.
    traces : np.ndarray
        float32, shape ``(num_shots, num_transducers, num_steps)``.
    provenance : dict, optional
        Extra root attributes (strings, numbers, booleans), normally :func:`provenance`'s.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    ValueError
        If ``traces`` does not have the shape the configuration implies.
    """
    import h5py

    expected = (config.num_shots, config.geometry.num_transducers, config.num_steps)
    traces = np.asarray(traces, dtype=np.float32)
    if traces.shape != expected:
        raise ValueError(f'traces have shape {traces.shape}; expected {expected}')
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with h5py.File(path, 'w') as f:
        data = f.create_dataset('traces', data=traces)
        time = f.create_dataset('time', data=np.arange(config.num_steps) * config.dt)
        f.create_dataset('model', data=config.model.data)
        f.create_dataset('source_indices', data=np.asarray(config.source_indices, np.int64))
        f.create_dataset('positions', data=config.geometry.positions)
        f.create_dataset('wavelet', data=config.wavelet)
        for name, units in DATASET_UNITS.items():
            f[name].attrs['units'] = units
        data.attrs['quantity'] = 'pressure'
        time.make_scale('time')
        for axis, label in enumerate(('shot', 'receiver', 'time')):
            data.dims[axis].label = label
        data.dims[2].attach_scale(time)
        f.attrs.update(dt=config.dt, spacing=np.asarray(config.model.spacing),
                       frequency=config.frequency, wavelet_kind=config.wavelet_kind,
                       num_steps=config.num_steps, duration=config.num_steps * config.dt,
                       space_order=config.space_order, stencil=config.stencil,
                       absorbing=config.absorbing, model_source=config.model.source)
        f.attrs.update({f'{name}_units': units for name, units in ATTRIBUTE_UNITS.items()})
        f.attrs.update(provenance or {})
    return path


def read_traces(path) -> np.ndarray:
    """Read the ``traces`` dataset written by :func:`write_traces`.

    Parameters
    ----------
    path : str or os.PathLike
        The HDF5 file.

    Returns
    -------
    np.ndarray
        float32, shape ``(num_shots, num_transducers, num_steps)``.
    """
    import h5py

    with h5py.File(path, 'r') as f:
        return f['traces'][()]


def plot_shots(path, config, traces: np.ndarray, shot: int = 0) -> str:
    """Save a PNG: the model with the transducer ring and the source, and one shot gather.

    Parameters
    ----------
    path : str or os.PathLike
        PNG file to create (overwritten).
    config : ultrasound.job.ShotConfig
        The job.
    traces : np.ndarray
        float32, shape ``(num_shots, num_transducers, num_steps)``.
    shot : int
        Which shot to show.

    Returns
    -------
    str
        The path written.
    """
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib.figure import Figure

    path = os.fspath(path)
    model, positions = config.model, config.geometry.positions * 1e3
    source = int(config.source_indices[shot])
    fig = Figure(figsize=(12, 5), layout='constrained')
    ax_model, ax_gather = fig.subplots(1, 2, width_ratios=[1, 1.2])

    nx, ny = model.shape
    dx, dy = (h * 1e3 for h in model.spacing)
    extent = (-dx / 2, (nx - 0.5) * dx, -dy / 2, (ny - 0.5) * dy)
    image = ax_model.imshow(model.data.T, origin='lower', extent=extent, cmap='viridis')
    fig.colorbar(image, ax=ax_model, label='sound speed (m/s)')
    ax_model.plot(positions[:, 0], positions[:, 1], '.', color='white', ms=3)
    ax_model.plot(*positions[source], marker='*', color='red', ms=14, mec='black', ls='none')
    ax_model.set(xlabel='x (mm)', ylabel='y (mm)',
                 title=f'{os.path.basename(model.source)}\n{len(positions)} transducers '
                       f'(white), source {source} (red star)')

    gather = traces[shot]
    clip = float(np.percentile(np.abs(gather), 98.0)) or 1.0
    duration = config.num_steps * config.dt * 1e6
    image = ax_gather.imshow(gather.T, aspect='auto', cmap='seismic', vmin=-clip, vmax=clip,
                             origin='upper', interpolation='nearest',
                             extent=(-0.5, gather.shape[0] - 0.5, duration, 0.0))
    fig.colorbar(image, ax=ax_gather, label='pressure (arbitrary units)')
    ax_gather.axvline(source, color='black', lw=0.5, ls=':')
    ax_gather.set(xlabel='receiver (transducer index)', ylabel='time (µs)',
                  title=f'Shot {shot}: source {source}, {config.wavelet_kind} '
                        f'{config.frequency / 1e3:g} kHz\n(colour clipped at the 98th '
                        f'percentile of |p|)')
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # Constrained layout leaves too little room left of the equal-aspect model image with
    # its colorbar (the 'y (mm)' label was cut off): fit the saved image to every artist.
    fig.savefig(path, dpi=110, bbox_inches='tight', pad_inches=0.1)
    return path
