"""Shared test helpers: the forum's formula and cheap sampler settings (importable, not fixtures)."""

FORUM = "Ht ~ 0 + H0:(1|gene/sgRNA)"


def small_kwargs(**kw):
    """Cheap sampler settings for tests that fit many times."""
    base = dict(
        sampler="pymc", draws=200, tune=200, chains=2, n_jobs=1, random_state=0, on_fail="ignore"
    )
    base.update(kw)
    return base
