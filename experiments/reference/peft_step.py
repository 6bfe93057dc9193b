#!/usr/bin/env python3
"""Time one training step of ONE adapted linear layer under PyTorch, the way PEFT computes it.

The step is: forward through a frozen nn.Linear base plus a RandLora or LoRA adapter,
loss = (y * G).sum() for a fixed random G (so the upstream gradient is G, as in the C
`randlora bench`), backward, torch.optim.AdamW step (lr 1e-4, weight_decay 0), zero_grad.
x does not require grad (a single layer: no dx is computed).

This is NOT PEFT: it reimplements PEFT's formulation in plain torch (see
/work/shared/reference/peft-semantics.md sections 2.2-2.6 and experiments/reference/README.md),
so that the C implementation's step time can be compared with PyTorch on the same machine
and thread count.

It needs Debian's python3-torch (`/usr/bin/python3`). Without torch it prints
"skipped: python3-torch not installed" and exits 0, so a make target can call it
unconditionally.

Usage:
  /usr/bin/python3 experiments/reference/peft_step.py --method randlora|lora --r 32 \
      --out 768 --in 768 --tokens 4096 --threads 1 [--csv]
  /usr/bin/python3 experiments/reference/peft_step.py --all FILE
  /usr/bin/python3 experiments/reference/peft_step.py --selfcheck
"""

import argparse
import importlib.util
import math
import os
import subprocess
import sys
import time

IMPL = "pytorch-peft-formulation"
CSV_HEADER = "impl,method,r,out,in,tokens,threads,median_ms,p25_ms,p75_ms,torch_version"
SYSTEM_PYTHON = "/usr/bin/python3"
# Set in the environment of a re-exec so that it cannot loop.
_REEXEC_FLAG = "PEFT_STEP_REEXEC"

# The --all grid.
ALL_METHODS = ("randlora", "lora")
ALL_THREADS = (1, 2)
ALL_SHAPE = dict(r=32, out=768, inp=768, tokens=4096)


# --------------------------------------------------------------------------------------------
# Environment: torch availability, thread control
# --------------------------------------------------------------------------------------------

def _skip(why=""):
    msg = "skipped: python3-torch not installed"
    if why:
        msg += " (" + why + ")"
    print(msg)
    sys.exit(0)


def _ensure_torch_interpreter():
    """Return if this interpreter can import torch; else re-exec under /usr/bin/python3 once
    (the pyenv `python3` on PATH has no torch), else print the skip message and exit 0."""
    if importlib.util.find_spec("torch") is not None:
        return
    here = os.path.realpath(sys.executable) if sys.executable else ""
    if (os.environ.get(_REEXEC_FLAG) != "python" and os.access(SYSTEM_PYTHON, os.X_OK)
            and os.path.realpath(SYSTEM_PYTHON) != here):
        probe = subprocess.run([SYSTEM_PYTHON, "-c", "import importlib.util,sys;"
                                "sys.exit(importlib.util.find_spec('torch') is None)"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if probe.returncode == 0:
            env = dict(os.environ)
            env[_REEXEC_FLAG] = "python"
            sys.stdout.flush()
            os.execve(SYSTEM_PYTHON, [SYSTEM_PYTHON, os.path.abspath(__file__)] + sys.argv[1:], env)
    _skip("`import torch` fails under %s" % (sys.executable or "python"))


def _ensure_thread_env(threads):
    """torch.set_num_threads does not control OpenBLAS's pthread pool (toolchain.md section 4),
    and OpenBLAS reads OPENBLAS_NUM_THREADS when it is loaded: re-exec this script with
    OPENBLAS_NUM_THREADS and OMP_NUM_THREADS = threads if they differ. Call before importing torch."""
    want = str(threads)
    if os.environ.get("OPENBLAS_NUM_THREADS") == want and os.environ.get("OMP_NUM_THREADS") == want:
        return
    if "torch" in sys.modules:
        raise RuntimeError("thread environment must be set before torch is imported")
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = want
    env["OMP_NUM_THREADS"] = want
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)


def _import_torch():
    try:
        import torch  # noqa: F401
    except Exception as e:  # ImportError, or a broken install (missing libblas.so.3, ...)
        _skip("`import torch` failed: %s: %s" % (type(e).__name__, e))
    return torch


# --------------------------------------------------------------------------------------------
# The adapted layers (built lazily: torch is imported only after the environment is set)
# --------------------------------------------------------------------------------------------

def _make_unique_base_grad(torch):
    class UniqueBaseGrad(torch.autograd.Function):
        """U[k,b,j] = lambda[k,b] * A[k,0,j] * Gamma[b,j], shape (r, nb, mn).
        The shared basis A gets no gradient."""

        @staticmethod
        def forward(ctx, A, lam, gam):
            U = lam[:, :, None] * A * gam[None]
            ctx.save_for_backward(A, lam, gam)
            return U

        @staticmethod
        def backward(ctx, g):
            A, lam, gam = ctx.saved_tensors
            A, lam, gam = A.to(g.dtype), lam.to(g.dtype), gam.to(g.dtype)
            grad_lam = torch.einsum("kbj,kvj,bj->kb", g, A, gam)
            grad_gam = torch.einsum("kbj,kvj,kb->bj", g, A, lam)
            return None, grad_lam, grad_gam

    return UniqueBaseGrad


def make_randlora_bases(torch, r, out, inp, gen, dtype):
    """Shared bases A (r, 1, min_dim) and B (max_dim, NB, r), normalised by their std.
    Random normal values: the generation (PEFT: kaiming-uniform in bf16) does not matter for
    timing; the C side generates PEFT's exact bases."""
    mn, mx = min(out, inp), max(out, inp)
    nb = math.ceil(mn / r)
    A = torch.randn((r, 1, mn), generator=gen, dtype=dtype)
    B = torch.randn((mx, nb, r), generator=gen, dtype=dtype)
    return A / A.std(), B / B.std()


class RandLoraLayer:
    """Frozen W (out, in), bias b; shared frozen bases A, B; trainable lambda (r, nb), Gamma (nb, mn).
    PEFT's forward (peft-semantics.md section 2.5):
      U  = UniqueBaseGrad(A[:, :nb, :mn], lambda, Gamma)  (r, nb, mn)
      UA = U.flatten(0, 1)                                 (r*nb, mn)
      UB = B[:mx, :nb, :].flatten(1)                       (mx, nb*r)
      in <= out: first = UA,   second = UB
      in >  out: first = UB.T, second = UA.T
      y = F.linear(x, W, b) + F.linear(F.linear(x, first), second) * s,  s = alpha / r."""

    method = "randlora"

    def __init__(self, torch, W, b, A, B, lam, gam, scaling, plain_autograd=False):
        self.torch, self.F = torch, torch.nn.functional
        self.W, self.b, self.A, self.B = W, b, A, B
        self.lam, self.gam = lam, gam
        self.scaling = scaling
        self.out, self.inp = W.shape
        self.mn, self.mx = min(self.out, self.inp), max(self.out, self.inp)
        self.nb = lam.shape[1]
        self.ubg = _make_unique_base_grad(torch)
        self.plain = plain_autograd  # selfcheck only: U through ordinary autograd

    def params(self):
        return [self.lam, self.gam]

    def scaled_bases(self):
        A = self.A[:, : self.nb, : self.mn]
        B = self.B[: self.mx, : self.nb, :]
        if self.plain:
            U = self.lam[:, :, None] * A * self.gam[None]
        else:
            U = self.ubg.apply(A, self.lam, self.gam)
        UA = U.flatten(0, 1)
        UB = B.flatten(1)
        if self.inp <= self.out:
            return UA, UB
        return UB.T, UA.T

    def forward(self, x):
        F = self.F
        first, second = self.scaled_bases()
        return F.linear(x, self.W, self.b) + F.linear(F.linear(x, first), second) * self.scaling

    def delta_weight(self):
        first, second = self.scaled_bases()
        return (second @ first) * self.scaling


class LoraLayer:
    """y = F.linear(x, W, b) + (x @ A.T) @ B.T * s, trainable A (r, in), B (out, r)."""

    method = "lora"

    def __init__(self, torch, W, b, A, B, scaling):
        self.torch, self.F = torch, torch.nn.functional
        self.W, self.b, self.A, self.B = W, b, A, B
        self.scaling = scaling

    def params(self):
        return [self.A, self.B]

    def forward(self, x):
        return self.F.linear(x, self.W, self.b) + (x @ self.A.T) @ self.B.T * self.scaling


def build_layer(torch, method, r, out, inp, seed=42, dtype=None, alpha=None, plain_autograd=False):
    dtype = dtype or torch.float32
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn((out, inp), generator=gen, dtype=dtype) / math.sqrt(inp)
    b = torch.randn((out,), generator=gen, dtype=dtype) * 0.01
    if method == "randlora":
        A, B = make_randlora_bases(torch, r, out, inp, gen, dtype)
        nb = math.ceil(min(out, inp) / r)
        # Trained-looking values, not PEFT's no-op init (lambda = 0), as in the C bench.
        lam = (torch.randn((r, nb), generator=gen, dtype=dtype) * 0.01).requires_grad_()
        gam = (torch.randn((nb, min(out, inp)), generator=gen, dtype=dtype) * 0.01).requires_grad_()
        scaling = (640.0 if alpha is None else alpha) / r  # PEFT's default randlora_alpha = 640
        return RandLoraLayer(torch, W, b, A, B, lam, gam, scaling, plain_autograd)
    if method == "lora":
        A = (torch.randn((r, inp), generator=gen, dtype=dtype) * 0.01).requires_grad_()
        B = (torch.randn((out, r), generator=gen, dtype=dtype) * 0.01).requires_grad_()
        scaling = (2.0 * r if alpha is None else alpha) / r  # alpha = 2r, as the C bench
        return LoraLayer(torch, W, b, A, B, scaling)
    raise ValueError("unknown method %r" % method)


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------

def quantile(sorted_xs, q):
    """Linear interpolation between closest ranks (numpy's default, GSL's
    gsl_stats_quantile_from_sorted_data, which the C bench uses)."""
    n = len(sorted_xs)
    h = (n - 1) * q
    lo = int(math.floor(h))
    hi = min(lo + 1, n - 1)
    return sorted_xs[lo] + (h - lo) * (sorted_xs[hi] - sorted_xs[lo])


def time_step(torch, method, r, out, inp, tokens, threads, warmup=2, min_reps=7, max_reps=50,
              min_seconds=0.5, direct_grad=False):
    torch.set_num_threads(threads)
    layer = build_layer(torch, method, r, out, inp)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn((tokens, inp), generator=gen)          # requires_grad = False
    G = torch.randn((tokens, out), generator=gen)
    opt = torch.optim.AdamW(layer.params(), lr=1e-4, weight_decay=0.0)

    def step():
        y = layer.forward(x)
        if direct_grad:
            y.backward(G)                                   # upstream gradient G, no extra op
        else:
            (y * G).sum().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    ts = []
    start = time.perf_counter()
    while len(ts) < max_reps and (len(ts) < min_reps or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return {"median_ms": 1e3 * quantile(ts, 0.5), "p25_ms": 1e3 * quantile(ts, 0.25),
            "p75_ms": 1e3 * quantile(ts, 0.75), "n": len(ts)}


def csv_row(method, r, out, inp, tokens, threads, res, torch_version):
    return "%s,%s,%d,%d,%d,%d,%d,%.3f,%.3f,%.3f,%s" % (
        IMPL, method, r, out, inp, tokens, threads, res["median_ms"], res["p25_ms"], res["p75_ms"],
        torch_version)


# --------------------------------------------------------------------------------------------
# Self-check: the custom Function against plain autograd (and the forward against dense dW)
# --------------------------------------------------------------------------------------------

def selfcheck(torch):
    def rel(a, b):
        den = b.abs().max().item()
        return (a - b).abs().max().item() / (den if den > 0 else 1.0)

    cases = [(40, 24, 8), (24, 40, 8), (40, 24, 7), (24, 40, 7), (32, 32, 5), (24, 40, 64)]
    tol = {torch.float32: 2e-6, torch.float64: 1e-12}
    worst = {torch.float32: 0.0, torch.float64: 0.0}
    ok = True
    for dtype in (torch.float32, torch.float64):
        for out, inp, r in cases:
            n = 13
            gen = torch.Generator().manual_seed(1000 + out + inp + r)
            x = torch.randn((n, inp), generator=gen, dtype=dtype)
            G = torch.randn((n, out), generator=gen, dtype=dtype)
            res = {}
            for plain in (False, True):
                ly = build_layer(torch, "randlora", r, out, inp, seed=3, dtype=dtype, alpha=2.0 * r,
                                 plain_autograd=plain)
                y = ly.forward(x)
                (y * G).sum().backward()
                res[plain] = (y.detach(), ly.lam.grad.clone(), ly.gam.grad.clone(), ly)
            y_c, gl_c, gg_c, ly_c = res[False]
            y_p, gl_p, gg_p, _ = res[True]
            # The forward against the dense update dW = s * second @ first (section 2.5).
            with torch.no_grad():
                dW = ly_c.delta_weight()
                y_dense = x @ (ly_c.W + dW).T + ly_c.b
            # grad of lambda / Gamma through the closed form of section 2.6:
            # dM = G^T X (o x i), transposed if i > o; dL/dUA = s * UB^T dM.
            with torch.no_grad():
                A = ly_c.A[:, : ly_c.nb, : ly_c.mn]
                UB = ly_c.B[: ly_c.mx, : ly_c.nb, :].flatten(1)
                dM = G.T @ x if inp <= out else (G.T @ x).T
                g = (ly_c.scaling * UB.T @ dM).reshape(r, ly_c.nb, ly_c.mn)
                gl_f = torch.einsum("kbj,kvj,bj->kb", g, A, ly_c.gam)
                gg_f = torch.einsum("kbj,kvj,kb->bj", g, A, ly_c.lam)
            errs = {"grad_lambda vs autograd": rel(gl_c, gl_p), "grad_Gamma vs autograd": rel(gg_c, gg_p),
                    "grad_lambda vs closed form": rel(gl_c, gl_f), "grad_Gamma vs closed form": rel(gg_c, gg_f),
                    "y vs plain": rel(y_c, y_p), "y vs x(W+dW)^T+b": rel(y_c, y_dense)}
            m = max(errs.values())
            worst[dtype] = max(worst[dtype], m)
            good = m <= tol[dtype]
            ok = ok and good
            print("%s %-7s out=%-3d in=%-3d r=%-2d nb=%-2d  %s" % (
                "PASS" if good else "FAIL", str(dtype).replace("torch.", ""), out, inp, r, ly_c.nb,
                "  ".join("%s %.1e" % (k, v) for k, v in errs.items())))
    print("selfcheck: %s (worst max|err|/max|ref|: float32 %.2e <= %.0e, float64 %.2e <= %.0e; torch %s)" % (
        "PASS" if ok else "FAIL", worst[torch.float32], tol[torch.float32], worst[torch.float64],
        tol[torch.float64], torch.__version__))
    return ok


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def run_all(path):
    """The grid {randlora, lora} x threads {1, 2} at 768x768, 4096 tokens, r = 32, each point in
    its own process (the thread environment is fixed when OpenBLAS is loaded); FILE written
    atomically (FILE.tmp, then os.replace)."""
    rows = []
    for threads in ALL_THREADS:
        for method in ALL_METHODS:
            env = dict(os.environ)
            env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(threads)
            cmd = [sys.executable, os.path.abspath(__file__), "--method", method,
                   "--r", str(ALL_SHAPE["r"]), "--out", str(ALL_SHAPE["out"]), "--in", str(ALL_SHAPE["inp"]),
                   "--tokens", str(ALL_SHAPE["tokens"]), "--threads", str(threads), "--csv"]
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, universal_newlines=True)
            lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
            if p.returncode != 0 or len(lines) != 2 or lines[0] != CSV_HEADER:
                sys.stderr.write("peft_step --all: %s --threads %d failed (rc %d): %s\n" % (
                    method, threads, p.returncode, p.stdout))
                return 1
            rows.append(lines[1])
            print(lines[1], flush=True)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(CSV_HEADER + "\n")
        for row in rows:
            f.write(row + "\n")
    os.replace(tmp, path)
    print("wrote %s" % path)
    return 0


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Time one training step (forward, backward, AdamW) of one adapted linear layer "
                    "with a frozen base under PyTorch, in PEFT's formulation (a reimplementation, not "
                    "PEFT itself). Optional: exits 0 with 'skipped: ...' when torch is not installed.")
    p.add_argument("--method", choices=("randlora", "lora"), default="randlora")
    p.add_argument("--r", type=int, default=32)
    p.add_argument("--out", type=int, default=768)
    p.add_argument("--in", dest="inp", type=int, default=768)
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--csv", action="store_true", help="print a CSV header and one row")
    p.add_argument("--min-reps", type=int, default=7)
    p.add_argument("--max-reps", type=int, default=50)
    p.add_argument("--seconds", type=float, default=0.5, help="minimum timed seconds")
    p.add_argument("--direct-grad", action="store_true",
                   help="backward with y.backward(G) instead of loss = (y*G).sum() (no elementwise op)")
    p.add_argument("--all", metavar="FILE",
                   help="run {randlora, lora} x threads {1, 2} at 768x768, 4096 tokens, r 32; write FILE")
    p.add_argument("--selfcheck", action="store_true",
                   help="check the custom UniqueBaseGrad against plain autograd on small shapes")
    a = p.parse_args(argv)
    for name in ("r", "out", "inp", "tokens", "threads", "min_reps", "max_reps"):
        if getattr(a, name) < 1:
            p.error("--%s must be positive" % {"inp": "in"}.get(name, name).replace("_", "-"))
    if a.max_reps < a.min_reps:
        p.error("--max-reps must be >= --min-reps")
    return a


def main(argv):
    a = parse_args(argv)
    _ensure_torch_interpreter()
    if a.all:
        return run_all(a.all)
    if a.selfcheck:
        torch = _import_torch()
        return 0 if selfcheck(torch) else 1
    _ensure_thread_env(a.threads)
    torch = _import_torch()
    res = time_step(torch, a.method, a.r, a.out, a.inp, a.tokens, a.threads, min_reps=a.min_reps,
                    max_reps=a.max_reps, min_seconds=a.seconds, direct_grad=a.direct_grad)
    if a.csv:
        print(CSV_HEADER)
        print(csv_row(a.method, a.r, a.out, a.inp, a.tokens, a.threads, res, torch.__version__))
    else:
        print("%s %s r=%d %dx%d tokens=%d threads=%d (torch %s, OPENBLAS_NUM_THREADS=%s)" % (
            IMPL, a.method, a.r, a.out, a.inp, a.tokens, a.threads, torch.__version__,
            os.environ.get("OPENBLAS_NUM_THREADS")))
        print("  step  median %.3f ms  IQR [%.3f, %.3f]  n=%d%s" % (
            res["median_ms"], res["p25_ms"], res["p75_ms"], res["n"],
            "  (backward y.backward(G))" if a.direct_grad else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
