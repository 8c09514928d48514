"""Student-T and Gaussian predictive distributions: log-density, CDF, CRPS, E|X|, standard deviation.

The forecaster's output is a location-scale Student-T ``y = loc + scale * Z``, ``Z ~ t(dof)``, per
target and horizon.  A single Student-T (not Toto's Student-T *mixture*) is used: daily equity
log-returns are well described by one fat-tailed component with time-varying scale, the closed forms
below (CRPS, E|X|) stay exact, and the head stays a plain linear layer (easy to mirror in Torch).

CRPS uses the closed form of Jordan, Krueger & Lerch (2019, J. Stat. Softw., ``scoringRules::crps_t``)::

    CRPS(t_dof, z) = z (2 F(z) - 1) + 2 f(z) (dof + z^2) / (dof - 1)
                     - 2 sqrt(dof) B(1/2, dof - 1/2) / ((dof - 1) B(1/2, dof/2)^2)

scaled by ``scale`` for ``z = (y - loc) / scale`` (valid for dof > 1).  ``E|X|`` uses the same first two
terms: ``E|Z - a| = a (2F(a) - 1) + 2 f(a) (dof + a^2) / (dof - 1)``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import betainc, betaln, gammaln
from jax.scipy.stats import norm

_LOG_SQRT_PI = 0.5 * jnp.log(jnp.pi)


def student_t_logpdf(y, loc, scale, dof):
    """log density of the location-scale Student-T at ``y`` (same units as ``loc``/``scale``)."""
    z = (y - loc) / scale
    return (
        gammaln((dof + 1) / 2)
        - gammaln(dof / 2)
        - 0.5 * jnp.log(dof)
        - _LOG_SQRT_PI
        - jnp.log(scale)
        - (dof + 1) / 2 * jnp.log1p(z * z / dof)
    )


def _std_t_pdf(z, dof):
    return jnp.exp(student_t_logpdf(z, 0.0, 1.0, dof))


def student_t_cdf(y, loc, scale, dof):
    """CDF of the location-scale Student-T (via the regularised incomplete beta function)."""
    z = (y - loc) / scale
    tail = 0.5 * betainc(dof / 2, 0.5, dof / (dof + z * z))
    return jnp.where(z > 0, 1.0 - tail, tail)


def _abs_dev_std(a, dof):
    """E|Z - a| for standard Student-T Z (dof > 1)."""
    return a * (2 * student_t_cdf(a, 0.0, 1.0, dof) - 1) + 2 * _std_t_pdf(a, dof) * (
        dof + a * a
    ) / (dof - 1)


def student_t_crps(y, loc, scale, dof):
    """Closed-form CRPS of the location-scale Student-T at observation ``y`` (units of ``y``)."""
    z = (y - loc) / scale
    const = (
        2 * jnp.sqrt(dof) / (dof - 1) * jnp.exp(betaln(0.5, dof - 0.5) - 2 * betaln(0.5, dof / 2))
    )
    return scale * (_abs_dev_std(z, dof) - const)


def student_t_expected_abs(loc, scale, dof):
    """E|X| for X ~ loc + scale * t(dof) (e.g. predicted absolute return)."""
    return scale * _abs_dev_std(-loc / scale, dof)


def student_t_std(scale, dof):
    """Standard deviation ``scale * sqrt(dof / (dof - 2))`` (dof > 2)."""
    return scale * jnp.sqrt(dof / (dof - 2))


def gaussian_logpdf(y, loc, sigma):
    return norm.logpdf(y, loc, sigma)


def gaussian_crps(y, loc, sigma):
    """Closed-form Gaussian CRPS: ``sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)]``."""
    z = (y - loc) / sigma
    return sigma * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / jnp.sqrt(jnp.pi))


def gaussian_expected_abs(loc, sigma):
    """E|X| for X ~ N(loc, sigma^2)."""
    a = -loc / sigma
    return sigma * (a * (2 * norm.cdf(a) - 1) + 2 * norm.pdf(a))
