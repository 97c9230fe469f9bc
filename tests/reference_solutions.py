"""Reference solutions in plain numpy/scipy for the reference tests (issue 7).

Nothing here imports the project: a solver that only ever fits its own data can be wrong
without any test noticing, so the references must be written from the mathematics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import expm_multiply
from scipy.special import ive

# ----- viscous Burgers: Cole-Hopf ---------------------------------------------------------------


def cole_hopf(
    x: np.ndarray, t: float, nu: float, amplitude: float = 1.0, wavenumber: float = 1.0, shift: float = 0.0
) -> np.ndarray:
    """Exact u(x, t) of u_t + u u_x = nu u_xx with u(x, 0) = amplitude * sin(wavenumber * (x - shift)).

    Cole-Hopf: u = -2 nu phi_x / phi with phi_t = nu phi_xx and phi(y, 0) = exp(-U0(y) / (2 nu)),
    U0 = amplitude (1 - cos(k (y - shift))) / k the antiderivative of u0. Convolving with the heat
    kernel and substituting y = x - sqrt(4 nu t) eta gives the classical ratio

        u(x, t) = int (sqrt(4 nu t) eta / t) w(eta) d eta / int w(eta) d eta,
        w(eta) = exp(-eta^2 - U0(x - sqrt(4 nu t) eta) / (2 nu)),

    integrated by the trapezoid rule on |eta| <= 12 (the integrand is smooth and below e^-144
    outside, so the rule converges exponentially). The log-weights are shifted by their maximum
    before exponentiating: phi spans e^-20 at nu = 0.05, which costs the Fourier-series form
    (`cole_hopf_series`) about 8 digits near x = pi; this form keeps about 15.
    """
    if t <= 0:
        return amplitude * np.sin(wavenumber * (np.asarray(x, dtype=float) - shift))
    points = np.asarray(x, dtype=float)
    scale = np.sqrt(4 * nu * t)
    eta = np.linspace(-12.0, 12.0, 801)
    y = points.reshape(-1, 1) - scale * eta
    log_w = -(eta**2) - amplitude * (1 - np.cos(wavenumber * (y - shift))) / (2 * nu * wavenumber)
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    u = (w * (scale * eta / t)).sum(axis=1) / w.sum(axis=1)
    return u.reshape(points.shape)


def cole_hopf_series(x: np.ndarray, t: float, nu: float, terms: int = 200) -> np.ndarray:
    """The same solution for u0 = sin x as a Fourier series (an independent check of `cole_hopf`).

    exp(cos(y) / (2 nu)) = I_0(a) + 2 sum_n I_n(a) cos(n y), a = 1 / (2 nu), so
    phi = I_0(a) + 2 sum_n I_n(a) exp(-nu n^2 t) cos(n x) and -2 nu phi_x / phi follows termwise
    (scaled Bessel functions ``ive`` avoid overflow; the common factor e^-a cancels).
    """
    a = 1 / (2 * nu)
    n = np.arange(1, terms + 1).reshape(-1, *[1] * np.ndim(x))
    w = ive(n, a) * np.exp(-nu * n**2 * t)
    numerator = 2 * nu * np.sum(2 * n * w * np.sin(n * x), axis=0)
    denominator = ive(0, a) + np.sum(2 * w * np.cos(n * x), axis=0)
    return numerator / denominator


def cell_centres(n: int, length: float) -> np.ndarray:
    """Cell-centre coordinates of ``n`` equal cells on [0, length)."""
    return (np.arange(n) + 0.5) * length / n


def relative_l2(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / ||b||."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def observed_orders(resolutions: Sequence[int], errors: Sequence[float]) -> list[float]:
    """log(e_i / e_{i+1}) / log(n_{i+1} / n_i) for consecutive refinements."""
    return [
        float(np.log(errors[i] / errors[i + 1]) / np.log(resolutions[i + 1] / resolutions[i]))
        for i in range(len(errors) - 1)
    ]


# ----- heat with a variable diffusivity ----------------------------------------------------------


def bump_diffusivity(
    x: np.ndarray,
    y: np.ndarray,
    kappa0: float,
    amplitudes: Sequence[float],
    centres: Sequence[Sequence[float]],
    width: float,
) -> np.ndarray:
    """kappa = kappa0 + sum_i a_i exp(-|x - c_i|^2 / (2 w^2)) on the periodic unit square (wrapped distance)."""
    kappa = np.full(np.broadcast(x, y).shape, kappa0, dtype=float)
    for a, (cx, cy) in zip(amplitudes, centres):
        dx = np.remainder(x - cx + 0.5, 1.0) - 0.5
        dy = np.remainder(y - cy + 0.5, 1.0) - 0.5
        kappa += a * np.exp(-(dx**2 + dy**2) / (2 * width**2))
    return kappa


def heat_operator(m: int, kappa) -> sp.csr_matrix:
    """Sparse matrix of div(kappa grad T) on an ``m x m`` periodic grid of the unit square, ``[Y, X]`` raveled.

    Flux form with kappa evaluated exactly at each face midpoint (the project averages the two
    cell-centre values instead: a different second-order choice, on purpose).
    ``kappa(x, y)`` is a numpy function of coordinates.
    """
    h = 1.0 / m
    c = cell_centres(m, 1.0)
    ys, xs = np.meshgrid(c, c, indexing="ij")
    index = np.arange(m * m).reshape(m, m)
    rows, cols, vals = [], [], []
    for neighbour, face_kappa in (
        (np.roll(index, -1, axis=1), kappa(xs + h / 2, ys)),  # face between (j, i) and (j, i + 1)
        (np.roll(index, -1, axis=0), kappa(xs, ys + h / 2)),  # face between (j, i) and (j + 1, i)
    ):
        w = face_kappa.ravel() / h**2
        a, b = index.ravel(), neighbour.ravel()
        # flux w (T_b - T_a) leaves a's balance as +, b's as -
        rows += [a, a, b, b]
        cols += [a, b, b, a]
        vals += [-w, w, -w, w]
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m * m, m * m))


def heat_reference(m: int, kappa, initial, t: float) -> np.ndarray:
    """T(t) on an ``m x m`` grid ``[Y, X]``: method of lines, time integrated exactly (``expm_multiply``).

    ``initial(x, y)`` is evaluated at the cell centres.
    """
    c = cell_centres(m, 1.0)
    ys, xs = np.meshgrid(c, c, indexing="ij")
    return expm_multiply(heat_operator(m, kappa) * t, initial(xs, ys).ravel()).reshape(m, m)


def at_coarse_centres(fine: np.ndarray, n: int) -> np.ndarray:
    """Values of a fine periodic ``[Y, X]`` grid at the centres of an ``n x n`` grid (bilinear, exact in O(h^2)).

    Odd refinement ratio: a fine centre sits on each coarse centre (injection). Even ratio: the
    coarse centre is the corner of four fine cells, and bilinear interpolation there is their mean.
    """
    r = fine.shape[0] // n
    if r * n != fine.shape[0]:
        raise ValueError(f"fine grid {fine.shape} is not a multiple of {n}")
    if r % 2:
        return fine[r // 2 :: r, r // 2 :: r]
    s = r // 2
    return 0.25 * (fine[s - 1 :: r, s - 1 :: r] + fine[s::r, s - 1 :: r] + fine[s - 1 :: r, s::r] + fine[s::r, s::r])
