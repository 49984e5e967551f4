/*
 * Reference loop for benchmarks/bench_full_fit.py: the collapsed engine's log marginal likelihood
 * and its gradient for a two-level one-column tree (cells -> genes -> root, a common slope), in
 * plain C, to time skhier's numba kernel and its cost inside the sampler against on the same
 * machine, in the same run.
 *
 * Built by the benchmark at run time:  gcc -O3 -march=native -shared -fPIC  (a shared library
 * loaded with ctypes). The arithmetic is the kernel's (skhier.engine._tree_numba, one-column
 * path): with p = ww / sigma^2, h = wy / sigma^2 and a = 1 / (1 + tau_c^2 p) a cell adds p a,
 * h a to its gene, and p a^2, h a^2, (p a)^2, p h a^2 to the gene's derivatives in sigma and
 * tau_c; the constants add up over all cells; the log-determinants are summed as the log of a
 * running product of the a's. It is written the plain way: one pass over the cells adding into
 * the genes' arrays, then one pass over the genes, scratch arrays given by the caller (nothing
 * allocated per call). The benchmark checks that it returns the kernel's value and gradient.
 */
#include <math.h>
#include <stdint.h>

#define LOG2PI 1.8378770664093453
#define TINY 1e-250

/* One level's integration for the m = 3 directions (sigma, tau_g, tau_c); own = index of s. */
static double level(int64_t n_nodes, const int64_t *parent, double s, int own,
                    const double *P, const double *h, const double *dP, const double *dh,
                    int64_t stride, double *oP, double *oh, double *odP, double *odh,
                    int64_t ostride, double *dc) {
    double s2 = s * s, c = 0.0, prod = 1.0, log_a = 0.0;
    for (int64_t i = 0; i < n_nodes; i++) {
        int64_t g = parent ? parent[i] : 0;
        double p = P[i], hc = h[i];
        double a = 1.0 / (1.0 + s2 * p);
        oP[g] += p * a;
        oh[g] += hc * a;
        c += 0.5 * s2 * a * hc * hc;
        prod *= a;
        if (prod < TINY) {
            log_a += log(prod);
            prod = 1.0;
        }
        for (int q = 0; q < 3; q++) {
            double dp = dP[q * stride + i], dhq = dh[q * stride + i];
            double dA = (q == own ? 2.0 * s * p : 0.0) + s2 * dp;
            odP[q * ostride + g] += a * dp - a * a * p * dA;
            odh[q * ostride + g] += a * dhq - a * a * hc * dA;
            dc[q] += (q == own ? s * a * hc * hc : 0.0) - 0.5 * s2 * a * a * hc * hc * dA +
                     s2 * a * hc * dhq - 0.5 * a * dA;
        }
    }
    return c + 0.5 * (log_a + log(prod));
}

/*
 * theta = (sigma, tau_g, tau_c); genes: G; scratch: 8 * G doubles; grad: 3 doubles.
 * Returns log p(y | theta) with the gene and cell coefficients and the common slope
 * (prior N(mu0, s0^2)) integrated out.
 */
double gradref(int64_t C, const double *ww, const double *wy, const double *n, const double *yy,
               const int64_t *parent, int64_t G, const double *theta, double mu0, double s0,
               double *scratch, double *grad) {
    double sigma = theta[0], tg = theta[1], tc = theta[2];
    double s2 = sigma * sigma, inv_s2 = 1.0 / s2, t2 = tc * tc;
    double *P = scratch, *h = scratch + G, *dP = scratch + 2 * G, *dh = scratch + 5 * G;
    for (int64_t g = 0; g < 8 * G; g++) scratch[g] = 0.0;
    double s_hY = 0, s_YY = 0, s_X = 0, s_n = 0, s_yy = 0, prod = 1.0, log_a = 0.0;
    double dc[3] = {0.0, 0.0, 0.0};
    for (int64_t i = 0; i < C; i++) {
        int64_t g = parent[i];
        double p = ww[i] * inv_s2, hc = wy[i] * inv_s2;
        double a = 1.0 / (1.0 + t2 * p);
        double X = p * a, Y = hc * a;
        P[g] += X;
        h[g] += Y;
        dP[g] += X * a;          /* sigma, scaled below */
        dh[g] += Y * a;
        dP[2 * G + g] += X * X;  /* tau_c, scaled below */
        dh[2 * G + g] += X * Y;
        s_hY += hc * Y;
        s_YY += Y * Y;
        s_X += X;
        s_n += n[i];
        s_yy += yy[i];
        prod *= a;
        if (prod < TINY) {
            log_a += log(prod);
            prod = 1.0;
        }
    }
    log_a += log(prod);
    for (int64_t g = 0; g < G; g++) {
        dP[g] *= -2.0 / sigma;
        dh[g] *= -2.0 / sigma;
        dP[2 * G + g] *= -2.0 * tc;
        dh[2 * G + g] *= -2.0 * tc;
    }
    dc[2] += tc * (s_YY - s_X);
    dc[0] += (s_yy * inv_s2 - s_n - t2 * (s_hY + s_YY - s_X)) / sigma;
    double c = 0.5 * t2 * s_hY - 0.5 * (s_n * (LOG2PI + log(s2)) + s_yy * inv_s2) + 0.5 * log_a;
    /* genes -> root */
    double rP = 0, rh = 0, rdP[3] = {0, 0, 0}, rdh[3] = {0, 0, 0};
    c += level(G, 0, tg, 1, P, h, dP, dh, G, &rP, &rh, rdP, rdh, 1, dc);
    /* the common slope: shift to its prior mean, then integrate it (fixed sd: no direction) */
    c += -0.5 * rP * mu0 * mu0 + mu0 * rh;
    rh -= rP * mu0;
    for (int q = 0; q < 3; q++) {
        dc[q] += -0.5 * rdP[q] * mu0 * mu0 + mu0 * rdh[q];
        rdh[q] -= rdP[q] * mu0;
    }
    double fP = 0, fh = 0, fdP[3] = {0, 0, 0}, fdh[3] = {0, 0, 0};
    c += level(1, 0, s0, -1, &rP, &rh, rdP, rdh, 1, &fP, &fh, fdP, fdh, 1, dc);
    for (int q = 0; q < 3; q++) grad[q] = dc[q];
    return c;
}
