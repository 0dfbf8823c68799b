"""Write a bundle that outputs the original tags plus learned ones.

The new ``model.onnx`` is the original graph, unchanged, with nodes
appended::

    features  = Concat(embedding, ReduceMean(mel), ReduceMean(Slice(mel, last 16 frames)))  (batch, D + 2 n_mels)
    logit_new = MatMul(features, W) ; Add(logit_new, b)  ->  Sigmoid  ->  p_new             (batch, 1)
    probs_new = Concat(probs, p_new, axis=1)                                                 (batch, n_tags + 1)

(``features = embedding`` for a head on the embedding alone).
and ``probs_new`` declared as an extra graph output; ``model.json`` names it
as ``outputs.probs``. The original nodes and the original ``probs`` output
stay as they were, so the first ``n_tags`` columns are the original
probabilities copied by ``Concat``: equal bit for bit. Learning a second tag
on a learned bundle chains another ``Concat`` on the previous one.

The graph is edited at the protobuf wire level, without the ``onnx``
package (a runtime dependency-free path): the top-level fields of the
``ModelProto`` are copied as they are, and the new nodes, initializers and
output are appended to the ``GraphProto`` field (appending to repeated fields
is what protobuf's concatenation rule gives). Only the operators ReduceMean,
Slice, Concat, MatMul, Add and Sigmoid of the default ONNX domain are added
(opset 17, supported by TensorRT's parser).

``model.json`` gains, besides the label and its thresholds, a top-level
``learned_tags`` list: one record per learned tag with the head's weights,
the examples it was learned from, its cross-validated quality, the output
names and the checksums of the base and the new graph.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from ..errors import BundleError, ParameterError
from ..model.bundle import LABEL_RE, LABEL_RULE, RESERVED_TAG_NAMES
from ..model.bundle_write import write_bundle

__all__ = ["append_head", "graph_names", "learned_bundle_files", "copy_bundle", "check_tag_name"]

# ---------------------------------------------------------------------------- protobuf wire format
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
# ModelProto / GraphProto / NodeProto / TensorProto / ValueInfoProto field numbers (onnx.proto3)
_MODEL_GRAPH = 7
_MODEL_OPSET = 8
_OPSET_DOMAIN, _OPSET_VERSION = 1, 2
_GRAPH_NODE, _GRAPH_INIT, _GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_VALUE_INFO = 1, 5, 11, 12, 13
_NODE_INPUT, _NODE_OUTPUT, _NODE_NAME, _NODE_OP, _NODE_ATTR = 1, 2, 3, 4, 5
_ATTR_NAME, _ATTR_I, _ATTR_INTS, _ATTR_TYPE = 1, 3, 8, 20
_ATTR_TYPE_INT, _ATTR_TYPE_INTS = 2, 7
_TENSOR_DIMS, _TENSOR_TYPE, _TENSOR_NAME, _TENSOR_RAW = 1, 2, 8, 9
_FLOAT = 1
_INT64 = 7
_VI_NAME, _VI_TYPE = 1, 2
_TYPE_TENSOR = 1
_TT_ELEM, _TT_SHAPE = 1, 2
_SHAPE_DIM = 1
_DIM_VALUE, _DIM_PARAM = 1, 2


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _len_field(field: int, payload: bytes) -> bytes:
    return _key(field, _LEN) + _varint(len(payload)) + payload


def _str_field(field: int, text: str) -> bytes:
    return _len_field(field, text.encode("utf-8"))


def _int_field(field: int, value: int) -> bytes:
    return _key(field, _VARINT) + _varint(int(value))


def _read_varint(buf: bytes, pos: int, where: str) -> tuple[int, int]:
    shift = 0
    value = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise BundleError(f"{where}: not a valid ONNX protobuf (truncated varint)")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes, where: str):
    """Yield ``(field, wire, value, raw)`` for each field of a message; ``value`` is an int or the payload bytes."""
    pos = 0
    n = len(buf)
    while pos < n:
        start = pos
        key, pos = _read_varint(buf, pos, where)
        field, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos, where)
        elif wire == _I64:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == _LEN:
            length, pos = _read_varint(buf, pos, where)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == _I32:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise BundleError(f"{where}: not a valid ONNX protobuf (wire type {wire})")
        if pos > n or field == 0:
            raise BundleError(f"{where}: not a valid ONNX protobuf (truncated field)")
        yield field, wire, value, buf[start:pos]


def _strings(buf: bytes, field: int, where: str) -> list[str]:
    return [v.decode("utf-8", "replace") for f, w, v, _ in _fields(buf, where) if f == field and w == _LEN]


def _split_model(model: bytes, where: str) -> tuple[list[bytes], bytes, int]:
    """(top-level fields before the graph, graph payload, index where the graph goes)."""
    parts: list[bytes] = []
    graph = b""
    graph_at = -1
    for f, w, v, raw in _fields(model, where):
        if f == _MODEL_GRAPH and w == _LEN:
            graph += v  # several graph fields merge: their payloads concatenate
            if graph_at < 0:
                graph_at = len(parts)
                parts.append(b"")
        else:
            parts.append(raw)
    if graph_at < 0:
        raise BundleError(f"{where}: the ONNX model has no graph")
    return parts, graph, graph_at


def _default_opset(model: bytes, where: str) -> int:
    for f, w, v, _ in _fields(model, where):
        if f == _MODEL_OPSET and w == _LEN:
            domain, version = "", 0
            for f2, w2, v2, _ in _fields(v, where):
                if f2 == _OPSET_DOMAIN and w2 == _LEN:
                    domain = v2.decode("utf-8", "replace")
                elif f2 == _OPSET_VERSION and w2 == _VARINT:
                    version = int(v2)
            if domain in ("", "ai.onnx"):
                return version
    return 0


def graph_names(model: bytes, where: str = "model.onnx") -> dict:
    """Names used in an ONNX model's graph.

    Returns
    -------
    dict
        ``{"inputs": [...], "outputs": [...], "all": set of every node output,
        initializer, input, output and value_info name}``.
    """
    _, graph, _ = _split_model(model, where)
    names: set[str] = set()
    inputs, outputs = [], []
    for f, w, v, _ in _fields(graph, where):
        if w != _LEN:
            continue
        if f == _GRAPH_NODE:
            for f2, w2, v2, _ in _fields(v, where):
                if f2 in (_NODE_OUTPUT, _NODE_NAME) and w2 == _LEN:
                    names.add(v2.decode("utf-8", "replace"))
        elif f == _GRAPH_INIT:
            names.update(_strings(v, _TENSOR_NAME, where))
        elif f in (_GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_VALUE_INFO):
            nm = _strings(v, _VI_NAME, where)
            names.update(nm)
            if f == _GRAPH_INPUT:
                inputs += nm
            elif f == _GRAPH_OUTPUT:
                outputs += nm
    return {"inputs": inputs, "outputs": outputs, "all": names}


def _tensor(name: str, array: np.ndarray) -> bytes:
    arr = np.asarray(array)
    if arr.dtype == np.int64:
        a, dtype = np.ascontiguousarray(arr, dtype="<i8"), _INT64
    else:
        a, dtype = np.ascontiguousarray(arr, dtype="<f4"), _FLOAT
    body = b"".join(_int_field(_TENSOR_DIMS, d) for d in a.shape)
    body += _int_field(_TENSOR_TYPE, dtype) + _str_field(_TENSOR_NAME, name) + _len_field(_TENSOR_RAW, a.tobytes())
    return body


def _node(op: str, inputs: list[str], outputs: list[str], name: str, int_attrs: dict | None = None,
          ints_attrs: dict | None = None) -> bytes:
    body = b"".join(_str_field(_NODE_INPUT, i) for i in inputs)
    body += b"".join(_str_field(_NODE_OUTPUT, o) for o in outputs)
    body += _str_field(_NODE_NAME, name) + _str_field(_NODE_OP, op)
    for k, v in (int_attrs or {}).items():
        attr = _str_field(_ATTR_NAME, k) + _int_field(_ATTR_I, v) + _int_field(_ATTR_TYPE, _ATTR_TYPE_INT)
        body += _len_field(_NODE_ATTR, attr)
    for k, vs in (ints_attrs or {}).items():
        attr = _str_field(_ATTR_NAME, k) + b"".join(_int_field(_ATTR_INTS, v) for v in vs) \
            + _int_field(_ATTR_TYPE, _ATTR_TYPE_INTS)
        body += _len_field(_NODE_ATTR, attr)
    return body


def _value_info(name: str, dims: list) -> bytes:
    shape = b""
    for d in dims:
        dim = _str_field(_DIM_PARAM, d) if isinstance(d, str) else _int_field(_DIM_VALUE, d)
        shape += _len_field(_SHAPE_DIM, dim)
    tensor_type = _int_field(_TT_ELEM, _FLOAT) + _len_field(_TT_SHAPE, shape)
    return _str_field(_VI_NAME, name) + _len_field(_VI_TYPE, _len_field(_TYPE_TENSOR, tensor_type))


def _unique(base: str, taken: set) -> str:
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


def append_head(model: bytes, embedding: str, probs: str, n_tags: int, weight: np.ndarray, bias: float,
                tag: str, where: str = "model.onnx", mel: str | None = None, window_frames: int = 0,
                stats_frames: int = 16) -> tuple[bytes, str]:
    """Append a sigmoid head on ``embedding`` (and optionally mel statistics) and a Concat with ``probs``.

    With ``mel`` (the graph input's name), the head's input is
    ``Concat(embedding, ReduceMean(mel, frames), ReduceMean(Slice(mel, last
    stats_frames frames), frames))`` (as :func:`rtclassify.learn.embeddings.mel_stats`).

    Parameters
    ----------
    model : bytes
        The serialized ONNX model.
    embedding, probs : str
        Names of the graph outputs with the embedding ``(batch, D)`` and the
        probabilities ``(batch, n_tags)``.
    n_tags : int
        Columns of ``probs``.
    weight : ndarray, shape (D,)
    bias : float
    tag : str
        The new tag (used in node names).
    mel : str, optional
        Name of the graph input ``(batch, n_mels, window_frames)`` when the
        head also reads mel statistics.
    window_frames, stats_frames : int
        Window length, and frames at its end for the "recent" statistics.

    Returns
    -------
    model : bytes
        The new serialized model.
    probs_out : str
        Name of the new output, shape ``(batch, n_tags + 1)``.

    Raises
    ------
    BundleError
        The model is not a valid ONNX protobuf, lacks one of the outputs, or its
        default opset is older than 13.
    """
    names = graph_names(model, where)
    for what, nm in (("embedding", embedding), ("probs", probs)):
        if nm not in names["outputs"]:
            raise BundleError(f"{where}: has no output {nm!r} for '{what}' (outputs: {', '.join(names['outputs'])})")
    opset = _default_opset(model, where)
    if opset < 13:
        raise BundleError(f"{where}: default-domain opset {opset} is older than 13; cannot append a head")
    taken = set(names["all"])
    safe = re.sub(r"[^A-Za-z0-9_]", "_", tag)
    w_name = _unique(f"learned_{safe}_weight", taken)
    b_name = _unique(f"learned_{safe}_bias", taken)
    mm = _unique(f"learned_{safe}_matmul", taken)
    lg = _unique(f"learned_{safe}_logit", taken)
    pr = _unique(f"learned_{safe}_prob", taken)
    out = _unique(f"probs_{safe}", taken)
    w = np.asarray(weight, np.float32).reshape(-1, 1)
    b = np.asarray([bias], np.float32)
    head_in = embedding
    pre = []
    if mel is not None:
        if mel not in names["inputs"]:
            raise BundleError(f"{where}: has no input {mel!r} (inputs: {', '.join(names['inputs'])})")
        last = int(min(stats_frames, window_frames))
        starts, ends, axes = (_unique(f"learned_{safe}_{k}", taken) for k in ("starts", "ends", "axes"))
        m_all, m_cut, m_last, feats = (_unique(f"learned_{safe}_{k}", taken)
                                       for k in ("mel_mean", "mel_recent", "mel_recent_mean", "features"))
        # ReduceMean takes its axes as an attribute up to opset 17, as an input from opset 18
        rm_extra, rm_attr = ([axes], None) if opset >= 18 else ([], {"axes": [2]})
        pre = [
            _len_field(_GRAPH_NODE, _node("ReduceMean", [mel] + rm_extra, [m_all],
                                          _unique(f"learned_{safe}/ReduceMean", taken), {"keepdims": 0}, rm_attr)),
            _len_field(_GRAPH_NODE, _node("Slice", [mel, starts, ends, axes], [m_cut],
                                          _unique(f"learned_{safe}/Slice", taken))),
            _len_field(_GRAPH_NODE, _node("ReduceMean", [m_cut] + rm_extra, [m_last],
                                          _unique(f"learned_{safe}/ReduceMean_recent", taken), {"keepdims": 0},
                                          rm_attr)),
            _len_field(_GRAPH_NODE, _node("Concat", [embedding, m_all, m_last], [feats],
                                          _unique(f"learned_{safe}/Concat_features", taken), {"axis": 1})),
            _len_field(_GRAPH_INIT, _tensor(starts, np.array([window_frames - last], np.int64))),
            _len_field(_GRAPH_INIT, _tensor(ends, np.array([window_frames], np.int64))),
            _len_field(_GRAPH_INIT, _tensor(axes, np.array([2], np.int64))),
        ]
        head_in = feats
    extra = b"".join(pre + [
        _len_field(_GRAPH_NODE, _node("MatMul", [head_in, w_name], [mm], _unique(f"learned_{safe}/MatMul", taken))),
        _len_field(_GRAPH_NODE, _node("Add", [mm, b_name], [lg], _unique(f"learned_{safe}/Add", taken))),
        _len_field(_GRAPH_NODE, _node("Sigmoid", [lg], [pr], _unique(f"learned_{safe}/Sigmoid", taken))),
        _len_field(_GRAPH_NODE, _node("Concat", [probs, pr], [out], _unique(f"learned_{safe}/Concat", taken),
                                      {"axis": 1})),
        _len_field(_GRAPH_INIT, _tensor(w_name, w)),
        _len_field(_GRAPH_INIT, _tensor(b_name, b)),
        _len_field(_GRAPH_OUTPUT, _value_info(out, ["batch", int(n_tags) + 1])),
    ])
    parts, graph, at = _split_model(model, where)
    parts[at] = _len_field(_MODEL_GRAPH, graph + extra)
    return b"".join(parts), out


# ---------------------------------------------------------------------------- bundle
def check_tag_name(name, labels) -> str:
    """Validate a new tag name against the rule of a bundle's labels
    (:data:`rtclassify.model.bundle.LABEL_RE`) and the existing labels."""
    if not isinstance(name, str) or not LABEL_RE.match(name):
        raise ParameterError(f"name must be {LABEL_RULE}; got {name!r}")
    if name.casefold() in RESERVED_TAG_NAMES:
        raise ParameterError(f"name {name!r} is a column of `rtclassify tag`'s CSV beside the tags "
                             f"({', '.join(RESERVED_TAG_NAMES)}); choose another name")
    if name in labels:
        raise ParameterError(f"name {name!r} is already a tag of this bundle ({', '.join(labels)})")
    same = [t for t in labels if t.casefold() == name.casefold()]
    if same:
        # 'Piano' beside 'piano' would be two OSC addresses and mapping keys that differ only by case
        raise ParameterError(f"name {name!r} differs from this bundle's tag {same[0]!r} only by case; choose "
                             f"another name")
    return name


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def learned_bundle_files(bundle, tag: str, weight: np.ndarray, bias: float, on: float, off: float,
                         record: dict | None = None, features: str = "embedding") -> dict:
    """The files of a bundle with one more tag, computed by a linear head on the embedding.

    Parameters
    ----------
    bundle : Bundle
        The base bundle (folder or zip); it must declare an embedding output.
    tag : str
        The new tag's name.
    weight : ndarray, shape (D,)
    bias : float
        The head (on raw embeddings).
    on, off : float
        Decoder thresholds of the new tag.
    record : dict, optional
        Extra provenance stored in the tag's ``learned_tags`` entry.
    features : {"embedding", "embedding+mel"}
        The head's input (see :func:`rtclassify.learn.embeddings.head_features`):
        ``weight`` has ``D`` or ``D + 2 * n_mels`` values.

    Returns
    -------
    dict
        ``{"model.onnx": bytes, "model.json": bytes}`` (nothing is written).

    Raises
    ------
    ParameterError
        Bad tag name, thresholds or weight size.
    BundleError
        The base bundle has no embedding output or its graph cannot be extended.
    """
    from ..model.bundle import MODEL_JSON, MODEL_ONNX

    check_tag_name(tag, bundle.labels)
    if bundle.embedding_name is None:
        raise BundleError(f"{bundle.file_label(MODEL_JSON)}: no 'outputs.embedding'; a head needs the embedding")
    from .embeddings import FEATURES, MEL_STATS_FRAMES

    if features not in FEATURES:
        raise ParameterError(f"features must be one of {', '.join(FEATURES)} (got {features!r})")
    w = np.asarray(weight, np.float64).reshape(-1)
    extra_in = 2 * bundle.n_mels if features == "embedding+mel" else 0
    if bundle.embedding_dim is not None and len(w) != bundle.embedding_dim + extra_in:
        raise ParameterError(f"weight has {len(w)} values but the head's input ({features}) has "
                             f"{bundle.embedding_dim + extra_in}")
    if not (np.all(np.isfinite(w)) and np.isfinite(bias)):
        raise ParameterError("the head's weight and bias must be finite")
    if not (0.0 <= off <= on <= 1.0):
        raise ParameterError(f"thresholds must satisfy 0 <= off <= on <= 1 (got on={on}, off={off})")
    base = bundle.read_bytes(MODEL_ONNX)
    mel = bundle.input_name if features == "embedding+mel" else None
    onnx_bytes, probs_out = append_head(base, bundle.embedding_name, bundle.probs_name, bundle.n_tags, w, float(bias),
                                        tag, bundle.file_label(MODEL_ONNX), mel=mel,
                                        window_frames=bundle.window_frames, stats_frames=MEL_STATS_FRAMES)
    meta = bundle.to_config()
    meta["name"] = f"{meta['name']}+{tag}"
    meta["labels"] = list(meta["labels"]) + [tag]
    meta["outputs"] = dict(meta["outputs"], probs=probs_out)
    meta["thresholds"] = dict(meta["thresholds"], **{tag: {"on": round(float(on), 6), "off": round(float(off), 6)}})
    entry = {
        "tag": tag,
        "index": len(meta["labels"]) - 1,
        "output": probs_out,
        "base_output": bundle.probs_name,
        "embedding_output": bundle.embedding_name,
        "head": {"type": "logistic", "features": features,
                 "inputs": [bundle.embedding_name] + ([f"mean of {bundle.input_name} over the window",
                                                       f"mean of {bundle.input_name} over its last "
                                                       f"{min(MEL_STATS_FRAMES, bundle.window_frames)} frames"]
                                                      if mel else []),
                 "weight": [float(x) for x in w.astype(np.float32)], "bias": float(np.float32(bias))},
        "thresholds": {"on": round(float(on), 6), "off": round(float(off), 6)},
        "base_onnx_sha256": _sha256(base),
        "onnx_sha256": _sha256(onnx_bytes),
    }
    if record:
        entry.update(record)
    meta["learned_tags"] = list(meta.get("learned_tags", [])) + [entry]
    text = json.dumps(meta, indent=1, allow_nan=False)
    return {MODEL_ONNX: onnx_bytes, MODEL_JSON: text.encode("utf-8")}


def copy_bundle(bundle, out) -> Path:
    """Copy a bundle's ``model.onnx``, ``model.json`` and, when it has one, ``weights.pt`` (the torch
    backend's weights) to a folder or a ``.zip`` file (see
    :func:`rtclassify.model.bundle_write.write_bundle`); the package's own default bundle is refused as
    ``out``."""
    from ..model.bundle import MODEL_JSON, MODEL_ONNX, WEIGHTS

    names = [MODEL_ONNX, MODEL_JSON] + ([WEIGHTS] if bundle.has_file(WEIGHTS) else [])
    return write_bundle(out, {name: bundle.read_bytes(name) for name in names}, what="path", shipped=False)

