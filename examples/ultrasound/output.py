"""Outputs of the job: traces in HDF5 and a PNG of the model, ring and one shot gather."""

from __future__ import annotations

import os

import numpy as np

__all__ = ['write_traces', 'read_traces', 'plot_shots']


def write_traces(path, config, traces: np.ndarray) -> str:
    """Write the traces and their metadata to an HDF5 file.

    Datasets: ``traces`` (float32, ``(shots, receivers, steps)``), ``model`` (float32, m/s),
    ``source_indices`` (int64), ``positions`` (float64, ``(transducers, 2)``, m),
    ``wavelet`` (float32, ``(steps,)``). Attributes: ``dt`` (s), ``spacing`` (m),
    ``frequency`` (Hz), ``wavelet_kind``, ``num_steps``, ``space_order``, ``stencil``,
    ``absorbing`` (cells), ``model_source``.

    Parameters
    ----------
    path : str or os.PathLike
        File to create (overwritten); its directory is created if missing.
    config : ultrasound.job.ShotConfig
        The job that produced the traces.
    traces : np.ndarray
        float32, shape ``(num_shots, num_transducers, num_steps)``.

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
        f.create_dataset('traces', data=traces)
        f.create_dataset('model', data=config.model.data)
        f.create_dataset('source_indices', data=np.asarray(config.source_indices, np.int64))
        f.create_dataset('positions', data=config.geometry.positions)
        f.create_dataset('wavelet', data=config.wavelet)
        f.attrs.update(dt=config.dt, spacing=np.asarray(config.model.spacing),
                       frequency=config.frequency, wavelet_kind=config.wavelet_kind,
                       num_steps=config.num_steps, space_order=config.space_order,
                       stencil=config.stencil,
                       absorbing=config.absorbing, model_source=config.model.source)
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
