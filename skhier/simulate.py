"""Simulate CRISPR-screen-like data from the forum's generative model.

:class:`ScreenSimulator` draws tidy data sets whose true sgRNA and gene effects are known, so that
rankings (:class:`skhier.HierarchicalRanker`, :func:`skhier.rank_posterior`) can be checked against
the truth.
"""

from __future__ import annotations

import logging
import math
import numbers

import numpy as np
import pandas as pd
from scipy import sparse, special, stats
from sklearn.base import BaseEstimator, TransformerMixin

from skhier._validation import check_choice

__all__ = ["ScreenSimulator"]

logger = logging.getLogger("skhier")

_MODES = ("expression", "counts")
_SELECTIONS = ("negative", "positive")
_DESIGN_COLUMNS = ("gene", "sgRNA", "sample")
_EXPRESSION_COLUMNS = ("gene", "sgRNA", "sample", "M", "U", "H0", "Ht", "effect")
_EXPRESSION_LATENT = ("z", "u", "sg")
_COUNT_COLUMNS = ("gene", "sgRNA", "sample", "initial", "final", "effect")
_COUNT_LATENT = ("mu_initial", "mu_final")
_TINY = np.finfo(np.float64).tiny


class ScreenSimulator(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    r"""Simulate a CRISPR screen with known sgRNA and gene effects.

    In the default ``mode="expression"`` this is the forum's generative model: a baseline ``H0``
    and a response ``Ht = sg * H0`` for every sgRNA and sample, where the multiplier ``sg`` is a
    truncated normal around the sgRNA's true effect, and sgRNA effects are spread around their
    gene's effect. ``mode="counts"`` draws negative binomial read counts before and after
    selection instead, like a pooled screen's count table.

    ``fit`` stores only the layout (which sgRNAs, genes and samples); every call to ``transform``
    draws a new data set on that layout (identical draws for an integer ``random_state``).

    Parameters
    ----------
    n_genes : int, default=5
        Number of genes in the generated layout (labels ``G01``, ``G02``, ...).
    sgrnas_per_gene : int, default=4
        Number of sgRNAs per gene (labels ``G01_sg1``, ``G01_sg2``, ...; globally unique).
    n_samples : int, default=50
        Number of samples per sgRNA (labels ``S01``, ``S02``, ...). In ``mode="counts"`` these are
        replicates (or cell lines), each with its own ``initial`` and ``final`` count; real screens
        have 2-4.
    sd : float, default=0.5
        Scale of the truncated normals for ``z``, ``u`` and ``sg`` (the forum tried 0.1, 0.8
        and 0.5). Must be > 0. Expression mode only.
    z_mean : float, default=1.0
        Location of the truncated normal for ``z``. Expression mode only.
    u_mean : float, default=1.0
        Location of the truncated normal for ``u``. Expression mode only.
    effect_mean : float, default=1.0
        Mean of the Gamma distribution of gene effects (> 0). In ``mode="counts"``, the mean
        magnitude of the hit genes' log fold changes.
    effect_sd : float, default=1.0
        Standard deviation of that Gamma distribution (>= 0; 0 gives every gene
        ``effect_mean``). The Gamma has shape ``effect_mean**2 / effect_sd**2`` and scale
        ``effect_sd**2 / effect_mean``; the defaults give the forum's Gamma(1, 1).
    sgrna_sd : float, default=0.25
        Spread of the sgRNA effects around their gene's effect (>= 0). In expression mode the
        sgRNA effects are Gamma distributed with mean equal to the gene effect and this standard
        deviation, so they stay positive; in count mode they are the gene's log fold change plus
        Normal(0, ``sgrna_sd``) noise. 0 gives every sgRNA exactly its gene's effect, which with
        ``sgrnas_per_gene=1`` reproduces the forum's independent Gamma(1, 1) effects. The default
        0.25 makes sgRNAs of a gene clearly more alike than genes are to each other
        (``effect_sd=1``) while leaving enough within-gene variation for partial pooling to
        matter: with ``sd=0.5`` and 50 samples one sgRNA's slope is estimated to about +-0.05, so
        sgRNAs within a gene are distinguishable too.
    lower, upper : float, default=0.1, 10.0
        Truncation bounds of the truncated normals (``lower < upper``). Expression mode only.
    m_range : tuple of (float, float), default=(0.5, 1.5)
        ``M_j`` is ``np.linspace(*m_range, n_sgrnas)`` over the sgRNAs. Expression mode only.
    u_range : tuple of (float, float), default=(0.8, 1.8)
        ``U_j`` is ``np.linspace(*u_range, n_sgrnas)`` over the sgRNAs. Expression mode only.
    mode : {"expression", "counts"}, default="expression"
        ``"expression"``: the forum's ``H0``/``Ht`` model; ``"counts"``: negative binomial read
        counts before and after selection (see Notes).
    mean_count : float, default=500.0
        Mean expected read count of an sgRNA before selection (> 0). Count mode only.
    abundance_sd : float, default=0.5
        Standard deviation of the log library abundance of the sgRNAs (>= 0): the expected
        initial count of sgRNA ``j`` is ``mean_count * exp(abundance_sd * N(0, 1) -
        abundance_sd**2 / 2)``, which has mean ``mean_count``. Count mode only.
    dispersion : float, default=0.05
        Negative binomial dispersion ``phi`` (>= 0): ``Var = mu + phi * mu**2``; 0 gives Poisson
        counts. 0.05 is in the range MAGeCK estimates for replicate screens. Count mode only.
    hit_fraction : float, default=0.2
        Fraction of genes with a non-zero log fold change (in [0, 1], rounded to the nearest
        number of genes). The other genes have a true effect of exactly 0. Count mode only.
    selection : {"negative", "positive"}, default="negative"
        Direction of the hits' log fold changes: ``"negative"`` (depleted, as in an
        essential-gene screen) or ``"positive"`` (enriched). Count mode only.
    include_latent : bool, default=False
        Also return the latent draws: columns ``z, u, sg`` in expression mode (so that
        ``H0 == z * M + u * U`` and ``Ht == sg * H0`` can be checked exactly), ``mu_initial,
        mu_final`` (the negative binomial means) in count mode.
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Seed of the draws. An int gives identical output on every ``transform`` call and on any
        fresh or cloned instance. A ``Generator`` is used as is (and advanced, so successive
        calls differ); a ``RandomState`` seeds a new Generator on each call (and is advanced);
        None draws fresh entropy on each call.

    Attributes
    ----------
    design_ : pandas.DataFrame
        The layout, set by ``fit``: columns ``gene, sgRNA, sample``, one row per sgRNA and
        sample, in the order of the output rows.
    genes_ : numpy.ndarray of str
        Gene labels in order of first appearance (set by ``fit``).
    sgrnas_ : numpy.ndarray of str
        sgRNA labels in order of first appearance (set by ``fit``).
    samples_ : numpy.ndarray
        Sample labels in order of first appearance (set by ``fit``).
    true_effects_ : dict of str to pandas.Series
        Set by ``transform`` (the draw happens there): the true effects of the last draw, keyed
        by level, ``"sgRNA"`` and ``"gene"``; each Series is indexed by the labels and named
        ``"effect"``. In expression mode these are the locations ``effect_j`` of the truncated
        normals (the Gamma draws); in count mode the log fold changes.
    true_slopes_ : dict of str to pandas.Series
        Set by ``transform``: what a fitted model actually estimates, keyed like
        ``true_effects_``. In expression mode the sgRNA slope is ``E[sg_sj]``, the mean of the
        truncated normal with location ``effect_j``, which is what a regression
        ``Ht ~ beta * H0`` estimates (it exceeds ``effect_j`` when ``effect_j`` is near or below
        ``lower``, and falls short of it near ``upper``); a gene's slope is the mean of its
        sgRNAs' slopes. In count mode the sgRNA slope is the sgRNA's log fold change,
        ``log(E[final] / E[initial])``, and a gene's is the mean of its sgRNAs'. Compare
        rankings to these.

    See Also
    --------
    skhier.HierarchicalRanker : Fit a hierarchical model and rank the groups.
    skhier.datasets.load_mageck_leukemia : A real screen's count table.

    Notes
    -----
    **Expression mode** (the forum's model). With sgRNAs ``j`` (in gene ``g(j)``) and samples
    ``s``:

    .. math::

        M_j &= \mathrm{linspace}(0.5, 1.5)_j, \quad U_j = \mathrm{linspace}(0.8, 1.8)_j \\
        z_{sj} &\sim \mathrm{TN}(z_{mean}, sd; [lower, upper]), \quad
        u_{sj} \sim \mathrm{TN}(u_{mean}, sd; [lower, upper]) \\
        H0_{sj} &= z_{sj} M_j + u_{sj} U_j \\
        b_g &\sim \mathrm{Gamma}(\mu = effect_{mean}, \sigma = effect_{sd}), \quad
        effect_j \sim \mathrm{Gamma}(\mu = b_{g(j)}, \sigma = sgrna_{sd}) \\
        sg_{sj} &\sim \mathrm{TN}(effect_j, sd; [lower, upper]), \quad Ht_{sj} = sg_{sj} H0_{sj}

    ``M`` and ``U`` depend on the sgRNA only (constant across samples). sgRNA effects that would
    underflow to 0 (tiny gene effects with a relatively large ``sgrna_sd``) are set to the
    smallest positive float. Truncated normals are drawn with :data:`scipy.stats.truncnorm`.

    *Effects versus slopes.* The truncation at ``lower`` shifts the mean of ``sg`` above its
    location: with ``sd = 0.5``, ``effect_j = 0.05`` gives ``E[sg] = 0.48`` and ``effect_j = 1``
    gives ``E[sg] = 1.04`` (symmetrically, ``E[sg] < effect_j`` near ``upper``). The data carry
    information about ``E[sg]`` (the slope of ``Ht`` on ``H0``), so ``true_slopes_`` is the
    truth a slope model should recover, while ``true_effects_`` are the generating parameters.
    Their rankings agree (``E[sg]`` increases with ``effect_j``), but their values differ for
    small effects.

    **Count mode.** ``round(hit_fraction * n_genes)`` genes, chosen at random, get a log fold
    change ``b_g = -Gamma(effect_mean, effect_sd)`` (``+`` for ``selection="positive"``); the
    rest get 0. sgRNA ``j`` has log fold change ``effect_j = b_{g(j)} + Normal(0, sgrna_sd)``
    and library abundance ``a_j = mean_count * exp(abundance_sd * N(0, 1) - abundance_sd**2 /
    2)``. Then, independently for every sample (replicate) ``s``,
    ``initial_sj ~ NB(a_j, dispersion)`` and ``final_sj ~ NB(a_j * exp(effect_j),
    dispersion)``, so that ``log(E[final] / E[initial]) = effect_j`` (natural log) exactly: a
    model ``final ~ offset(log(initial)) + (1|gene/sgRNA)`` with a log link estimates it. No
    renormalisation to a fixed sequencing depth is applied; median normalisation would shift
    every effect by the same constant and leave rankings unchanged.

    **Layouts.** Without a design frame, the layout is ``n_genes * sgrnas_per_gene`` sgRNAs
    times ``n_samples`` samples, rows ordered by gene, sgRNA, then sample. A design frame
    (passed to ``fit`` or ``transform``) with columns ``gene``, ``sgRNA`` and ``sample`` gives
    any layout, e.g. a real screen's with different numbers of samples per sgRNA: rows come out
    in the design's order (with a fresh ``RangeIndex``), and ``M``/``U`` are evenly spaced over
    the sgRNAs in order of first appearance. sgRNA labels must be globally unique (each sgRNA in
    exactly one gene) and each (sgRNA, sample) pair may appear once. Other columns are ignored
    and the frame is not modified.

    **Output.** A tidy :class:`pandas.DataFrame`, one row per (sgRNA, sample), always a
    DataFrame (``set_output`` is not supported). ``gene`` and ``sgRNA`` hold plain Python
    strings in pandas' default string dtype (``str`` in pandas 3, ``object`` in pandas 2), which
    groups, sorts and converts to ``category`` directly; ``sample`` keeps the design's values
    (``S01``, ... zero-padded so they sort in order). Expression mode: ``gene, sgRNA, sample, M,
    U, H0, Ht, effect`` (floats; ``effect`` is the sgRNA's true effect). Count mode: ``gene,
    sgRNA, sample, initial, final, effect`` (``initial``/``final`` int64).

    **Random numbers** are drawn from one :class:`numpy.random.Generator` in a fixed order
    (expression: gene effects, sgRNA effects, z, u, sg; counts: hit genes, their effects, sgRNA
    spread, abundances, initial, final). Exact values may change with numpy or scipy versions.

    ``transform`` does not require ``fit``: on an unfitted simulator it uses the layout given by
    the parameters (the estimator tag ``requires_fit`` is False). ``fit`` takes no features and
    sets no ``n_features_in_``: ``X`` is a design frame or None, and a numeric (dense or sparse)
    feature matrix is rejected with a TypeError, so scikit-learn's estimator checks that fit on
    numeric arrays do not apply to it. Each ``transform`` records the truth of its draw in
    ``true_effects_`` and ``true_slopes_``.

    References
    ----------
    .. [1] W. Li et al., "MAGeCK enables robust identification of essential genes from
       genome-scale CRISPR/Cas9 knockout screens", Genome Biology 15, 554 (2014).

    Examples
    --------
    >>> from skhier.simulate import ScreenSimulator
    >>> sim = ScreenSimulator(n_genes=3, sgrnas_per_gene=2, n_samples=4, random_state=0)
    >>> df = sim.fit_transform()
    >>> df.shape
    (24, 8)
    >>> list(df.columns)
    ['gene', 'sgRNA', 'sample', 'M', 'U', 'H0', 'Ht', 'effect']
    >>> df["sgRNA"].unique().tolist()
    ['G01_sg1', 'G01_sg2', 'G02_sg1', 'G02_sg2', 'G03_sg1', 'G03_sg2']
    >>> bool(((df["Ht"] / df["H0"]).between(0.1, 10)).all())
    True
    >>> sim.true_effects_["gene"].index.tolist()
    ['G01', 'G02', 'G03']
    >>> bool(df.equals(sim.transform()))  # an int seed repeats the draw
    True

    Count mode:

    >>> counts = ScreenSimulator(n_genes=10, n_samples=2, mode="counts", random_state=0)
    >>> counts.fit_transform().columns.tolist()
    ['gene', 'sgRNA', 'sample', 'initial', 'final', 'effect']
    >>> int((counts.true_effects_["gene"] < 0).sum())  # 20% of the genes are depleted
    2
    """

    def __init__(
        self,
        *,
        n_genes=5,
        sgrnas_per_gene=4,
        n_samples=50,
        sd=0.5,
        z_mean=1.0,
        u_mean=1.0,
        effect_mean=1.0,
        effect_sd=1.0,
        sgrna_sd=0.25,
        lower=0.1,
        upper=10.0,
        m_range=(0.5, 1.5),
        u_range=(0.8, 1.8),
        mode="expression",
        mean_count=500.0,
        abundance_sd=0.5,
        dispersion=0.05,
        hit_fraction=0.2,
        selection="negative",
        include_latent=False,
        random_state=None,
    ):
        self.n_genes = n_genes
        self.sgrnas_per_gene = sgrnas_per_gene
        self.n_samples = n_samples
        self.sd = sd
        self.z_mean = z_mean
        self.u_mean = u_mean
        self.effect_mean = effect_mean
        self.effect_sd = effect_sd
        self.sgrna_sd = sgrna_sd
        self.lower = lower
        self.upper = upper
        self.m_range = m_range
        self.u_range = u_range
        self.mode = mode
        self.mean_count = mean_count
        self.abundance_sd = abundance_sd
        self.dispersion = dispersion
        self.hit_fraction = hit_fraction
        self.selection = selection
        self.include_latent = include_latent
        self.random_state = random_state

    # ------------------------------------------------------------------ sklearn API
    def fit(self, X=None, y=None):
        """Store the layout to simulate on.

        Parameters
        ----------
        X : pandas.DataFrame or None, default=None
            A design frame with columns ``gene``, ``sgRNA`` and ``sample`` (one row per sgRNA
            and sample; other columns are ignored), or None for the layout given by
            ``n_genes``, ``sgrnas_per_gene`` and ``n_samples``. Not modified.
        y : None
            Ignored.

        Returns
        -------
        self : ScreenSimulator
            The simulator, with ``design_``, ``genes_``, ``sgrnas_`` and ``samples_`` set.
        """
        self._validate_params_values()
        design = self._default_design() if X is None else _check_design(X)
        self._set_design(design)
        return self

    def transform(self, X=None):
        """Draw a data set.

        Parameters
        ----------
        X : pandas.DataFrame or None, default=None
            A design frame (as in :meth:`fit`) to simulate on, or None for the fitted layout
            (or, if the simulator is not fitted, the layout given by the parameters). Not
            modified.

        Returns
        -------
        data : pandas.DataFrame
            Tidy frame, one row per (sgRNA, sample); see the class Notes for the columns.
            ``true_effects_`` and ``true_slopes_`` are set to this draw's truth.
        """
        self._validate_params_values()
        if X is not None:
            design = _check_design(X)
        elif hasattr(self, "design_"):
            design = self.design_
        else:
            design = self._default_design()
        layout = _Layout(design)
        rng = _make_rng(self.random_state)
        if self.mode == "expression":
            data, effects, slopes = self._simulate_expression(layout, rng)
        else:
            data, effects, slopes = self._simulate_counts(layout, rng)
        self.true_effects_ = effects
        self.true_slopes_ = slopes
        logger.debug(
            "ScreenSimulator(mode=%r) drew %d rows: %d sgRNAs in %d genes.",
            self.mode,
            len(data),
            len(layout.sgrnas),
            len(layout.genes),
        )
        return data

    def fit_transform(self, X=None, y=None):
        """Store the layout and draw a data set (``fit(X).transform(X)``).

        Parameters
        ----------
        X : pandas.DataFrame or None, default=None
            A design frame (see :meth:`fit`) or None. Not modified.
        y : None
            Ignored.

        Returns
        -------
        data : pandas.DataFrame
            Tidy frame, one row per (sgRNA, sample).
        """
        return self.fit(X).transform(X)

    def get_feature_names_out(self, input_features=None):
        """Get the names of the output columns.

        Parameters
        ----------
        input_features : None
            Ignored (the simulator takes no input features).

        Returns
        -------
        feature_names_out : numpy.ndarray of str
            The columns ``transform`` returns, for the current ``mode`` and ``include_latent``.
        """
        check_choice("mode", self.mode, _MODES)
        if self.mode == "expression":
            names = _EXPRESSION_COLUMNS + (_EXPRESSION_LATENT if self.include_latent else ())
        else:
            names = _COUNT_COLUMNS + (_COUNT_LATENT if self.include_latent else ())
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.no_validation = True
        tags.target_tags.required = False
        # the output is a tidy frame of labels and draws, whatever the input: no dtype carries over
        tags.transformer_tags.preserves_dtype = []
        return tags

    # ------------------------------------------------------------------ internals
    def _validate_params_values(self):
        """Check every parameter; raise TypeError/ValueError naming the bad value."""
        _check_int("n_genes", self.n_genes, 1)
        _check_int("sgrnas_per_gene", self.sgrnas_per_gene, 1)
        _check_int("n_samples", self.n_samples, 1)
        check_choice("mode", self.mode, _MODES)
        check_choice("selection", self.selection, _SELECTIONS)
        _check_real("sd", self.sd, low=0.0, low_inclusive=False)
        _check_real("z_mean", self.z_mean)
        _check_real("u_mean", self.u_mean)
        _check_real("effect_mean", self.effect_mean, low=0.0, low_inclusive=False)
        _check_real("effect_sd", self.effect_sd, low=0.0)
        _check_real("sgrna_sd", self.sgrna_sd, low=0.0)
        _check_real("lower", self.lower)
        _check_real("upper", self.upper)
        if not self.lower < self.upper:
            raise ValueError(
                f"lower must be smaller than upper, got lower={self.lower!r} and "
                f"upper={self.upper!r}."
            )
        _check_pair("m_range", self.m_range)
        _check_pair("u_range", self.u_range)
        _check_real("mean_count", self.mean_count, low=0.0, low_inclusive=False)
        _check_real("abundance_sd", self.abundance_sd, low=0.0)
        _check_real("dispersion", self.dispersion, low=0.0)
        _check_real("hit_fraction", self.hit_fraction, low=0.0, high=1.0)
        if not isinstance(self.include_latent, bool | np.bool_):
            raise TypeError(
                f"include_latent must be True or False, got {self.include_latent!r} of type "
                f"{type(self.include_latent).__name__}."
            )
        _make_rng(self.random_state, check_only=True)

    def _default_design(self):
        n_genes, per_gene, n_samples = self.n_genes, self.sgrnas_per_gene, self.n_samples
        genes = _labels("G", n_genes)
        suffixes = _labels("sg", per_gene, width=len(str(per_gene)))
        sgrnas = np.asarray([f"{g}_{s}" for g in genes for s in suffixes], dtype=object)
        samples = _labels("S", n_samples)
        n_sgrnas = n_genes * per_gene
        sg_index = np.repeat(np.arange(n_sgrnas), n_samples)
        return pd.DataFrame(
            {
                "gene": np.repeat(genes, per_gene * n_samples),
                "sgRNA": sgrnas[sg_index],
                "sample": np.tile(samples, n_sgrnas),
            }
        )

    def _set_design(self, design):
        layout = _Layout(design)
        self.design_ = design
        self.genes_ = layout.genes
        self.sgrnas_ = layout.sgrnas
        self.samples_ = np.asarray(pd.unique(design["sample"]), dtype=object)

    def _simulate_expression(self, layout, rng):
        sd, lower, upper = float(self.sd), float(self.lower), float(self.upper)
        n_rows, n_sg = layout.n_rows, len(layout.sgrnas)
        gene_effect = _gamma(rng, float(self.effect_mean), float(self.effect_sd), len(layout.genes))
        sg_effect = _gamma(rng, gene_effect[layout.gene_of_sgrna], float(self.sgrna_sd), n_sg)
        m_j = np.linspace(float(self.m_range[0]), float(self.m_range[1]), n_sg)
        u_j = np.linspace(float(self.u_range[0]), float(self.u_range[1]), n_sg)
        z = _truncnorm(rng, float(self.z_mean), sd, lower, upper, n_rows)
        u = _truncnorm(rng, float(self.u_mean), sd, lower, upper, n_rows)
        sg = _truncnorm(rng, sg_effect[layout.sgrna_code], sd, lower, upper, n_rows)
        m_row = m_j[layout.sgrna_code]
        u_row = u_j[layout.sgrna_code]
        h0 = z * m_row + u * u_row
        ht = sg * h0
        columns = {
            **layout.label_columns(),
            "M": m_row,
            "U": u_row,
            "H0": h0,
            "Ht": ht,
            "effect": sg_effect[layout.sgrna_code],
        }
        if self.include_latent:
            columns.update(z=z, u=u, sg=sg)
        sg_slope = _truncnorm_mean(sg_effect, sd, lower, upper)
        effects = layout.truth(sg_effect, gene_effect)
        slopes = layout.truth(sg_slope, layout.gene_means(sg_slope))
        return pd.DataFrame(columns), effects, slopes

    def _simulate_counts(self, layout, rng):
        n_genes, n_sg = len(layout.genes), len(layout.sgrnas)
        n_hits = math.floor(float(self.hit_fraction) * n_genes + 0.5)
        hits = rng.permutation(n_genes)[:n_hits]
        sign = -1.0 if self.selection == "negative" else 1.0
        gene_effect = np.zeros(n_genes)
        gene_effect[hits] = sign * _gamma(
            rng, float(self.effect_mean), float(self.effect_sd), n_hits
        )
        sg_effect = gene_effect[layout.gene_of_sgrna]
        if self.sgrna_sd > 0:
            sg_effect = sg_effect + rng.normal(0.0, float(self.sgrna_sd), n_sg)
        s = float(self.abundance_sd)
        abundance = float(self.mean_count) * np.exp(s * rng.standard_normal(n_sg) - s * s / 2)
        mu_initial = abundance[layout.sgrna_code]
        mu_final = mu_initial * np.exp(sg_effect[layout.sgrna_code])
        initial = _negative_binomial(rng, mu_initial, float(self.dispersion))
        final = _negative_binomial(rng, mu_final, float(self.dispersion))
        columns = {
            **layout.label_columns(),
            "initial": initial,
            "final": final,
            "effect": sg_effect[layout.sgrna_code],
        }
        if self.include_latent:
            columns.update(mu_initial=mu_initial, mu_final=mu_final)
        effects = layout.truth(sg_effect, gene_effect)
        slopes = layout.truth(sg_effect, layout.gene_means(sg_effect))
        return pd.DataFrame(columns), effects, slopes


class _Layout:
    """Integer codes of a validated design frame (sgRNAs and genes in order of appearance)."""

    def __init__(self, design):
        sg_code, sgrnas = pd.factorize(design["sgRNA"], sort=False)
        self.sgrna_code = np.asarray(sg_code, dtype=np.intp)
        self.sgrnas = np.asarray(sgrnas, dtype=object)
        self.n_rows = len(design)
        # gene of each sgRNA: the gene on the sgRNA's first row (validated to be unique)
        _, first_row = np.unique(self.sgrna_code, return_index=True)
        gene_code, genes = pd.factorize(design["gene"], sort=False)
        self.genes = np.asarray(genes, dtype=object)
        self.gene_of_sgrna = np.asarray(gene_code, dtype=np.intp)[first_row]
        self._design = design

    def label_columns(self):
        return {
            "gene": self.genes[self.gene_of_sgrna[self.sgrna_code]],
            "sgRNA": self.sgrnas[self.sgrna_code],
            "sample": self._design["sample"].to_numpy(copy=True),
        }

    def gene_means(self, sgrna_values):
        sums = np.bincount(self.gene_of_sgrna, weights=sgrna_values, minlength=len(self.genes))
        counts = np.bincount(self.gene_of_sgrna, minlength=len(self.genes))
        return sums / counts

    def truth(self, sgrna_values, gene_values):
        return {
            "sgRNA": pd.Series(
                np.asarray(sgrna_values, dtype=float),
                index=pd.Index(self.sgrnas, name="sgRNA"),
                name="effect",
            ),
            "gene": pd.Series(
                np.asarray(gene_values, dtype=float),
                index=pd.Index(self.genes, name="gene"),
                name="effect",
            ),
        }


# ---------------------------------------------------------------------- draws
def _gamma(rng, mean, sd, size):
    """Gamma draws with the given mean(s) and standard deviation, kept strictly positive."""
    mean = np.broadcast_to(np.asarray(mean, dtype=float), (size,))
    if sd == 0:
        return mean.copy()
    shape = mean**2 / sd**2
    scale = sd**2 / mean
    return np.maximum(rng.gamma(shape, scale, size), _TINY)


def _truncnorm(rng, loc, scale, lower, upper, size):
    """Normal(loc, scale) draws truncated to [lower, upper] (scipy.stats.truncnorm)."""
    a = (lower - np.asarray(loc)) / scale
    b = (upper - np.asarray(loc)) / scale
    draws = stats.truncnorm.rvs(a, b, loc=loc, scale=scale, size=size, random_state=rng)
    # guard the bounds against floating-point round-off of loc + scale * x
    return np.clip(draws, lower, upper)


def _truncnorm_mean(loc, scale, lower, upper):
    """Mean of Normal(loc, scale) truncated to [lower, upper], vectorised and tail-stable.

    ``E[X] = loc + scale * (phi(a) - phi(b)) / (Phi(b) - Phi(a))`` with standardised bounds
    ``a``, ``b``; when both bounds lie on one side of the mode the ratio is computed in log
    space (reflecting to the upper tail), so it stays accurate far in the tails where
    ``Phi(b) - Phi(a)`` underflows. Agrees with ``scipy.stats.truncnorm.mean``, which loops
    in Python over the values.
    """
    loc = np.asarray(loc, dtype=float)
    a = (lower - loc) / scale
    b = (upper - loc) / scale
    # reflect intervals entirely below the mode: mean(a, b) = -mean(-b, -a)
    flip = b <= 0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    ratio = np.empty_like(lo)
    tail = lo >= 0  # whole interval on the upper side of the mode
    if tail.any():
        t_lo, t_hi = lo[tail], hi[tail]
        log_z = special.log_ndtr(-t_lo) + np.log1p(
            -np.exp(special.log_ndtr(-t_hi) - special.log_ndtr(-t_lo))
        )
        log_phi_lo = -0.5 * t_lo**2 - 0.5 * np.log(2 * np.pi)
        ratio[tail] = np.exp(log_phi_lo - log_z) * -np.expm1(0.5 * (t_lo**2 - t_hi**2))
    mid = ~tail  # lo < 0 < hi: the mass is not small
    if mid.any():
        m_lo, m_hi = lo[mid], hi[mid]
        z = special.ndtr(m_hi) - special.ndtr(m_lo)
        phi = np.exp(-0.5 * m_lo**2) - np.exp(-0.5 * m_hi**2)
        ratio[mid] = phi / np.sqrt(2 * np.pi) / z
    ratio = np.where(flip, -ratio, ratio)
    return loc + scale * ratio


def _negative_binomial(rng, mu, dispersion):
    """NB counts with mean ``mu`` and variance ``mu + dispersion * mu**2`` (Poisson at 0)."""
    if dispersion == 0:
        return rng.poisson(mu).astype(np.int64)
    n = 1.0 / dispersion
    return rng.negative_binomial(n, n / (n + mu)).astype(np.int64)


def _make_rng(random_state, check_only=False):
    """Turn ``random_state`` into a Generator (a fresh one per call for int seeds)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        if check_only:
            return None
        return np.random.default_rng(random_state.randint(0, 2**63 - 1, dtype=np.int64))
    if random_state is None:
        return None if check_only else np.random.default_rng()
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool | np.bool_):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative integer, got {random_state!r}.")
        return None if check_only else np.random.default_rng(int(random_state))
    raise TypeError(
        "random_state must be None, a non-negative int, a numpy.random.Generator or a "
        f"numpy.random.RandomState, got {random_state!r} of type {type(random_state).__name__}."
    )


# ---------------------------------------------------------------------- validation
def _labels(prefix, n, width=None):
    width = max(2, len(str(n))) if width is None else width
    return np.asarray([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def _check_int(name, value, minimum):
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an integer >= {minimum}, got {value!r} of type {type(value).__name__}."
        )
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _check_real(name, value, *, low=None, high=None, low_inclusive=True, high_inclusive=True):
    parts = []
    if low is not None:
        parts.append(f"{'>=' if low_inclusive else '>'} {low:g}")
    if high is not None:
        parts.append(f"{'<=' if high_inclusive else '<'} {high:g}")
    requirement = f"{name} must be a finite number" + (" " + " and ".join(parts) if parts else "")
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{requirement}, got {value!r} of type {type(value).__name__}.")
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value >= low if low_inclusive else value > low
    if ok and high is not None:
        ok = value <= high if high_inclusive else value < high
    if not ok:
        raise ValueError(f"{requirement}, got {value!r}.")


def _check_pair(name, value):
    message = f"{name} must be a pair (start, stop) of finite numbers, got {value!r}."
    if isinstance(value, str) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(message)
    for item in value:
        if isinstance(item, bool | np.bool_) or not isinstance(item, numbers.Real):
            raise TypeError(message)
        if not math.isfinite(item):
            raise ValueError(message)


def _check_design(X):
    """Validate a design frame; return a new frame with columns gene, sgRNA, sample."""
    required = ", ".join(repr(c) for c in _DESIGN_COLUMNS)
    if sparse.issparse(X):
        raise TypeError(
            f"X must be None or a pandas DataFrame with the columns {required}; got a sparse "
            f"{type(X).__name__} (sparse input is not supported: a design holds labels, not "
            "numeric features)."
        )
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"X must be None or a pandas DataFrame with the columns {required}; got an object "
            f"of type {type(X).__name__}."
        )
    missing = [c for c in _DESIGN_COLUMNS if c not in X.columns]
    if missing:
        raise ValueError(
            f"The design frame is missing the column(s) {missing}; it needs {required} "
            f"(it has {list(X.columns)})."
        )
    if len(X) == 0:
        raise ValueError("The design frame has no rows.")
    design = pd.DataFrame({c: X[c].to_numpy(copy=True) for c in _DESIGN_COLUMNS})
    for column in _DESIGN_COLUMNS:
        n_missing = int(design[column].isna().sum())
        if n_missing:
            raise ValueError(f"The design column {column!r} has {n_missing} missing value(s).")
    design["gene"] = design["gene"].astype(str)
    design["sgRNA"] = design["sgRNA"].astype(str)
    genes_per_sgrna = design.groupby("sgRNA", sort=False)["gene"].nunique()
    shared = genes_per_sgrna.index[genes_per_sgrna.to_numpy() > 1]
    if len(shared):
        example = shared[0]
        in_genes = sorted(pd.unique(design.loc[design["sgRNA"] == example, "gene"]))
        raise ValueError(
            f"Every sgRNA must belong to exactly one gene (sgRNA labels must be globally "
            f"unique), but {len(shared)} sgRNA(s) appear in several genes, e.g. {example!r} in "
            f"{in_genes}."
        )
    duplicated = design.duplicated(["sgRNA", "sample"])
    if duplicated.any():
        row = design.loc[duplicated.to_numpy(), ["sgRNA", "sample"]].iloc[0]
        sgrna, sample = (v.item() if isinstance(v, np.generic) else v for v in row)
        raise ValueError(
            f"Each (sgRNA, sample) pair may appear only once, but {int(duplicated.sum())} "
            f"row(s) repeat one, e.g. sgRNA {sgrna!r} in sample {sample!r}."
        )
    return design
