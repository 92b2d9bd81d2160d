#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A Mixture-of-Experts server in plain NumPy, knowing nothing of farpool.

  moe_serve.py make PATH [--size 2G] [--seed S] [--layers L] [--d-model D] [--d-ff F]
  moe_serve.py serve PATH [--tokens N] [--top-k K] [--seed S] [--prefetch on|off] [--json]
                          [--api REGION [--pool URL] [--cache SIZE] [--readahead on|off] [--prefault] [--stats]]

The model file: a 4096-byte header (JSON, space-padded: magic "farpool-moe-1",
layers, experts, d_model, d_ff, dtype, offset), then every expert of every
layer, each an up matrix d_model x d_ff and a down matrix d_ff x d_model of
float32, contiguous per expert (expert e of layer l is the (l*experts+e)-th).

serve reads the header with open()/read(), maps the weights with np.memmap
and, for every token, routes it (a seeded pick of top-k experts per layer),
then for each chosen expert computes relu(x @ up) @ down, the outputs mixed by
the router's weights, the hidden state carried from layer to layer and token
to token (RMS-normalised). Routing is known one token ahead, so the next
token's experts are hinted with madvise(MADV_WILLNEED) while this token's are
computed. It prints the tokens per second and a BLAKE2b hash of the final
hidden state of every token: the same for the same model, seed, tokens, top-k.

Under `farpool run --map` the mapping is served from the pool by the preload
shim with no change here. --api REGION instead maps the pool region REGION
with libfarpool.so through ctypes (the same program linked to the API):
WILLNEED becomes farpool_prefetch(), and the output is the same.
"""
import argparse
import ctypes
import ctypes.util
import hashlib
import json
import mmap
import os
import sys
import time

import numpy as np

MAGIC = "farpool-moe-1"
HEADER = 4096
PAGE = mmap.PAGESIZE


def parse_size(text):
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    if not t or t[-1].isdigit():
        num, unit = t, ""
    else:
        num, unit = t[:-1], t[-1]
    if unit not in units or not num.isdigit():
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 512M, 2G)")
    return int(num) * units[unit]


def make(args):
    per_expert = 2 * args.d_model * args.d_ff * 4
    experts = args.size // (per_expert * args.layers)
    if experts < 2:
        sys.exit(f"moe_serve: --size {args.size} holds fewer than 2 experts per layer "
                 f"of {per_expert >> 20} MiB over {args.layers} layers")
    head = {"magic": MAGIC, "layers": args.layers, "experts": experts,
            "d_model": args.d_model, "d_ff": args.d_ff, "dtype": "float32",
            "offset": HEADER, "seed": args.seed}
    text = json.dumps(head).encode()
    total = args.layers * experts * per_expert
    rng = np.random.default_rng(args.seed)
    # Uniform int8 values scaled to float32: variance about 1/fan_in, so that
    # activations neither vanish nor grow; int8 bytes are the fastest draw.
    scale = np.float32((3.0 / max(args.d_model, args.d_ff)) ** 0.5 / 128.0)
    chunk = 32 << 20  # bytes of float32 per write
    tty = sys.stderr.isatty()
    t0 = time.perf_counter()
    with open(args.path, "wb") as f:
        f.write(text.ljust(HEADER, b" "))
        done = 0
        while done < total:
            n = min(chunk, total - done) // 4
            w = np.frombuffer(rng.bytes(n), dtype=np.int8).astype(np.float32)
            w *= scale
            f.write(w.tobytes())
            done += n * 4
            if tty:
                print(f"\rmoe_serve: writing {done >> 20}/{total >> 20} MiB", end="",
                      file=sys.stderr, flush=True)
    if tty:
        print(file=sys.stderr)
    dt = time.perf_counter() - t0
    print(f"wrote {args.path}: {args.layers} layers x {experts} experts of "
          f"{per_expert >> 20} MiB (d_model {args.d_model}, d_ff {args.d_ff}), "
          f"{(total + HEADER) / 2**30:.2f} GiB, seed {args.seed}, in {dt:.1f} s")


def parse_header(raw):
    try:
        head = json.loads(raw.decode().strip())
    except (UnicodeDecodeError, ValueError):
        head = None
    if not isinstance(head, dict) or head.get("magic") != MAGIC:
        sys.exit(f"moe_serve: not a {MAGIC} model (no such header)")
    if head.get("dtype") != "float32" or head.get("offset") != HEADER:
        sys.exit("moe_serve: unsupported model: dtype float32 and offset 4096 only")
    for k in ("layers", "experts", "d_model", "d_ff"):
        if not isinstance(head.get(k), int) or head[k] < 1:
            sys.exit(f"moe_serve: bad header field {k}: {head.get(k)!r}")
    return head


class Api:
    """The pool region mapped with libfarpool.so (include/farpool/farpool.h)."""

    class Params(ctypes.Structure):  # farpool_context_params_t
        _fields_ = [("field_mask", ctypes.c_uint64), ("nodes", ctypes.c_void_p),
                    ("nnodes", ctypes.c_size_t), ("secret_file", ctypes.c_char_p),
                    ("cache_bytes", ctypes.c_uint64), ("timeout_ms", ctypes.c_int),
                    ("readahead", ctypes.c_int), ("prefault", ctypes.c_int),
                    ("log_level", ctypes.c_int), ("log_func", ctypes.c_void_p),
                    ("log_arg", ctypes.c_void_p), ("pool", ctypes.c_char_p)]

    STATS = ("faults minor_faults wp_faults blocks_fetched bytes_in bytes_out evictions "
             "writebacks fetch_errors cache_bytes cache_peak fetch_p50_ns fetch_p99_ns "
             "fetch_max_ns prefetch_issued prefetch_used prefetch_wasted prefetch_late "
             "prefetch_hinted").split()
    PARAM_CACHE_BYTES, PARAM_READAHEAD, PARAM_PREFAULT, PARAM_POOL, READONLY = (
        1 << 2, 1 << 4, 1 << 5, 1 << 7, 1)

    def __init__(self, region, pool, cache, readahead, prefault=False):
        self.lib = lib = ctypes.CDLL(self.find_lib())
        for fn in ("farpool_context_create", "farpool_region_open", "farpool_map",
                   "farpool_prefetch"):
            getattr(lib, fn).restype = ctypes.c_int
        lib.farpool_region_size.restype = ctypes.c_uint64
        lib.farpool_region_size.argtypes = [ctypes.c_void_p]
        lib.farpool_prefetch.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        lib.farpool_status_string.restype = ctypes.c_char_p
        lib.farpool_region_close.argtypes = [ctypes.c_void_p]
        lib.farpool_context_destroy.argtypes = [ctypes.c_void_p]
        p = self.Params()
        pool = pool or os.environ.get("FARPOOL_POOL")
        if not pool:
            sys.exit("moe_serve: --api needs the pool: --pool URL or $FARPOOL_POOL")
        p.field_mask, p.pool = self.PARAM_POOL, pool.encode()
        if cache:
            p.field_mask |= self.PARAM_CACHE_BYTES
            p.cache_bytes = cache
        if readahead:
            p.field_mask |= self.PARAM_READAHEAD
            p.readahead = int(readahead == "on")
        if prefault:
            p.field_mask |= self.PARAM_PREFAULT
            p.prefault = 1
        self.ctx, self.region, addr = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
        self.check("farpool_context_create", lib.farpool_context_create(
            ctypes.byref(p), ctypes.byref(self.ctx)))
        self.check("farpool_region_open", lib.farpool_region_open(
            self.ctx, region.encode(), self.READONLY, ctypes.byref(self.region)))
        self.check("farpool_map", lib.farpool_map(self.region, ctypes.byref(addr)))
        self.base, self.size = addr.value, lib.farpool_region_size(self.region)
        self.buf = (ctypes.c_char * self.size).from_address(self.base)

    @staticmethod
    def find_lib():
        """$FARPOOL_LIB, else the build tree beside this file, else the installed one."""
        path = os.environ.get("FARPOOL_LIB")
        if path:
            if not os.path.exists(path):
                sys.exit(f"moe_serve: $FARPOOL_LIB: no such file: {path}")
            return path
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, "..", "build", "libfarpool.so")
        if os.path.exists(path):
            return path
        path = ctypes.util.find_library("farpool")
        if not path:
            sys.exit("moe_serve: libfarpool.so not found: set $FARPOOL_LIB")
        return path

    def check(self, what, rc):
        if rc != 0:
            sys.exit(f"moe_serve: {what}: {self.lib.farpool_status_string(rc).decode()}")

    def prefetch(self, off, length):
        self.check("farpool_prefetch", self.lib.farpool_prefetch(self.region, self.base + off,
                                                                 length))

    def stats(self):
        """The region's farpool_stats_t, on one line (as `farpool run --stats` prints it)."""
        st = (ctypes.c_uint64 * len(self.STATS))()
        self.check("farpool_region_stats", self.lib.farpool_region_stats(
            self.region, st, ctypes.sizeof(st)))
        return ", ".join(f"{k} {v}" for k, v in zip(self.STATS, st))

    def close(self):
        self.lib.farpool_region_close(self.region)
        self.lib.farpool_context_destroy(self.ctx)


def route(seed, token, layers, experts, k):
    """The experts (layers x k) of a token and their mixing weights: seeded only."""
    rng = np.random.default_rng([seed, token])
    picks = np.empty((layers, k), dtype=np.int64)
    gates = np.empty((layers, k), dtype=np.float32)
    for layer in range(layers):
        picks[layer] = rng.choice(experts, size=k, replace=False)
        logits = rng.standard_normal(k)
        g = np.exp(logits - logits.max())
        gates[layer] = g / g.sum()
    return picks, gates


def serve(args):
    api = None
    if args.api:
        api = Api(args.api, args.pool, args.cache, args.readahead, args.prefault)
        head = parse_header(bytes(api.buf[:HEADER]))
    else:
        with open(args.path, "rb") as f:
            head = parse_header(f.read(HEADER))
    L, E, D, F = head["layers"], head["experts"], head["d_model"], head["d_ff"]
    k = args.top_k
    if not 1 <= k <= E:
        sys.exit(f"moe_serve: --top-k must be 1..{E}")
    per_expert = 2 * D * F * 4
    shape = (L, E, 2 * D * F)
    need = HEADER + L * E * per_expert
    if api:
        if api.size < need:
            sys.exit(f"moe_serve: region {args.api} holds {api.size} bytes, the model {need}")
        w = np.frombuffer(api.buf, dtype=np.float32, count=L * E * 2 * D * F,
                          offset=HEADER).reshape(shape)

        def hint(off, length):
            api.prefetch(off, length)
    else:
        if os.path.getsize(args.path) < need:
            sys.exit(f"moe_serve: {args.path} is shorter than its header says ({need} bytes)")
        w = np.memmap(args.path, dtype=np.float32, mode="r", offset=HEADER, shape=shape)
        # The mmap starts at the header's offset rounded down to the mmap
        # granularity; madvise wants page-aligned offsets within it.
        mm, mm_start = w._mmap, HEADER - HEADER % mmap.ALLOCATIONGRANULARITY

        def hint(off, length):
            start = (off - mm_start) // PAGE * PAGE
            end = min(off - mm_start + length, len(mm))
            mm.madvise(mmap.MADV_WILLNEED, start, end - start)

    def prefetch(picks):
        if args.prefetch == "on":
            for layer in range(L):
                for e in picks[layer]:
                    hint(HEADER + (layer * E + int(e)) * per_expert, per_expert)

    x = np.random.default_rng([args.seed, 1 << 30]).standard_normal(D).astype(np.float32)
    digest = hashlib.blake2b(digest_size=16)
    nxt = route(args.seed, 0, L, E, k)
    prefetch(nxt[0])
    t0 = time.perf_counter()
    for t in range(args.tokens):
        picks, gates = nxt
        if t + 1 < args.tokens:  # the next token's experts load while this one computes
            nxt = route(args.seed, t + 1, L, E, k)
            prefetch(nxt[0])
        emb = np.random.default_rng([args.seed, t, 1 << 31]).standard_normal(D)
        x = x + emb.astype(np.float32)
        for layer in range(L):
            y = np.zeros(D, dtype=np.float32)
            for e, g in zip(picks[layer], gates[layer]):
                m = w[layer, int(e)]
                up, down = m[:D * F].reshape(D, F), m[D * F:].reshape(F, D)
                h = np.maximum(x @ up, np.float32(0))
                y += g * (h @ down)
            x = x + y
            x = x / np.float32(np.sqrt(np.mean(x.astype(np.float64) ** 2) + 1e-6))
        digest.update(x.tobytes())
    dt = time.perf_counter() - t0
    rate = args.tokens / dt if dt > 0 else 0.0
    out = digest.hexdigest()
    if args.json:
        print(json.dumps({"tokens": args.tokens, "seconds": round(dt, 4),
                          "tokens_per_s": round(rate, 3), "output": out,
                          "expert_bytes_per_token": L * k * per_expert}))
    else:
        print(f"tokens {args.tokens}  seconds {dt:.3f}  tokens/s {rate:.2f}  output {out}")
    sys.stdout.flush()
    if api:
        if args.stats:
            print(f"moe_serve: stats: region {args.api}: {api.stats()}", file=sys.stderr)
        del w, m, up, down
        api.buf = None
        api.close()


def main():
    ap = argparse.ArgumentParser(description="A Mixture-of-Experts server in NumPy.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="write a synthetic model")
    mk.add_argument("path")
    mk.add_argument("--size", type=parse_size, default=parse_size("2G"),
                    help="about this many bytes of experts (default 2G)")
    mk.add_argument("--seed", type=int, default=1)
    mk.add_argument("--layers", type=int, default=8)
    mk.add_argument("--d-model", type=int, default=1024)
    mk.add_argument("--d-ff", type=int, default=1024)
    sv = sub.add_parser("serve", help="generate tokens")
    sv.add_argument("path")
    sv.add_argument("--tokens", type=int, default=32)
    sv.add_argument("--top-k", type=int, default=2)
    sv.add_argument("--seed", type=int, default=1)
    sv.add_argument("--prefetch", choices=("on", "off"), default="on")
    sv.add_argument("--json", action="store_true")
    sv.add_argument("--api", metavar="REGION", help="map pool region REGION with libfarpool")
    sv.add_argument("--pool", help="with --api: the pool (default $FARPOOL_POOL)")
    sv.add_argument("--cache", type=parse_size, help="with --api: the cache budget")
    sv.add_argument("--readahead", choices=("on", "off"),
                    help="with --api: the automatic prefetcher (default: the library's, on)")
    sv.add_argument("--prefault", action="store_true",
                    help="with --api: take the cache's memory at map time (2M granule)")
    sv.add_argument("--stats", action="store_true",
                    help="with --api: the region's counters on stderr at the end")
    args = ap.parse_args()
    if args.cmd == "make" and min(args.layers, args.d_model, args.d_ff) < 1:
        ap.error("--layers, --d-model and --d-ff must be positive")
    if args.cmd == "serve" and args.tokens < 1:
        ap.error("--tokens must be at least 1")
    try:
        make(args) if args.cmd == "make" else serve(args)
    except OSError as e:
        sys.exit(f"moe_serve: {e.filename or args.path}: {e.strerror or e}")


if __name__ == "__main__":
    main()
