#!/usr/bin/env python
"""Validate the job's solver against the exact 2D solution and measure its absorbing boundary.

Run from the repository root::

    python examples/ultrasound/validate.py              # phantom grid and real-model grid
    python examples/ultrasound/validate.py --quick      # smaller grids, a few seconds
    python examples/ultrasound/validate.py --skip-accuracy --boundary sponge   # former layer

Accuracy: a homogeneous 1500 m/s model on the job's grid (the phantom's, and the real model's
when its file is found) is run with the job's own configuration (time step, number of steps,
stencil, absorbing layer, wavelet, ring of transducers), and each recorded trace is compared
with the exact solution of ``p_tt = c^2 (laplacian p + s(t) delta(x - x_s))`` in 2D,
``P(omega) = -(i / 4) H0^(2)(omega r / c) S(omega)`` (the outgoing free-space Green's
function, e.g. Morse & Feshbach (1953), "Methods of Theoretical Physics", ch. 7.2). Printed per
source-receiver distance: the arrival error (numerical minus exact peak time, in samples),
the normalised cross-correlation at zero lag, the amplitude error, and the slope of
``log(peak)`` against ``log(r)`` (exact far field: -0.5).

Boundary: the worst return of the absorbing layer, in dB of each receiver's direct peak, for a
source near the model's edge with receivers towards the edge (normal incidence) and along it
(grazing incidence), measured against the same run on a grid padded so widely that no
reflection arrives.

Needs scipy (``scipy.special.hankel2``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ultrasound.discretisation import stable_time_step  # noqa: E402
from ultrasound.job import DEFAULTS, build_config  # noqa: E402
from ultrasound.model import SoundSpeedModel, load_model, make_phantom  # noqa: E402
from ultrasound.solver import AcousticSolver2D  # noqa: E402
from ultrasound.wavelets import make_wavelet  # noqa: E402

__all__ = ['REAL_MODEL', 'exact_trace', 'compare', 'accuracy', 'decay_slope',
           'boundary_returns', 'main']

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: Where the real model is looked for (as in the tests).
REAL_MODEL = os.environ.get('MOSAIC_MPI_REAL_MODEL', os.path.join(
    os.path.dirname(ROOT), 'shared', 'data', 'anastasio2D-TrueModel.h5'))
#: Sound speed of the homogeneous validation model, m/s.
SPEED = 1500.0


def exact_trace(wavelet, dt: float, distance: float, speed: float) -> np.ndarray:
    """Exact 2D pressure at ``distance`` from a point source fired with ``wavelet``.

    ``P(omega) = -(i / 4) H0^(2)(omega r / c) S(omega)`` on the FFT grid of the record padded
    to 8 times its length (the 2D response has a long tail, which must not wrap around);
    ``omega = 0`` is set to 0 (the Ricker wavelet has no mean).

    Parameters
    ----------
    wavelet : np.ndarray
        Source time function ``s(t_n)``, ``t_n = n dt``, shape ``(num_steps,)``.
    dt : float
        Sampling interval, s.
    distance : float
        Source-receiver distance ``r``, m (> 0).
    speed : float
        Sound speed ``c``, m/s.

    Returns
    -------
    np.ndarray
        float64, shape ``(num_steps,)``: ``p(t_n)`` in the solver's units.

    Raises
    ------
    ValueError
        If ``distance`` is not positive.
    """
    from scipy.special import hankel2

    if not distance > 0:
        raise ValueError(f'distance must be > 0 m; got {distance}')
    source = np.asarray(wavelet, dtype=np.float64)
    length = 8 * source.size
    omega = 2.0 * np.pi * np.fft.rfftfreq(length, dt)
    green = np.zeros(omega.size, np.complex128)
    green[1:] = -0.25j * hankel2(0, omega[1:] * distance / speed)
    return np.fft.irfft(green * np.fft.rfft(source, length), length)[:source.size]


def _peak_time(trace: np.ndarray) -> float:
    """Sub-sample position of the largest sample (parabola through it and its neighbours)."""
    k = int(np.argmax(trace))
    if 0 < k < trace.size - 1:
        a, b, c = trace[k - 1], trace[k], trace[k + 1]
        denominator = a - 2.0 * b + c
        if denominator != 0:
            return k + 0.5 * (a - c) / denominator
    return float(k)


def compare(numerical, exact, window) -> dict:
    """Figures of one numerical trace against the exact one, inside a time window.

    Parameters
    ----------
    numerical, exact : np.ndarray
        Traces, shape ``(num_steps,)``.
    window : slice
        Samples that hold the direct arrival (boundary returns left out).

    Returns
    -------
    dict
        ``arrival`` (numerical minus exact peak time, samples), ``ncc`` (zero-lag normalised
        cross-correlation), ``amplitude`` (relative peak error), ``peak`` (numerical peak).
    """
    u = np.asarray(numerical, dtype=np.float64)[window]
    v = np.asarray(exact, dtype=np.float64)[window]
    return dict(arrival=_peak_time(u) - _peak_time(v),
                ncc=float(u @ v / math.sqrt((u @ u) * (v @ v))),
                amplitude=float(u.max() / v.max() - 1.0), peak=float(u.max()),
                exact_peak=float(v.max()))


def decay_slope(distances, peaks) -> float:
    """Least-squares slope of ``log(peak)`` against ``log(distance)`` (2D far field: -0.5).

    Parameters
    ----------
    distances, peaks : sequence of float
        Positive distances (m) and peak amplitudes.

    Returns
    -------
    float
        The slope.
    """
    return float(np.polyfit(np.log(distances), np.log(peaks), 1)[0])


def accuracy(shape=(356, 385), spacing=(5e-4, 5e-4), dt=None, num_steps=None,
             frequency=DEFAULTS['frequency'], sources=(0, 32), transducers=128, **options):
    """Run the job's configuration on a homogeneous model and compare with the exact solution.

    Parameters
    ----------
    shape, spacing : tuple
        Grid ``(nx, ny)`` in cells and ``(dx, dy)`` in m (the job's model grid).
    dt, num_steps : float and int, optional
        The job's time axis on that grid (default: what the job derives for the model).
    frequency : float
        Centre frequency, Hz.
    sources : sequence of int
        Transducers fired (0: on the +x axis, ``transducers / 4``: on the +y axis).
    transducers : int
        Transducers on the ring.
    **options
        Other :func:`~ultrasound.job.build_config` options (``space_order``, ``stencil``,
        ``absorbing``, ``wavelet``).

    Returns
    -------
    dict
        ``rows``: per receiver (``source``, ``receiver``, ``distance`` in m and the
        :func:`compare` figures), sorted by distance; ``config``: the job's configuration;
        ``seconds``: solver time per shot.
    """
    data = np.full(shape, SPEED, np.float32)
    model = SoundSpeedModel(data, tuple(spacing), '<homogeneous>', dt, num_steps)
    config = build_config(model, shots=1, transducers=transducers, frequency=frequency,
                          **options)
    solver = AcousticSolver2D(data, model.spacing, config.dt, config.num_steps,
                              config.geometry.cells, absorbing=config.absorbing,
                              space_order=config.space_order, stencil=config.stencil)
    positions = config.geometry.positions
    delay = 1.5 / frequency
    rows, seconds = [], []
    for source in sources:
        tic = time.perf_counter()
        traces = solver.run_shot(source, config.wavelet)
        seconds.append(time.perf_counter() - tic)
        distances = np.hypot(*(positions - positions[source]).T)
        for receiver in np.argsort(distances):
            distance = float(distances[receiver])
            if distance < 8 * SPEED / frequency:        # near field: not a far-side figure
                continue
            arrival = (delay + distance / SPEED) / config.dt
            half = 4.0 / (frequency * config.dt)
            window = slice(max(int(arrival - half), 0), min(int(arrival + 2 * half),
                                                             config.num_steps))
            if window.stop - window.start < half:
                continue                                 # arrives after the record ends
            exact = exact_trace(config.wavelet, config.dt, distance, SPEED)
            rows.append(dict(source=int(source), receiver=int(receiver), distance=distance,
                             **compare(traces[receiver], exact, window)))
    rows.sort(key=lambda row: row['distance'])
    return dict(rows=rows, config=config, seconds=float(np.mean(seconds)))


def boundary_returns(frequency=DEFAULTS['frequency'], spacing=5e-4, size=(120, 240),
                     margin=10, absorbing=DEFAULTS['absorbing'],
                     space_order=DEFAULTS['space_order'], stencil='optimised', **layer):
    """Worst boundary return, in dB of each receiver's direct peak, normal and grazing.

    A homogeneous grid of ``size`` cells; the source sits ``margin`` cells from the ``x = 0``
    edge (where the job's ring touches its model's edge), halfway along ``y``. Normal
    incidence: receivers on the line from the source to that edge, and beyond the source.
    Grazing incidence: receivers ``margin`` cells from the same edge, along ``y``. The record
    lasts until the slowest return from the far edges would have arrived; the reference is the
    same source and receivers on a grid padded with enough cells that nothing returns within
    the record (and no layer). Return = ``max |u - u_ref|`` over the record.

    Parameters
    ----------
    frequency : float
        Ricker centre frequency, Hz.
    spacing : float
        Grid spacing, m (both axes).
    size : tuple of int
        Model grid ``(nx, ny)``, cells.
    margin : int
        Cells between the transducers and the model's edge.
    absorbing, space_order, stencil
        The layer width (cells) and the stencil, as for the job.
    **layer
        Extra keyword arguments of :class:`~ultrasound.solver.AcousticSolver2D` for the layer.

    Returns
    -------
    dict
        ``normal`` and ``grazing``: worst return in dB; ``details``: per receiver
        ``(cell, dB)``.
    """
    nx, ny = size
    h = (spacing, spacing)
    source = np.array([margin, ny // 2])
    normal = [source + [d, 0] for d in (0, 5, 10, 20, 40, 80) if margin + d < nx - margin]
    grazing = [np.array([margin, ny // 2 + d]) for d in (10, 20, 40, 60, 80, 100)
               if ny // 2 + d < ny - margin]
    cells = np.array([source] + normal[1:] + grazing)
    kinds = ['normal'] * len(normal) + ['grazing'] * len(grazing)
    dt = stable_time_step(SPEED, h, space_order, stencil=stencil)
    duration = 2.2 * math.hypot(nx, ny) * spacing / SPEED + 3.0 / frequency
    steps = int(duration / dt)
    wavelet = make_wavelet('ricker', frequency, dt, steps)
    data = np.full(size, SPEED, np.float32)
    run = AcousticSolver2D(data, h, dt, steps, cells, absorbing=absorbing,
                           space_order=space_order, stencil=stencil, **layer)
    traces = run.run_shot(0, wavelet)
    pad = int(math.ceil(0.5 * duration * SPEED / spacing)) + space_order
    reference = AcousticSolver2D(np.pad(data, pad, mode='edge'), h, dt, steps, cells + pad,
                                 absorbing=0, space_order=space_order,
                                 stencil=stencil).run_shot(0, wavelet)
    worst = {'normal': -np.inf, 'grazing': -np.inf}
    details = []
    for k, kind in enumerate(kinds):
        direct = np.abs(reference[k]).max()
        db = 20.0 * math.log10(np.abs(traces[k] - reference[k]).max() / direct)
        worst[kind] = max(worst[kind], db)
        details.append((kind, cells[k].tolist(), db))
    return dict(normal=worst['normal'], grazing=worst['grazing'], details=details)


def _print_accuracy(title, result, out):
    config = result['config']
    print(f'\n{title}: {config.model.shape[0]} x {config.model.shape[1]} cells of '
          f'{config.model.spacing[0] * 1e3:g} mm, {SPEED:g} m/s, dt = {config.dt * 1e9:.2f} ns, '
          f'{config.num_steps} steps, {config.wavelet_kind} {config.frequency / 1e3:g} kHz, '
          f'{config.stencil} order {config.space_order}, layer {config.absorbing} cells '
          f'({result["seconds"]:.2f} s per shot)', file=out)
    print('  distance (mm)  arrival (samples)  cross-correlation  amplitude (%)', file=out)
    rows = result['rows']
    shown = rows[::max(len(rows) // 8, 1)] + [max(rows, key=lambda r: r['distance'])]
    for row in sorted({id(r): r for r in shown}.values(), key=lambda r: r['distance']):
        print(f'  {row["distance"] * 1e3:13.1f}  {row["arrival"]:+17.2f}  {row["ncc"]:17.4f}  '
              f'{100 * row["amplitude"]:+13.2f}', file=out)
    far = [r for r in rows if r['distance'] >= 0.9 * rows[-1]['distance']]
    print(f'  far side (>= {0.9 * rows[-1]["distance"] * 1e3:.0f} mm, {len(far)} receivers): '
          f'worst |arrival| {max(abs(r["arrival"]) for r in far):.2f} samples, worst '
          f'cross-correlation {min(r["ncc"] for r in far):.4f}; all receivers: worst '
          f'|arrival| {max(abs(r["arrival"]) for r in rows):.2f}, worst cross-correlation '
          f'{min(r["ncc"] for r in rows):.4f}, amplitude error '
          f'{100 * min(r["amplitude"] for r in rows):+.2f}% to '
          f'{100 * max(r["amplitude"] for r in rows):+.2f}%', file=out)
    distances = [r['distance'] for r in rows]
    numerical = decay_slope(distances, [r['peak'] for r in rows])
    exact = decay_slope(distances, [r['exact_peak'] for r in rows])
    print(f'  decay slope of log(peak) vs log(r): {numerical:.3f} (exact solution: {exact:.3f}, '
          f'far field -0.5)', file=out)


def main(argv=None, out=sys.stdout) -> int:
    """Print the accuracy tables and the boundary figures.

    Parameters
    ----------
    argv : list of str, optional
        ``--quick`` (smaller grids), ``--frequency``, ``--boundary``, ``--absorbing``,
        ``--skip-accuracy``.
    out : file-like
        Where to print.

    Returns
    -------
    int
        0.
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='smaller grids (a few seconds)')
    parser.add_argument('--frequency', type=float, default=DEFAULTS['frequency'],
                        help='centre frequency, Hz (default %(default)g)')
    parser.add_argument('--boundary', choices=('pml', 'sponge'), default='pml',
                        help='absorbing boundary measured (default %(default)s)')
    parser.add_argument('--absorbing', type=int, default=DEFAULTS['absorbing'], metavar='CELLS',
                        help='its width (default %(default)s)')
    parser.add_argument('--skip-accuracy', action='store_true',
                        help='measure the boundary only')
    args = parser.parse_args(argv)
    f = args.frequency
    if args.skip_accuracy:
        pass
    elif args.quick:
        _print_accuracy('Small grid', accuracy((140, 150), frequency=f, sources=(0, 16),
                                               transducers=64), out)
    else:
        phantom = build_config(make_phantom(), shots=1, frequency=f)
        _print_accuracy('Phantom grid', accuracy(phantom.model.shape, phantom.model.spacing,
                                                 phantom.dt, phantom.num_steps, f), out)
        if os.path.exists(REAL_MODEL):
            real = load_model(REAL_MODEL)
            _print_accuracy('Real-model grid', accuracy(real.shape, real.spacing, real.time_step,
                                                        real.num_steps, f), out)
        else:
            print(f'\n(real model not found at {REAL_MODEL}: its grid is skipped)', file=out)
    print(f'\nAbsorbing boundary ({args.boundary}, {args.absorbing} cells): worst return in dB '
          f'of the receiver\'s direct peak', file=out)
    for frequency in (f, f / 2):
        result = boundary_returns(frequency, absorbing=args.absorbing, boundary=args.boundary)
        print(f'  {frequency / 1e3:5g} kHz: normal incidence {result["normal"]:6.1f} dB, '
              f'grazing incidence {result["grazing"]:6.1f} dB', file=out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
