"""skhier's fits on a Dask cluster through joblib's Dask backend, equal to the same fits here.

One LocalCluster of two worker processes (one thread each) serves the module. Every fit has a
fixed ``random_state`` and the ranker's ``n_jobs=1``, so a fit on a worker must give what the
same fit gives in this process; each comparison also checks that the work ran on the cluster.
"""

import distributed
import joblib
import numpy as np
import pytest
from distributed import Client, LocalCluster
from sklearn.model_selection import GridSearchCV, cross_val_score

from skhier import (
    GroupLevelKFold,
    HierarchicalRanker,
    LOOSearchCV,
    SamplerConvergenceWarning,
    ScreenSimulator,
    fit_many,
)
from skhier._parallel import available_cores, n_threads, resolve_n_jobs
from tests.helpers import FORUM, LOO_NUMERIC, small_kwargs

# Relative tolerance between a worker's result and this process's: the kernels and seeds are
# the same, but BLAS may use a different number of threads in the workers (Dask sets
# OMP_NUM_THREADS=1 there), which may change the last bits of a sum.
RTOL = 1e-10
POOLINGS = ["complete", "partial"]


@pytest.fixture(scope="module")
def client():
    # The scheduler's HTTP server (dashboard, health checks) on a free port: on the default
    # 8787 a second cluster (another pytest-xdist process, a cluster of the user's) makes
    # distributed warn that the port is in use, an error under filterwarnings=error.
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def screen():
    sim = ScreenSimulator(n_genes=5, sgrnas_per_gene=4, n_samples=20, random_state=0)
    return sim.fit_transform()


def ranker(**kw):
    return HierarchicalRanker(formula=FORUM, **small_kwargs(**kw))


def on_cluster(client, func):
    """Run ``func()`` under the Dask backend; return its result and the tasks the cluster ran."""
    with distributed.get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
        out = func()
    return out, stream.data


def assert_same_ranking(a, b):
    assert a.rank_.index.tolist() == b.rank_.index.tolist()
    np.testing.assert_allclose(
        a.rank_.select_dtypes("number").to_numpy(),
        b.rank_.select_dtypes("number").to_numpy(),
        rtol=RTOL,
    )


def test_n_jobs_none_is_one_thread_per_task_on_a_worker(client):
    """A task gets the thread Dask gives it (OMP_NUM_THREADS=1), not every core of the machine."""
    assert client.submit(available_cores, pure=False).result() == 1
    assert client.submit(n_threads, pure=False).result() == 1
    assert client.submit(resolve_n_jobs, None, pure=False).result() == 1
    assert client.submit(resolve_n_jobs, 2, pure=False).result() == 2  # explicit counts stand
    assert available_cores() >= 1  # this process is not a worker: unchanged


def test_loo_search_on_cluster_equals_local(client, screen):
    # A threshold below the largest Pareto k (about 0.65 here) so that the exact refits, the
    # search's second round of tasks, run on the cluster too.
    def search():
        return LOOSearchCV(
            ranker(), {"pooling": POOLINGS}, refit_k_threshold=0.5, max_exact_refits=2
        ).fit(screen)

    local = search()
    remote, tasks = on_cluster(client, search)
    assert tasks, "nothing ran on the cluster"
    assert local.cv_results_["n_refits"].sum() > 0
    for key in LOO_NUMERIC:
        np.testing.assert_allclose(
            remote.cv_results_[key], local.cv_results_[key], rtol=RTOL, err_msg=key
        )
    assert remote.best_params_ == local.best_params_
    assert remote.best_index_ == local.best_index_
    # best_estimator_ was fitted on a worker and sent back
    assert_same_ranking(remote.best_estimator_, local.best_estimator_)


def test_cross_val_score_on_cluster_equals_local(client, screen):
    def score():
        return cross_val_score(
            ranker(), screen, groups=screen["gene"], cv=GroupLevelKFold(level="gene", n_splits=3)
        )

    local = score()
    remote, tasks = on_cluster(client, score)
    assert tasks, "nothing ran on the cluster"
    assert np.isfinite(local).all()
    np.testing.assert_allclose(remote, local, rtol=RTOL)


def test_grid_search_on_cluster_equals_local(client, screen):
    def search():
        return GridSearchCV(
            ranker(), {"pooling": POOLINGS}, cv=GroupLevelKFold(level="gene", n_splits=3)
        ).fit(screen)

    local = search()
    remote, tasks = on_cluster(client, search)
    assert tasks, "nothing ran on the cluster"
    keys = ["mean_test_score", "std_test_score", "rank_test_score"]
    keys += [f"split{i}_test_score" for i in range(3)]
    for key in keys:
        assert np.isfinite(local.cv_results_[key]).all(), key
        np.testing.assert_allclose(
            remote.cv_results_[key], local.cv_results_[key], rtol=RTOL, err_msg=key
        )
    assert remote.best_params_ == local.best_params_
    assert_same_ranking(remote.best_estimator_, local.best_estimator_)


def test_fit_many_on_cluster_equals_local(client):
    screens = {
        f"screen{i}": ScreenSimulator(
            n_genes=5, sgrnas_per_gene=4, n_samples=20, random_state=i
        ).fit_transform()
        for i in range(3)
    }
    local = fit_many(ranker(), screens, n_jobs=1)
    remote, tasks = on_cluster(client, lambda: fit_many(ranker(), screens))
    assert tasks, "nothing ran on the cluster"
    assert list(remote) == list(screens)
    for key in screens:
        assert_same_ranking(remote[key], local[key])
        for name, value in local[key].idata_.posterior.data_vars.items():
            np.testing.assert_allclose(
                remote[key].idata_.posterior[name].to_numpy(), value.to_numpy(), rtol=RTOL
            )


def test_fit_many_reissues_a_workers_warnings(client, screen):
    """A warning of a fit on a worker reaches the caller, with the dataset named."""
    short = ranker(draws=30, tune=30, on_fail="warn")  # too few draws: ESS check fails
    with pytest.warns(SamplerConvergenceWarning, match="dataset 'short'"):
        on_cluster(client, lambda: fit_many(short, {"short": screen}))


def test_fit_many_names_the_dataset_of_a_fit_failing_on_a_worker(client, screen):
    bad = screen.drop(columns="H0")
    with pytest.raises(ValueError, match="column 'H0' used by the formula") as info:
        on_cluster(client, lambda: fit_many(ranker(), {"good": screen, "bad": bad}))
    assert "skhier.fit_many: raised while fitting the dataset 'bad'." in info.value.__notes__
