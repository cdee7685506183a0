"""A logistic regression whose coefficients are non-negative: more evidence never lowers the risk.

Plain logistic regression on collinear evidence (a meeting app, a new site, a long call) learns offsetting
negative weights that fit the simulator's scripts and break off-script; constraining the signs encodes what
investigators know and keeps every reason an honest push upwards. Follows scikit-learn's estimator API.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class NonNegativeLogisticRegression(ClassifierMixin, BaseEstimator):
    """Binary logistic regression, L2-penalised, coefficients constrained to [0, ∞), intercept free."""

    def __init__(self, C: float = 1.0, max_iter: int = 1000, tol: float = 1e-8) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> "NonNegativeLogisticRegression":
        """Fit by L-BFGS-B with bounds; `y` must hold two classes."""
        X, y = validate_data(self, X, y)
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ValueError(f"needs two classes, got {self.classes_}")
        t = (y == self.classes_[1]).astype(float)
        w = np.ones(len(t)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        w = w / w.mean()
        n, d = X.shape

        def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
            coef, b = params[:d], params[d]
            z = X @ coef + b
            # log(1 + e^z) - t z, stably; its gradient is sigmoid(z) - t
            nll = np.sum(w * (np.logaddexp(0, z) - t * z)) / n + 0.5 / (self.C * n) * coef @ coef
            g = w * (expit(z) - t) / n
            return nll, np.concatenate([X.T @ g + coef / (self.C * n), [g.sum()]])

        bounds = [(0.0, None)] * d + [(None, None)]
        res = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": self.max_iter, "gtol": self.tol})
        self.coef_ = res.x[:d].reshape(1, -1)
        self.intercept_ = np.array([res.x[d]])
        self.n_iter_ = np.array([res.nit])
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The log-odds of the positive class."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return X @ self.coef_[0] + self.intercept_[0]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of both classes, in the order of `classes_`."""
        p = expit(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The more likely class."""
        return self.classes_[(self.decision_function(X) > 0).astype(int)]
