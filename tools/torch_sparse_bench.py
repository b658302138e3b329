#!/usr/bin/env python3
"""PyTorch's CPU dense and CSR weight products on the shapes of `sparsevlp bench sparse`.

Times Y = X·Wᵀ with W dense (`x @ w.T`) and with W as a torch CSR tensor
(`torch.sparse.mm(w_csr, x.T).T`, the CSR × dense product PyTorch offers on CPU), f32, with
the same thread count, over the same weights (768×768, 3072×768), token counts (8, 128,
512) and unstructured sparsities (0–98%) as sparsevlp's sweep. Speedups are against
PyTorch's own dense product measured in the same run, so they sit beside sparsevlp's CSR
speedups (against sparsevlp's dense kernel) in BENCHMARKS.md.

Usage (torch is not a dependency of sparsevlp; install it anywhere, e.g.
`pip install --target /tmp/pydeps torch` and set PYTHONPATH=/tmp/pydeps):

    python3 tools/torch_sparse_bench.py --threads 2 --out torch_sparse.csv
"""

import argparse
import csv
import statistics
import sys
import time

WEIGHTS = [(768, 768), (3072, 768)]
TOKENS = [8, 128, 512]
SPARSITIES = [0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98]


def median_ms(fn, budget_s):
    """Median latency of fn() in ms: two warm-up calls, then runs until the budget is
    spent (at least 5)."""
    fn()
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < budget_s and len(times) < 1000):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def random_sparse_weight(torch, rows, cols, sparsity, gen):
    """N(0, 1) weight with exactly round(sparsity · rows · cols) zeros at random places."""
    w = torch.randn(rows, cols, generator=gen)
    n = rows * cols
    drop = round(sparsity * n)
    if drop:
        idx = torch.randperm(n, generator=gen)[:drop]
        w.view(-1)[idx] = 0.0
    return w


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--budget-ms", type=float, default=250, help="time per case")
    ap.add_argument("--out", help="CSV file to write")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("torch is not installed: pip install torch (see the header of this script)")
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    budget = args.budget_ms / 1e3
    rows_out = []
    for rows, cols in WEIGHTS:
        for tokens in TOKENS:
            x = torch.randn(tokens, cols, generator=gen)
            xt = x.t().contiguous()
            dense_ms = None
            for sparsity in SPARSITIES:
                w = random_sparse_weight(torch, rows, cols, sparsity, gen)
                with torch.inference_mode():
                    if dense_ms is None:
                        dense_ms = median_ms(lambda: x @ w.t(), budget)
                        rows_out.append(("torch-dense", rows, cols, tokens, 0.0, dense_ms))
                    w_csr = w.to_sparse_csr()
                    ms = median_ms(lambda: torch.sparse.mm(w_csr, xt).t(), budget)
                rows_out.append(("torch-csr", rows, cols, tokens, sparsity, ms))
                print(
                    f"{rows}x{cols} t{tokens} s={sparsity:.2f}: dense {dense_ms:.3f} ms, "
                    f"csr {ms:.3f} ms ({dense_ms / ms:.2f}x)",
                    file=sys.stderr,
                )
    header = ["op", "format", "rows", "cols", "tokens", "sparsity", "device", "median_ms",
              "speedup_vs_dense", "torch", "threads"]
    dense_by_shape = {(r, c, t): ms for (f, r, c, t, s, ms) in rows_out if f == "torch-dense"}
    table = [
        ["forward", f, r, c, t, f"{s:.2f}", "cpu", f"{ms:.4f}",
         f"{dense_by_shape[(r, c, t)] / ms:.3f}", torch.__version__, args.threads]
        for (f, r, c, t, s, ms) in rows_out
    ]
    if args.out:
        with open(args.out, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(table)
    print("| shape | " + " | ".join(f"{round(s * 100)}%" for s in SPARSITIES) + " |")
    print("|---|" + "---:|" * len(SPARSITIES))
    for rows, cols in WEIGHTS:
        for tokens in TOKENS:
            cells = [
                row[8] + "×" for row in table
                if row[1] == "torch-csr" and (row[2], row[3], row[4]) == (rows, cols, tokens)
            ]
            print(f"| {rows}x{cols} t{tokens} CSR | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
