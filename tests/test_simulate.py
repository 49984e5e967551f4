"""Tests for skhier.simulate.ScreenSimulator."""

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy import sparse, stats
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from skhier.simulate import ScreenSimulator, _truncnorm_mean

EXPRESSION_COLUMNS = ["gene", "sgRNA", "sample", "M", "U", "H0", "Ht", "effect"]
COUNT_COLUMNS = ["gene", "sgRNA", "sample", "initial", "final", "effect"]


def _within(estimate, target, se, k=5.0):
    """|estimate - target| <= k standard errors (elementwise)."""
    return np.all(np.abs(np.asarray(estimate) - np.asarray(target)) <= k * np.asarray(se))


# ------------------------------------------------------------------ output and layout
def test_default_output_frame():
    sim = ScreenSimulator(random_state=0)
    df = sim.fit_transform()
    assert list(df.columns) == EXPRESSION_COLUMNS
    assert df.shape == (5 * 4 * 50, 8)
    assert isinstance(df.index, pd.RangeIndex)
    assert not df.isna().any().any()
    for column in ["gene", "sgRNA", "sample"]:
        assert pd.api.types.is_string_dtype(df[column])
        assert all(isinstance(v, str) for v in df[column].head())
    for column in ["M", "U", "H0", "Ht", "effect"]:
        assert df[column].dtype == np.float64
    assert (df["H0"] > 0).all() and (df["Ht"] > 0).all()
    assert list(sim.get_feature_names_out()) == EXPRESSION_COLUMNS


def test_layout_labels_and_membership():
    sim = ScreenSimulator(n_genes=3, sgrnas_per_gene=2, n_samples=4, random_state=0)
    df = sim.fit_transform()
    assert df["gene"].unique().tolist() == ["G01", "G02", "G03"]
    assert df["sgRNA"].unique().tolist() == [
        "G01_sg1",
        "G01_sg2",
        "G02_sg1",
        "G02_sg2",
        "G03_sg1",
        "G03_sg2",
    ]
    assert df["sample"].unique().tolist() == ["S01", "S02", "S03", "S04"]
    # every sgRNA in exactly one gene, every (sgRNA, sample) exactly once
    assert (df.groupby("sgRNA")["gene"].nunique() == 1).all()
    assert not df.duplicated(["sgRNA", "sample"]).any()
    assert (df.groupby("sgRNA").size() == 4).all()
    assert (df["sgRNA"].str.split("_").str[0] == df["gene"]).all()
    # rows ordered by gene, sgRNA, sample
    assert df.equals(df.sort_values(["gene", "sgRNA", "sample"]).reset_index(drop=True))
    assert list(sim.genes_) == ["G01", "G02", "G03"]
    assert len(set(sim.sgrnas_)) == len(sim.sgrnas_) == 6
    assert list(sim.samples_) == ["S01", "S02", "S03", "S04"]
    assert sim.design_.columns.tolist() == ["gene", "sgRNA", "sample"]
    assert sim.design_.equals(df[["gene", "sgRNA", "sample"]])


def test_label_padding_sorts_naturally():
    sim = ScreenSimulator(n_genes=100, sgrnas_per_gene=12, n_samples=100, random_state=0).fit()
    assert sim.genes_[0] == "G001" and sim.genes_[-1] == "G100"
    assert sim.sgrnas_[0] == "G001_sg01" and sim.sgrnas_[-1] == "G100_sg12"
    assert sim.samples_[0] == "S001" and sim.samples_[-1] == "S100"
    assert list(sim.sgrnas_) == sorted(sim.sgrnas_)
    assert list(sim.samples_) == sorted(sim.samples_)


def test_m_u_linspace_constant_across_samples():
    sim = ScreenSimulator(n_genes=4, sgrnas_per_gene=3, n_samples=7, random_state=1)
    df = sim.fit_transform()
    per_sgrna = df.groupby("sgRNA", sort=False)[["M", "U"]]
    assert (per_sgrna.nunique() == 1).all().all()
    first = per_sgrna.first()
    np.testing.assert_array_equal(first["M"], np.linspace(0.5, 1.5, 12))
    np.testing.assert_array_equal(first["U"], np.linspace(0.8, 1.8, 12))
    custom = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=2, m_range=(2, 1))
    m = custom.fit_transform().groupby("sgRNA", sort=False)["M"].first()
    np.testing.assert_array_equal(m, np.linspace(2, 1, 4))


# ------------------------------------------------------------------ generative model
def test_bounds_and_exact_reconstruction():
    # a wide sd and a z_mean near the bound make truncation frequent on both sides of sg
    sim = ScreenSimulator(
        n_genes=10,
        sgrnas_per_gene=5,
        n_samples=200,
        sd=3.0,
        z_mean=0.2,
        include_latent=True,
        random_state=3,
    )
    df = sim.fit_transform()
    assert list(df.columns) == EXPRESSION_COLUMNS + ["z", "u", "sg"]
    assert list(sim.get_feature_names_out()) == EXPRESSION_COLUMNS + ["z", "u", "sg"]
    for column in ["z", "u", "sg"]:
        assert df[column].between(0.1, 10.0).all(), column
        assert df[column].min() < 0.15  # the lower bound is actually reached
    assert df["u"].max() > 9.0 or df["sg"].max() > 9.0
    np.testing.assert_array_equal(df["H0"], df["z"] * df["M"] + df["u"] * df["U"])
    np.testing.assert_array_equal(df["Ht"], df["sg"] * df["H0"])
    ratio = df["Ht"] / df["H0"]
    assert ratio.between(0.1 - 1e-12, 10 + 1e-12).all()


def test_custom_bounds_respected():
    sim = ScreenSimulator(n_samples=100, lower=0.5, upper=2.0, include_latent=True, random_state=4)
    df = sim.fit_transform()
    for column in ["z", "u", "sg"]:
        assert df[column].between(0.5, 2.0).all()


def test_gene_effects_follow_forum_gamma():
    # sgrnas_per_gene=1 and sgrna_sd=0: the forum's independent Gamma(1, 1) effects
    n = 20_000
    sim = ScreenSimulator(n_genes=n, sgrnas_per_gene=1, n_samples=1, sgrna_sd=0, random_state=5)
    sim.fit_transform()
    genes = sim.true_effects_["gene"]
    sgrnas = sim.true_effects_["sgRNA"]
    np.testing.assert_array_equal(genes.to_numpy(), sgrnas.to_numpy())
    assert stats.kstest(genes.to_numpy(), stats.gamma(a=1.0, scale=1.0).cdf).pvalue > 1e-3
    assert _within(genes.mean(), 1.0, 1.0 / np.sqrt(n))


@pytest.mark.parametrize(("mean", "sd"), [(2.0, 0.5), (0.5, 1.5)])
def test_gene_effect_mean_and_sd(mean, sd):
    n = 40_000
    sim = ScreenSimulator(
        n_genes=n,
        sgrnas_per_gene=1,
        n_samples=1,
        effect_mean=mean,
        effect_sd=sd,
        sgrna_sd=0,
        random_state=6,
    )
    sim.fit_transform()
    effects = sim.true_effects_["gene"].to_numpy()
    assert (effects > 0).all()
    shape = mean**2 / sd**2
    excess_kurtosis = 6.0 / shape
    assert _within(effects.mean(), mean, sd / np.sqrt(n))
    se_sd = sd * np.sqrt((excess_kurtosis + 2.0) / (4.0 * n))
    assert _within(effects.std(ddof=1), sd, se_sd)


def test_sgrna_effects_spread_around_gene_effect():
    n_genes, per_gene, spread = 2000, 10, 0.3
    sim = ScreenSimulator(
        n_genes=n_genes,
        sgrnas_per_gene=per_gene,
        n_samples=1,
        effect_mean=3.0,
        effect_sd=0.5,
        sgrna_sd=spread,
        random_state=7,
    )
    df = sim.fit_transform()
    sg = sim.true_effects_["sgRNA"]
    gene_of = df.drop_duplicates("sgRNA").set_index("sgRNA")["gene"]
    residual = sg.to_numpy() - sim.true_effects_["gene"].loc[gene_of.loc[sg.index]].to_numpy()
    n = n_genes * per_gene
    assert (sg > 0).all()
    assert _within(residual.mean(), 0.0, spread / np.sqrt(n))
    assert _within(residual.std(ddof=1), spread, spread * np.sqrt(2.3 / (4.0 * n)))
    # the effect column carries the sgRNA's effect
    by_row = df.drop_duplicates("sgRNA").set_index("sgRNA")["effect"]
    pd.testing.assert_series_equal(by_row, sg, check_names=False)


def test_zero_sgrna_sd_gives_gene_effect_exactly():
    sim = ScreenSimulator(n_genes=6, sgrnas_per_gene=3, n_samples=2, sgrna_sd=0, random_state=8)
    df = sim.fit_transform()
    gene_effect = sim.true_effects_["gene"]
    np.testing.assert_array_equal(df["effect"], gene_effect.loc[df["gene"]].to_numpy())


def test_truncated_normal_sample_means_match_scipy():
    sd, lower, upper = 0.8, 0.1, 10.0
    n_samples = 20_000
    sim = ScreenSimulator(
        n_genes=1,
        sgrnas_per_gene=1,
        n_samples=n_samples,
        sd=sd,
        z_mean=0.3,
        u_mean=2.0,
        include_latent=True,
        random_state=9,
    )
    df = sim.fit_transform()
    for column, mu in [("z", 0.3), ("u", 2.0)]:
        dist = stats.truncnorm((lower - mu) / sd, (upper - mu) / sd, loc=mu, scale=sd)
        assert _within(df[column].mean(), dist.mean(), dist.std() / np.sqrt(n_samples))
        assert _within(df[column].std(), dist.std(), dist.std() * np.sqrt(2.0 / n_samples), 6)
    effect = sim.true_effects_["sgRNA"].iloc[0]
    dist = stats.truncnorm((lower - effect) / sd, (upper - effect) / sd, loc=effect, scale=sd)
    assert _within(df["sg"].mean(), dist.mean(), dist.std() / np.sqrt(n_samples))
    assert np.isclose(sim.true_slopes_["sgRNA"].iloc[0], dist.mean(), rtol=1e-12)


def test_ht_over_h0_averages_to_true_slope():
    sd, n_samples = 0.5, 3000
    sim = ScreenSimulator(
        n_genes=30, sgrnas_per_gene=2, n_samples=n_samples, sd=sd, random_state=10
    )
    df = sim.fit_transform()
    slopes = sim.true_slopes_["sgRNA"]
    effects = sim.true_effects_["sgRNA"]
    assert slopes.index.equals(effects.index)
    assert slopes.name == effects.name == "effect"
    observed = (df["Ht"] / df["H0"]).groupby(df["sgRNA"], sort=False).mean()
    a = (0.1 - effects.to_numpy()) / sd
    b = (10.0 - effects.to_numpy()) / sd
    se = stats.truncnorm.std(a, b, loc=effects.to_numpy(), scale=sd) / np.sqrt(n_samples)
    assert _within(observed.loc[slopes.index], slopes, se)
    # near the lower bound the slope differs from the generating effect (and exceeds it)
    # (the lower bound pulls the mean up below the bounds' midpoint, the upper one down above it)
    below_mid = effects < (0.1 + 10.0) / 2
    assert (slopes[below_mid] >= effects[below_mid] - 1e-12).all()
    assert (slopes[~below_mid] <= effects[~below_mid] + 1e-12).all()
    small = effects < 0.3
    assert small.any()
    assert (slopes[small] - effects[small] > 0.1).all()
    # ... and the regression through the origin estimates the slope, not the effect
    beta = (df["Ht"] * df["H0"]).groupby(df["sgRNA"], sort=False).sum() / (
        (df["H0"] ** 2).groupby(df["sgRNA"], sort=False).sum()
    )
    assert _within(beta.loc[slopes.index], slopes, 2 * se)
    # gene slope = mean of its sgRNAs' slopes
    gene_of = df.drop_duplicates("sgRNA").set_index("sgRNA")["gene"]
    expected_gene = slopes.groupby(gene_of.loc[slopes.index].to_numpy(), sort=False).mean()
    np.testing.assert_allclose(sim.true_slopes_["gene"], expected_gene, rtol=1e-12)
    assert sim.true_slopes_["gene"].index.tolist() == sim.true_effects_["gene"].index.tolist()


def test_truncnorm_mean_matches_scipy_including_tails():
    loc = np.concatenate([np.linspace(-3.0, 12.0, 301), [1e-300, 0.0, 0.1, 10.0, 25.0, -20.0]])
    for scale in (0.1, 0.5, 2.0):
        a, b = (0.1 - loc) / scale, (10.0 - loc) / scale
        with np.errstate(all="ignore"):
            expected = np.array(
                [
                    stats.truncnorm.mean(ai, bi, loc=li, scale=scale)
                    for ai, bi, li in zip(a, b, loc, strict=True)
                ]
            )
        got = _truncnorm_mean(loc, scale, 0.1, 10.0)
        assert np.all(np.isfinite(got))
        assert np.all((got >= 0.1) & (got <= 10.0))
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ reproducibility
def test_same_seed_same_frame_different_seed_different():
    sim = ScreenSimulator(n_genes=4, sgrnas_per_gene=3, n_samples=10, random_state=42)
    first = sim.fit_transform()
    pd.testing.assert_frame_equal(first, sim.transform())
    pd.testing.assert_frame_equal(
        first,
        ScreenSimulator(
            n_genes=4, sgrnas_per_gene=3, n_samples=10, random_state=42
        ).fit_transform(),
    )
    pd.testing.assert_frame_equal(first, clone(sim).transform())
    other = sim.set_params(random_state=43).transform()
    assert not np.allclose(first["Ht"], other["Ht"])
    assert not np.allclose(first["effect"], other["effect"])
    np.testing.assert_array_equal(first["M"], other["M"])
    pd.testing.assert_frame_equal(
        first[["gene", "sgRNA", "sample"]], other[["gene", "sgRNA", "sample"]]
    )


def test_numpy_integer_seed_equals_python_int():
    a = ScreenSimulator(n_samples=3, random_state=np.int64(7)).fit_transform()
    b = ScreenSimulator(n_samples=3, random_state=7).fit_transform()
    pd.testing.assert_frame_equal(a, b)


def test_generator_randomstate_and_none_advance():
    rng = np.random.default_rng(0)
    sim = ScreenSimulator(n_samples=3, random_state=rng)
    assert not sim.fit_transform()["Ht"].equals(sim.transform()["Ht"])
    rs = np.random.RandomState(0)
    sim = ScreenSimulator(n_samples=3, random_state=rs)
    first = sim.fit_transform()
    assert not first["Ht"].equals(sim.transform()["Ht"])
    again = ScreenSimulator(n_samples=3, random_state=np.random.RandomState(0)).fit_transform()
    pd.testing.assert_frame_equal(first, again)
    sim = ScreenSimulator(n_samples=3)
    assert not sim.fit_transform()["Ht"].equals(sim.transform()["Ht"])


def test_true_effects_refer_to_last_draw():
    sim = ScreenSimulator(n_samples=2, random_state=0)
    sim.fit()
    assert not hasattr(sim, "true_effects_")
    df = sim.transform()
    truth = sim.true_effects_
    assert set(truth) == {"sgRNA", "gene"}
    assert truth["sgRNA"].index.name == "sgRNA" and truth["gene"].index.name == "gene"
    assert truth["sgRNA"].index.tolist() == df["sgRNA"].unique().tolist()
    sim.set_params(random_state=1).transform()
    assert not np.allclose(sim.true_effects_["gene"], truth["gene"])


# ------------------------------------------------------------------ design frames
def _ragged_design():
    rows = []
    layout = {
        "BRCA1": {"BRCA1_a": ["s1", "s2", "s3"], "BRCA1_b": ["s1"]},
        "TP53": {"TP53_a": ["s2", "s3"]},
        "MYC": {"MYC_a": ["s1", "s2", "s3", "s4", "s5"], "MYC_b": ["s4"], "MYC_c": ["s2", "s5"]},
    }
    for gene, sgrnas in layout.items():
        for sgrna, samples in sgrnas.items():
            rows += [{"sample": s, "sgRNA": sgrna, "gene": gene, "extra": 1.5} for s in samples]
    design = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # shuffled order
    return design.set_index(pd.Index(np.arange(100, 100 + len(design)), name="row"))


def test_transform_ragged_design():
    design = _ragged_design()
    before = design.copy(deep=True)
    sim = ScreenSimulator(random_state=0, include_latent=True)
    df = sim.transform(design)
    pd.testing.assert_frame_equal(design, before)  # input not mutated
    assert len(df) == len(design)
    assert isinstance(df.index, pd.RangeIndex)
    assert "extra" not in df.columns
    for column in ["gene", "sgRNA", "sample"]:
        assert df[column].tolist() == design[column].tolist()
    first_seen = list(dict.fromkeys(design["sgRNA"]))
    m = df.groupby("sgRNA", sort=False)["M"].agg(["first", "nunique"])
    assert (m["nunique"] == 1).all()
    np.testing.assert_array_equal(m.loc[first_seen, "first"], np.linspace(0.5, 1.5, 6))
    u = df.groupby("sgRNA", sort=False)["U"].first()
    np.testing.assert_array_equal(u.loc[first_seen], np.linspace(0.8, 1.8, 6))
    assert sim.true_effects_["sgRNA"].index.tolist() == first_seen
    assert sim.true_effects_["gene"].index.tolist() == list(dict.fromkeys(design["gene"]))
    effect = sim.true_effects_["sgRNA"].loc[df["sgRNA"]].to_numpy()
    np.testing.assert_array_equal(df["effect"], effect)
    np.testing.assert_array_equal(df["H0"], df["z"] * df["M"] + df["u"] * df["U"])
    assert not hasattr(sim, "design_")  # transform(X) does not fit


def test_fit_design_then_transform_uses_it():
    design = _ragged_design()
    before = design.copy(deep=True)
    sim = ScreenSimulator(random_state=1).fit(design)
    pd.testing.assert_frame_equal(design, before)
    assert sim.design_.columns.tolist() == ["gene", "sgRNA", "sample"]
    assert len(sim.design_) == len(design)
    assert sorted(sim.genes_) == ["BRCA1", "MYC", "TP53"]
    assert len(sim.sgrnas_) == 6
    assert sorted(sim.samples_) == ["s1", "s2", "s3", "s4", "s5"]
    pd.testing.assert_frame_equal(sim.transform(), sim.transform(design))
    pd.testing.assert_frame_equal(sim.transform(), sim.fit_transform(design))
    counts = clone(sim).set_params(mode="counts").fit_transform(design)
    assert counts["sgRNA"].tolist() == design["sgRNA"].tolist()


def test_design_with_non_string_labels():
    design = pd.DataFrame({"gene": [1, 1, 2], "sgRNA": [10, 11, 20], "sample": [1, 1, 2]})
    df = ScreenSimulator(random_state=0).transform(design)
    assert df["gene"].tolist() == ["1", "1", "2"]
    assert df["sgRNA"].tolist() == ["10", "11", "20"]
    assert df["sample"].tolist() == [1, 1, 2]


@pytest.mark.parametrize(
    ("design", "error", "match"),
    [
        (np.zeros((3, 3)), TypeError, "X must be None or a pandas DataFrame.*ndarray"),
        (
            sparse.csr_array(np.eye(3)),
            TypeError,
            r"got a sparse csr_array \(sparse input is not supported",
        ),
        (pd.DataFrame({"gene": ["a"], "sgRNA": ["x"]}), ValueError, r"missing.*\['sample'\]"),
        (
            pd.DataFrame({"gene": ["a", "b"], "sgRNA": ["x", "x"], "sample": [1, 2]}),
            ValueError,
            r"exactly one gene.*'x' in \['a', 'b'\]",
        ),
        (
            pd.DataFrame({"gene": ["a", "a"], "sgRNA": ["x", "x"], "sample": [1, 1]}),
            ValueError,
            r"\(sgRNA, sample\).*sgRNA 'x' in sample 1",
        ),
        (
            pd.DataFrame({"gene": ["a", None], "sgRNA": ["x", "y"], "sample": [1, 1]}),
            ValueError,
            "'gene' has 1 missing",
        ),
        (pd.DataFrame({"gene": [], "sgRNA": [], "sample": []}), ValueError, "no rows"),
    ],
)
def test_bad_design(design, error, match):
    sim = ScreenSimulator(random_state=0)
    with pytest.raises(error, match=match):
        sim.fit(design)
    with pytest.raises(error, match=match):
        sim.transform(design)


# ------------------------------------------------------------------ sklearn API
def test_get_params_clone_set_params():
    sim = ScreenSimulator(n_genes=3, sd=0.8, mode="counts", random_state=5)
    params = sim.get_params()
    assert params["n_genes"] == 3 and params["sd"] == 0.8 and params["mode"] == "counts"
    assert params["m_range"] == (0.5, 1.5)
    for name in ["sgrnas_per_gene", "n_samples", "effect_mean", "sgrna_sd", "dispersion"]:
        assert name in params
    copy = clone(sim)
    assert copy.get_params() == params
    assert copy is not sim
    copy.set_params(mode="expression", n_genes=2)
    assert sim.mode == "counts" and copy.n_genes == 2
    sim.fit()
    assert sim.get_params() == params  # fit does not alter parameters
    assert not hasattr(clone(sim), "design_")
    with pytest.raises(TypeError):
        ScreenSimulator(5)  # keyword-only


def test_fit_transform_without_arguments_and_without_fit():
    sim = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=3, random_state=0)
    assert sim.fit() is sim
    unfitted = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=3, random_state=0)
    df = unfitted.transform()
    assert not hasattr(unfitted, "design_")
    pd.testing.assert_frame_equal(df, sim.fit_transform())
    assert unfitted.__sklearn_tags__().requires_fit is False


def test_fitted_design_is_kept_after_set_params():
    sim = ScreenSimulator(n_genes=2, sgrnas_per_gene=2, n_samples=3, random_state=0).fit()
    sim.set_params(n_genes=5)
    assert len(sim.transform()) == 2 * 2 * 3  # the fitted layout, as sklearn semantics say
    assert len(sim.fit_transform()) == 5 * 2 * 3


def test_sklearn_contracts_on_a_design_frame():
    # What scikit-learn's checks assert on a numeric X (which is not a design; see
    # tests/test_common.py), here on a design frame.
    design = _ragged_design()
    sim = ScreenSimulator(mode="counts", random_state=3)
    params = sim.get_params()
    assert sim.fit(design, design["sgRNA"]) is sim  # fit returns self and accepts (ignores) y
    assert sim.get_params() == params  # fit leaves the parameters alone...
    assert all(k.endswith("_") for k in vars(sim) if k not in params)  # ...and adds only attrs_
    check_is_fitted(sim)
    first = sim.transform()
    assert len(first) == len(design)  # one output row per design row
    assert set(vars(sim)) - set(params) == {
        "design_",
        "genes_",
        "sgrnas_",
        "samples_",
        "true_effects_",  # transform records the truth of its draw
        "true_slopes_",
    }
    pd.testing.assert_frame_equal(sim.fit(design).transform(), first)  # idempotent fit
    restored = pickle.loads(pickle.dumps(sim))
    pd.testing.assert_frame_equal(restored.transform(), first)
    pd.testing.assert_series_equal(restored.true_effects_["gene"], sim.true_effects_["gene"])
    pd.testing.assert_frame_equal(restored.design_, sim.design_)


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"n_genes": 0}, ValueError, r"n_genes must be an integer >= 1, got 0"),
        ({"n_genes": 2.5}, TypeError, r"n_genes must be an integer.*got 2.5 of type float"),
        ({"sgrnas_per_gene": True}, TypeError, r"sgrnas_per_gene.*got True"),
        ({"n_samples": -3}, ValueError, r"n_samples.*got -3"),
        ({"sd": 0.0}, ValueError, r"sd must be a finite number > 0, got 0.0"),
        ({"sd": "big"}, TypeError, r"sd must be a finite number.*'big' of type str"),
        ({"effect_mean": -1.0}, ValueError, r"effect_mean.*> 0, got -1.0"),
        ({"effect_sd": np.inf}, ValueError, r"effect_sd.*finite.*got inf"),
        ({"sgrna_sd": -0.1}, ValueError, r"sgrna_sd.*>= 0, got -0.1"),
        ({"z_mean": np.nan}, ValueError, r"z_mean.*got nan"),
        ({"lower": 5.0, "upper": 1.0}, ValueError, r"lower must be smaller.*lower=5.0.*upper=1.0"),
        ({"m_range": (1.0,)}, TypeError, r"m_range must be a pair.*\(1.0,\)"),
        ({"u_range": (0.0, np.inf)}, ValueError, r"u_range must be a pair.*inf"),
        (
            {"mode": "count"},
            ValueError,
            r"mode='count' is not valid; choose one of \('expression', 'counts'\)\.",
        ),
        (
            {"selection": "up"},
            ValueError,
            r"selection='up' is not valid; choose one of \('negative', 'positive'\)\.",
        ),
        ({"mode": None}, ValueError, r"mode=None is not valid; choose one of \('expression', "),
        ({"mean_count": 0}, ValueError, r"mean_count.*> 0, got 0"),
        ({"dispersion": -0.5}, ValueError, r"dispersion.*>= 0, got -0.5"),
        ({"hit_fraction": 1.5}, ValueError, r"hit_fraction.*<= 1, got 1.5"),
        ({"abundance_sd": -1}, ValueError, r"abundance_sd.*got -1"),
        ({"include_latent": "yes"}, TypeError, r"include_latent must be True or False.*'yes'"),
        ({"random_state": "seed"}, TypeError, r"random_state must be.*'seed'"),
        ({"random_state": -1}, ValueError, r"random_state must be a non-negative.*-1"),
    ],
)
def test_bad_parameters(params, error, match):
    sim = ScreenSimulator(**params)  # __init__ only stores
    with pytest.raises(error, match=match):
        sim.fit()
    with pytest.raises(error, match=match):
        sim.transform()
    with pytest.raises(error, match=match):
        sim.fit_transform()


# ------------------------------------------------------------------ count mode
def test_count_mode_basics():
    n_genes = 20
    sim = ScreenSimulator(
        n_genes=n_genes, sgrnas_per_gene=4, n_samples=3, mode="counts", random_state=0
    )
    df = sim.fit_transform()
    assert list(df.columns) == COUNT_COLUMNS
    assert list(sim.get_feature_names_out()) == COUNT_COLUMNS
    assert df.shape == (n_genes * 4 * 3, 6)
    assert df["initial"].dtype == np.int64 and df["final"].dtype == np.int64
    assert (df["initial"] >= 0).all() and (df["final"] >= 0).all()
    assert not df.isna().any().any()
    genes = sim.true_effects_["gene"]
    assert (genes < 0).sum() == 4  # round(0.2 * 20) depleted genes
    assert (genes[genes >= 0] == 0).all()
    gene_of = df.drop_duplicates("sgRNA").set_index("sgRNA")["gene"]
    sgrna = sim.true_effects_["sgRNA"]
    by_row = df.drop_duplicates("sgRNA").set_index("sgRNA")["effect"]
    pd.testing.assert_series_equal(by_row, sgrna, check_names=False)
    expected_gene_slope = sgrna.groupby(gene_of.loc[sgrna.index].to_numpy(), sort=False).mean()
    np.testing.assert_allclose(sim.true_slopes_["gene"], expected_gene_slope)
    pd.testing.assert_series_equal(sim.true_slopes_["sgRNA"], sgrna)
    pd.testing.assert_frame_equal(df, sim.transform())


def test_count_mode_selection_and_hit_fraction():
    sim = ScreenSimulator(
        n_genes=10,
        n_samples=2,
        mode="counts",
        selection="positive",
        hit_fraction=0.5,
        sgrna_sd=0,
        random_state=1,
    )
    sim.fit_transform()
    genes = sim.true_effects_["gene"]
    assert (genes > 0).sum() == 5 and (genes == 0).sum() == 5
    none = sim.set_params(hit_fraction=0.0).transform()
    assert (none["effect"] == 0).all()


def test_count_mode_fold_change_and_negative_binomial_variance():
    phi, n_samples = 0.05, 4000
    sim = ScreenSimulator(
        n_genes=5,
        sgrnas_per_gene=2,
        n_samples=n_samples,
        mode="counts",
        hit_fraction=0.6,
        dispersion=phi,
        include_latent=True,
        random_state=2,
    )
    df = sim.fit_transform()
    assert list(df.columns) == COUNT_COLUMNS + ["mu_initial", "mu_final"]
    np.testing.assert_allclose(np.log(df["mu_final"] / df["mu_initial"]), df["effect"])
    g = df.groupby("sgRNA", sort=False)
    mu_i = g["mu_initial"].first()
    mu_f = g["mu_final"].first()
    for column, mu in [("initial", mu_i), ("final", mu_f)]:
        var = mu + phi * mu**2
        assert _within(g[column].mean(), mu, np.sqrt(var / n_samples))
        # Var(sample variance) ~ 2 var^2 / n plus the (moderate) excess-kurtosis term
        assert _within(g[column].var(), var, var * np.sqrt(2.5 / n_samples), 6)
    lfc = np.log(g["final"].mean() / g["initial"].mean())
    se = np.sqrt(phi * 2 / n_samples + 1 / (mu_i * n_samples) + 1 / (mu_f * n_samples))
    assert _within(lfc, sim.true_effects_["sgRNA"].loc[lfc.index], se)
    # the library's mean abundance is mean_count
    assert _within(np.log(mu_i).std(), 0.5, 0.5)


def test_count_mode_poisson_when_dispersion_zero():
    sim = ScreenSimulator(
        n_genes=1,
        sgrnas_per_gene=1,
        n_samples=20_000,
        mode="counts",
        dispersion=0.0,
        mean_count=50.0,
        abundance_sd=0.0,
        random_state=3,
    )
    df = sim.fit_transform()
    n = len(df)
    assert _within(df["initial"].mean(), 50.0, np.sqrt(50.0 / n))
    assert _within(df["initial"].var(), 50.0, 50.0 * np.sqrt(2.0 / n), 6)
