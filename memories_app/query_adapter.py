"""The query adapter: a small learned correction to how the local model reads a question.

all-MiniLM-L6-v2 embeds a question and the memory that answers it as two texts of unlike
kinds ("When did Caroline go to the support group?" against "[8 May, 2023] Caroline: I
went to a LGBTQ support group yesterday") and a search ranks them by their cosine. The
adapter moves a query's vector towards where the answers to such questions lie:

    q' = normalise(q + U (V^T q))

a rank-8 correction (two 384 x 8 matrices, 25 KB), fitted on labelled question / answer
pairs by :func:`fit`. It reads queries only: stored vectors are unchanged, so switching it
on or off, or fitting another, needs no re-embedding, and a semantic score stays the cosine
of two unit vectors. The one shipped (``query_adapter.npz``) was fitted on conversations 0-4
of LoCoMo and checked on 5-9 and on the project's own sets
(``benchmarks/locomo_adapter.py``). ``MEMORYRELAY_QUERY_ADAPTER`` names another file, or
``off``; an adapter fitted for another model or of another width is not applied.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

logger = logging.getLogger("memoryrelay.embeddings")
SHIPPED = Path(__file__).resolve().parent / "query_adapter.npz"
OFF = ("off", "none", "0", "false")


@dataclass(frozen=True)
class Adapter:
    u: np.ndarray  # (dimension, rank)
    v: np.ndarray  # (dimension, rank)
    model: str  # the embedding model it was fitted for
    fitted_on: str = ""

    @property
    def dimension(self) -> int:
        return self.u.shape[0]

    def apply(self, matrix: np.ndarray) -> np.ndarray:
        """Each row of ``matrix`` (a query's embedding) moved and renormalised."""
        moved = matrix + (matrix @ self.v) @ self.u.T
        norms = np.linalg.norm(moved, axis=1, keepdims=True)
        return (moved / np.where(norms == 0, 1, norms)).astype(np.float32)

    def save(self, path: str | Path) -> None:
        np.savez(path, u=self.u.astype(np.float32), v=self.v.astype(np.float32),
                 model=np.str_(self.model), fitted_on=np.str_(self.fitted_on))


def load(path: str | Path) -> Adapter:
    with np.load(path, allow_pickle=False) as data:
        u, v = np.asarray(data["u"], np.float32), np.asarray(data["v"], np.float32)
        if u.ndim != 2 or u.shape != v.shape:
            raise ValueError(f"u and v must be two matrices of one shape, not {u.shape}, {v.shape}")
        if not (np.isfinite(u).all() and np.isfinite(v).all()):
            raise ValueError("u and v must hold finite numbers only")
        return Adapter(u, v, str(data["model"]), str(data["fitted_on"]))


@lru_cache(maxsize=4)
def configured(setting: str, model: str, dimension: int) -> Adapter | None:
    """The adapter ``setting`` (``MEMORYRELAY_QUERY_ADAPTER``: empty for the shipped one, a
    path, or ``off``) names for ``model``, or None. A file that is missing, unreadable or
    fitted for another model is logged and not applied: search goes on unadapted."""
    if setting.strip().lower() in OFF:
        return None
    path = Path(setting) if setting.strip() else SHIPPED
    try:
        adapter = load(path)
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("query adapter %s not applied: %s", path, exc)
        return None
    if adapter.model != model or adapter.dimension != dimension:
        logger.warning("query adapter %s was fitted for %s (%d), not %s (%d): not applied",
                       path, adapter.model, adapter.dimension, model, dimension)
        return None
    return adapter


# --- fitting ------------------------------------------------------------------------------


@dataclass
class Group:
    """Questions and the memories they are asked of (one conversation, one account):
    ``queries`` (n, d) and ``memories`` (m, d) unit rows, ``answers[i]`` the rows of
    ``memories`` that answer question i."""

    queries: np.ndarray
    memories: np.ndarray
    answers: list[list[int]]


def loss_and_grads(u: np.ndarray, v: np.ndarray, groups: list[Group], *, tau: float,
                   lam: float) -> tuple[float, np.ndarray, np.ndarray]:
    """The mean over all questions of the softmax loss of their answers among the memories
    of their group (cosines over ``tau``), plus ``lam`` times the squared size of the
    correction; and its gradients in ``u`` and ``v``."""
    count = sum(len(g.answers) for g in groups)
    loss = 0.0
    grad_u, grad_v = np.zeros_like(u), np.zeros_like(v)
    for group in groups:
        q = group.queries
        qv = q @ v
        moved = q + qv @ u.T
        norms = np.linalg.norm(moved, axis=1, keepdims=True)
        unit = moved / norms
        logits = unit @ group.memories.T / tau
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        every = weights.sum(axis=1)
        answer = np.zeros_like(weights)
        for i, rows in enumerate(group.answers):
            answer[i, rows] = weights[i, rows]
        answered = answer.sum(axis=1)
        loss += float(np.sum(np.log(every) - np.log(answered)))
        d_logits = (weights / every[:, None] - answer / answered[:, None]) / count
        d_unit = d_logits @ group.memories / tau
        d_moved = (d_unit - unit * np.sum(d_unit * unit, axis=1, keepdims=True)) / norms
        grad_u += d_moved.T @ qv
        grad_v += q.T @ (d_moved @ u)
    correction = u @ v.T
    loss = loss / count + lam * float(np.sum(correction ** 2))
    grad_u += 2 * lam * correction @ v
    grad_v += 2 * lam * correction.T @ u
    return loss, grad_u, grad_v


def fit(groups: list[Group], *, model: str, rank: int = 8, lam: float = 0.1,
        tau: float = 0.05, epochs: int = 150, rate: float = 3e-3, seed: int = 0,
        fitted_on: str = "", log=None) -> Adapter:
    """An adapter fitted on ``groups`` by full-batch Adam from no correction at all."""
    groups = [Group(g.queries[kept], g.memories, [g.answers[i] for i in kept]) for g in groups
              if (kept := [i for i, rows in enumerate(g.answers) if rows])]
    if not groups:
        raise ValueError("no question has an answer to fit on")
    dimension = groups[0].queries.shape[1]
    random = np.random.default_rng(seed)
    u = np.zeros((dimension, rank))
    v = random.normal(0, 0.01, (dimension, rank))
    moments = [[np.zeros_like(u), np.zeros_like(u)], [np.zeros_like(v), np.zeros_like(v)]]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, epochs + 1):
        loss, grad_u, grad_v = loss_and_grads(u, v, groups, tau=tau, lam=lam)
        for param, grad, (first, second) in ((u, grad_u, moments[0]), (v, grad_v, moments[1])):
            first *= beta1
            first += (1 - beta1) * grad
            second *= beta2
            second += (1 - beta2) * grad ** 2
            param -= rate * (first / (1 - beta1 ** step)) / (
                np.sqrt(second / (1 - beta2 ** step)) + eps)
        if log and (step == 1 or step % 50 == 0 or step == epochs):
            log(f"  step {step}: loss {loss:.4f}")
    return Adapter(u.astype(np.float32), v.astype(np.float32), model, fitted_on)
