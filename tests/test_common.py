"""scikit-learn's estimator checks (formula=None: a Bayesian linear regression on X).

Expected failures, each with its reason (empty when every check passes).
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skhier import HierarchicalRanker

EXPECTED_FAILED_CHECKS = {}


@parametrize_with_checks(
    [
        HierarchicalRanker(
            sampler="pymc",
            draws=100,
            tune=100,
            chains=2,
            n_jobs=1,
            random_state=0,
            on_fail="ignore",
        ),
    ],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
