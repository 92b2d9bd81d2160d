# SPDX-License-Identifier: MIT
"""What tests/cli_programs.sh runs plainly and under `farpool run`.

matmul.py make FILE ROWS COLS SEED: write a ROWS x COLS float32 weight matrix
    (standard normal, numpy's seeded generator) to FILE.
matmul.py run FILE ROWS COLS SEED: np.memmap FILE read-only, torch.from_numpy
    of it (no copy: the tensor's data is the mapping), y = x @ W.T with a
    seeded 8 x COLS input on one thread; print the SHA-256 of y's bytes, the
    sum of y and of W.

torch.from_numpy of a read-only array warns that writing to the tensor would
be undefined; the tensor is only read here, so that one warning is silenced
rather than the matrix copied into writable memory.
"""
import hashlib
import sys
import warnings

import numpy as np


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    rows, cols, seed = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    if cmd == "make":
        rng = np.random.default_rng(seed)
        rng.standard_normal((rows, cols), dtype=np.float32).tofile(path)
        return 0
    import torch

    torch.set_num_threads(1)  # one summation order, whatever the load
    m = np.memmap(path, dtype=np.float32, mode="r", shape=(rows, cols))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        w = torch.from_numpy(m)
    if w.data_ptr() != m.ctypes.data:
        print("matmul.py: torch copied the matrix", file=sys.stderr)
        return 1
    rng = np.random.default_rng(seed + 1)
    x = torch.from_numpy(rng.standard_normal((8, cols), dtype=np.float32))
    y = x @ w.T
    print("y", tuple(y.shape), hashlib.sha256(y.numpy().tobytes()).hexdigest())
    print("sum y %.17g W %.17g" % (float(y.double().sum()), float(w.double().sum())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
