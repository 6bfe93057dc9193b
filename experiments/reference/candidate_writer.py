#!/usr/bin/python3
"""A candidate writer for `randlora parity --candidate`: an example of how another implementation
(a JAX port, a CUDA kernel, a PEFT fork) reports its results for a reference file's inputs.

Usage:
    /usr/bin/python3 experiments/reference/candidate_writer.py REF.safetensors CAND.safetensors
                     [--pairing peft|paper] [--scaling peft|alpha]
    build/randlora parity --candidate CAND.safetensors REF.safetensors

This "implementation" is RandLora, VeRA and LoRA written out in numpy float32 from PEFT's
formulas (src/peft/tuners/{randlora,vera,lora}/layer.py); replace `adapter_layer` with a call
into your own code. It reads REF (a peft-parity-v1 file: tests/fixtures/peft/README.md, or one
`randlora fixture` wrote) and writes, for every layer i:

    layers.<i>.output          y = x W^T + b + adapter(x)                    (tokens, d_out)
    layers.<i>.delta_weight    Delta W as PEFT's get_delta_weight            (d_out, d_in)
    layers.<i>.grad.x          dL/dx for L = sum(output * grad_output)       (tokens, d_in)
    layers.<i>.grad.<param>    dL/d<param>, PEFT's parameter names and shapes
    randlora_A, randlora_B / vera_A, vera_B   the shared bases used (optional for the check)

The bases are taken from REF here; a real port regenerates them from projection_prng_key (and
`parity` then shows whether they match bit for bit). Two switches make it deliberately wrong,
to see the check fail on the tensor at fault:
    --pairing paper   pair B's column (base b, rank k) with A's row k, as the paper's
                      sum_b B_b Lambda_b A Gamma_b reads, instead of PEFT's flattened order
    --scaling alpha   scale RandLora/LoRA by alpha instead of alpha / r

Needs numpy only (Debian: python3-numpy); the safetensors layout is read and written by hand.
"""

import argparse
import json
import math
import struct
import sys
from collections import OrderedDict

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    n = struct.unpack("<Q", buf[:8])[0]
    header = json.loads(buf[8 : 8 + n], object_pairs_hook=OrderedDict)
    meta = header.pop("__metadata__", {})
    dtypes = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}
    out = OrderedDict()
    for name, v in header.items():
        b, e = v["data_offsets"]
        raw = buf[8 + n + b : 8 + n + e]
        if v["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, dtype=dtypes[v["dtype"]]).astype(np.float32)
        out[name] = a.reshape(v["shape"])
    return meta, out


def write_safetensors(path, tensors, metadata):
    header = OrderedDict([("__metadata__", OrderedDict((k, str(v)) for k, v in metadata.items()))])
    blobs, off = [], 0
    for name, t in tensors.items():
        b = np.ascontiguousarray(t, dtype="<f4").tobytes()
        header[name] = OrderedDict([("dtype", "F32"), ("shape", list(t.shape)), ("data_offsets", [off, off + len(b)])])
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def randlora_layer(p, bases, r, alpha, x, W, dy, pairing, scaling):
    """PEFT's RandLora Linear: returns adapter output, Delta W, dx (adapter part) and param grads."""
    lam, gam = p["randlora_lambda"], p["randlora_gamma"]  # (r, nb), (nb, mn)
    d_out, d_in = W.shape
    mn, mx = min(d_in, d_out), max(d_in, d_out)
    nb = lam.shape[1]
    A = bases["randlora_A"][:, 0, :mn]  # (r, mn): every rank row, sliced to this layer
    B = bases["randlora_B"][:mx, :nb, :]  # (mx, nb, r)
    s = np.float32(alpha if scaling == "alpha" else alpha / r)
    U = lam[:, :, None] * A[:, None, :] * gam[None, :, :]  # (r, nb, mn): UniqueBaseGrad's product
    if pairing == "paper":  # row (b, k) of UA next to column (b, k) of UB
        UA = U.transpose(1, 0, 2).reshape(nb * r, mn)
    else:  # PEFT: UA = U.flatten(end_dim=1), row c = (k, b) = (c // nb, c % nb)
        UA = U.reshape(r * nb, mn)
    UB = B.reshape(mx, nb * r)  # column c = (b, k) = (c // r, c % r)
    if d_in <= d_out:  # F.linear(F.linear(x, UA), UB)
        y = s * (x @ UA.T) @ UB.T
        dw = s * (UB @ UA)
        g = s * (dy @ UB)  # (T, K)
        dx = g @ UA
        dUA = g.T @ x
    else:  # first = UB^T, second = UA^T
        h = x @ UB
        y = s * h @ UA
        dw = s * (UB @ UA).T
        dx = s * (dy @ UA.T) @ UB.T
        dUA = s * h.T @ dy
    dU = dUA.reshape(nb, r, mn).transpose(1, 0, 2) if pairing == "paper" else dUA.reshape(r, nb, mn)
    grads = {
        "randlora_lambda": np.einsum("kbj,kj,bj->kb", dU, A, gam),
        "randlora_gamma": np.einsum("kbj,kj,kb->bj", dU, A, lam),
    }
    return y, dw, dx, grads


def vera_layer(p, bases, x, W, dy):
    lb, ld = p["vera_lambda_b"], p["vera_lambda_d"]
    d_out, d_in = W.shape
    A = bases["vera_A"][:, :d_in]  # (r, d_in)
    B = bases["vera_B"][:d_out, :]  # (d_out, r)
    h = x @ A.T
    u = (h * ld) @ B.T
    y = lb * u
    dw = (lb[:, None] * B) @ (ld[:, None] * A)
    dh2 = (dy * lb) @ B
    grads = {"vera_lambda_b": (dy * u).sum(0), "vera_lambda_d": (dh2 * h).sum(0)}
    dx = (dh2 * ld) @ A
    return y, dw, dx, grads


def lora_layer(p, r, alpha, rslora, x, W, dy, scaling):
    A, B = p["lora_A.weight"], p["lora_B.weight"]
    s = np.float32(alpha if scaling == "alpha" else (alpha / math.sqrt(r) if rslora else alpha / r))
    h = x @ A.T
    y = s * h @ B.T
    dw = s * (B @ A)
    u = s * (dy @ B)
    grads = {"lora_A.weight": u.T @ x, "lora_B.weight": s * dy.T @ h}
    return y, dw, u @ A, grads


PARAMS = {
    "randlora": ["randlora_lambda", "randlora_gamma"],
    "vera": ["vera_lambda_b", "vera_lambda_d"],
    "lora": ["lora_A.weight", "lora_B.weight"],
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref")
    ap.add_argument("out")
    ap.add_argument("--pairing", choices=["peft", "paper"], default="peft")
    ap.add_argument("--scaling", choices=["peft", "alpha"], default="peft")
    a = ap.parse_args()
    meta, t = read_safetensors(a.ref)
    if meta.get("format") != "peft-parity-v1":
        sys.exit(f"{a.ref}: not a peft-parity-v1 file")
    method, r, layers = meta["method"], int(meta["r"]), int(meta["layers"])
    out = OrderedDict()
    bases = {k: v for k, v in t.items() if k in ("randlora_A", "randlora_B", "vera_A", "vera_B")}
    out.update(bases)
    for i in range(layers):
        pre = f"layers.{i}."
        W, b, x, dy = t[pre + "weight"], t[pre + "bias"], t[pre + "x"], t[pre + "grad_output"]
        p = {n: t[pre + n] for n in PARAMS[method]}
        if method == "randlora":
            ya, dw, dxa, grads = randlora_layer(p, bases, r, float(meta["alpha"]), x, W, dy, a.pairing, a.scaling)
        elif method == "vera":
            ya, dw, dxa, grads = vera_layer(p, bases, x, W, dy)
        else:
            ya, dw, dxa, grads = lora_layer(p, r, float(meta["alpha"]), meta["use_rslora"] == "true", x, W, dy, a.scaling)
        out[pre + "output"] = x @ W.T + b + ya
        out[pre + "delta_weight"] = dw
        out[pre + "grad.x"] = dy @ W + dxa
        for n, g in grads.items():
            out[pre + "grad." + n] = g
    impl = "numpy float32 example (experiments/reference/candidate_writer.py)"
    if a.pairing != "peft" or a.scaling != "peft":
        impl += f", deliberately wrong: pairing={a.pairing} scaling={a.scaling}"
    write_safetensors(a.out, out, {"format": "peft-parity-candidate-v1", "reference": a.ref.split("/")[-1],
                                   "implementation": impl})
    print(f"wrote {a.out}: {len(out)} tensors for {layers} {method} layer(s) of {a.ref}")


if __name__ == "__main__":
    main()
