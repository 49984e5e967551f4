import bambi as bmb
import numpy as np
import pandas as pd
import pytest

from skhier.formula import parse_formula
from skhier.priors import Prior, default_priors, merge_priors


def frame():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"g": np.repeat(["a", "b", "c", "d"], 25)})
    df["x"] = rng.uniform(1, 3, 100)
    df["z"] = rng.normal(size=100)
    df["y"] = 2 * df.x + rng.normal(size=100)
    return df


@pytest.mark.parametrize(
    "formula", ["y ~ 0 + x + (0 + x|g)", "y ~ 1 + x + z + (x|g)", "y ~ x + (1|g)"]
)
def test_defaults_equal_bambi(formula):
    df = frame()
    ours = default_priors(parse_formula(formula), df)
    model = bmb.Model(formula, df)
    mu = model.components["mu"]
    terms = dict(mu.common_terms)
    if mu.intercept_term is not None:
        terms["Intercept"] = mu.intercept_term
    for name, term in terms.items():
        assert ours[name].args["sigma"] == pytest.approx(float(term.prior.args["sigma"]))
        assert ours[name].args["mu"] == pytest.approx(float(term.prior.args["mu"]))
    for name, term in mu.group_specific_terms.items():
        assert ours[name].args["sigma"].args["sigma"] == pytest.approx(
            float(np.squeeze(term.prior.args["sigma"].args["sigma"]))
        )
    sigma = model.components["sigma"].prior
    assert ours["sigma"].name == sigma.name == "HalfStudentT"
    assert ours["sigma"].args["sigma"] == pytest.approx(float(sigma.args["sigma"]))


def test_merge_rejects_unknown_names():
    defaults = default_priors(parse_formula("y ~ x"), frame())
    with pytest.raises(ValueError, match="'H0'.*valid names are"):
        merge_priors(defaults, {"H0": Prior("Normal", {"mu": 0, "sigma": 1})})


def test_constant_predictor_is_reported():
    df = frame().assign(x=1.0)
    with pytest.raises(ValueError, match="column 'x' is constant"):
        default_priors(parse_formula("y ~ x"), df)


def test_bambi_prior_converts():
    p = Prior.from_any(bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=2)))
    assert p.name == "Normal" and p.args["sigma"].name == "HalfNormal"
    assert p.to_bambi().name == "Normal"
