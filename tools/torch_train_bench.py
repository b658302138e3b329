#!/usr/bin/env python3
"""PyTorch peer of `sparsevlp bench train`: the same tiny VQA models, timed the same way.

Builds sparsevlp's `tiny-dual` (LXMERT-style) and `tiny-single` (ViLT-style) presets as
plain PyTorch modules written here (no Hugging Face code): hidden 64, 2 heads, FFN 256,
GELU, LayerNorm eps 1e-12, dropout 0.1 on embeddings, attention probabilities and sub-layer
outputs, the tanh pooler on token 0 and the LXMERT / ViLT answer head
(Linear(h, 2h) -> GELU -> LayerNorm(eps 1e-12) -> Linear(2h, A) for LXMERT,
Linear(h, 2h) -> LayerNorm(eps 1e-5) -> GELU -> Linear(2h, A) for ViLT).

- tiny-dual: 2 language layers, 1 visual layer, 1 cross-modality layer (one shared
  cross-attention for both directions, then self-attention and a feed-forward block per
  stream, all post-LN); inputs are 20 tokens and 16 regions x 18 features + 4 box coords.
- tiny-single: 2 pre-LN layers over [20 text tokens ; image CLS ; 16 patches of a 64x64
  image in 16-px patches] with modality-type embeddings and a final LayerNorm.

For each model it times (a) the forward in eval mode under torch.inference_mode() and
(b) one training step (train-mode forward with dropout, BCE with logits summed over answers
and averaged over the batch, backward, torch.optim.AdamW with its defaults) on one random
batch: two warm-up runs, then runs until --budget-ms has passed (at least 5), median and
minimum, as sparsevlp's bench timer does. Prints a table and writes JSON with --out.

Usage: python3 tools/torch_train_bench.py [--model tiny-dual,tiny-single] [--batch 64]
       [--answers 32] [--threads 2] [--budget-ms 5000] [--out FILE]
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

HIDDEN = 64
HEADS = 2
FFN = 256
LN_EPS = 1e-12
DROPOUT = 0.1
VOCAB = 1000
TEXT_LEN = 20


class Attention(nn.Module):
    """Multi-head attention: query from `x`, keys and values from `ctx`."""

    def __init__(self):
        super().__init__()
        self.q = nn.Linear(HIDDEN, HIDDEN)
        self.k = nn.Linear(HIDDEN, HIDDEN)
        self.v = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, x, ctx, mask):
        b, tq, _ = x.shape
        tk = ctx.shape[1]
        d = HIDDEN // HEADS

        def split(t, n):
            return t.view(b, n, HEADS, d).transpose(1, 2)

        q, k, v = split(self.q(x), tq), split(self.k(ctx), tk), split(self.v(ctx), tk)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=DROPOUT if self.training else 0.0
        )
        return out.transpose(1, 2).reshape(b, tq, HIDDEN)


class PostLnAttention(nn.Module):
    """BERT attention block: LN(x + dropout(W_o attn(x, ctx)))."""

    def __init__(self):
        super().__init__()
        self.attn = Attention()
        self.out = nn.Linear(HIDDEN, HIDDEN)
        self.drop = nn.Dropout(DROPOUT)
        self.norm = nn.LayerNorm(HIDDEN, eps=LN_EPS)

    def forward(self, x, ctx, mask):
        return self.norm(x + self.drop(self.out(self.attn(x, ctx, mask))))


class PostLnFfn(nn.Module):
    """BERT feed-forward block: LN(x + dropout(W_2 gelu(W_1 x)))."""

    def __init__(self):
        super().__init__()
        self.inter = nn.Linear(HIDDEN, FFN)
        self.out = nn.Linear(FFN, HIDDEN)
        self.drop = nn.Dropout(DROPOUT)
        self.norm = nn.LayerNorm(HIDDEN, eps=LN_EPS)

    def forward(self, x):
        return self.norm(x + self.drop(self.out(F.gelu(self.inter(x)))))


class BertLayer(nn.Module):
    """Post-LN transformer layer (LXMERT's language and visual encoders)."""

    def __init__(self):
        super().__init__()
        self.attention = PostLnAttention()
        self.ffn = PostLnFfn()

    def forward(self, x, mask):
        return self.ffn(self.attention(x, x, mask))


class CrossLayer(nn.Module):
    """LXMERT cross-modality layer: one cross-attention for both directions, then a
    self-attention and a feed-forward block per stream."""

    def __init__(self):
        super().__init__()
        self.cross = PostLnAttention()
        self.lang_self, self.visn_self = PostLnAttention(), PostLnAttention()
        self.lang_ffn, self.visn_ffn = PostLnFfn(), PostLnFfn()

    def forward(self, lang, visn, lang_mask, visn_mask):
        l2 = self.cross(lang, visn, visn_mask)
        v2 = self.cross(visn, lang, lang_mask)
        l2 = self.lang_ffn(self.lang_self(l2, l2, lang_mask))
        v2 = self.visn_ffn(self.visn_self(v2, v2, visn_mask))
        return l2, v2


class PreLnLayer(nn.Module):
    """ViLT layer: x + dropout(attn(LN x)), then x + dropout(W_2 gelu(W_1 LN x))."""

    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.attn = Attention()
        self.attn_out = nn.Linear(HIDDEN, HIDDEN)
        self.norm2 = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.inter = nn.Linear(HIDDEN, FFN)
        self.out = nn.Linear(FFN, HIDDEN)
        self.drop = nn.Dropout(DROPOUT)

    def forward(self, x, mask):
        h = self.norm1(x)
        x = x + self.drop(self.attn_out(self.attn(h, h, mask)))
        return x + self.drop(self.out(F.gelu(self.inter(self.norm2(x)))))


class TextEmbeddings(nn.Module):
    """Word + position + segment embeddings, LayerNorm, dropout."""

    def __init__(self, positions):
        super().__init__()
        self.word = nn.Embedding(VOCAB, HIDDEN)
        self.position = nn.Embedding(positions, HIDDEN)
        self.segment = nn.Embedding(2, HIDDEN)
        self.norm = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.drop = nn.Dropout(DROPOUT)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.word(ids) + self.position(pos)[None] + self.segment(torch.zeros_like(ids))
        return self.drop(self.norm(x))


class Pooler(nn.Module):
    """tanh(W x[:, 0])."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, x):
        return torch.tanh(self.dense(x[:, 0]))


class Head(nn.Module):
    """The VQA answer head in LXMERT's or ViLT's order."""

    def __init__(self, answers, lxmert):
        super().__init__()
        self.lxmert = lxmert
        self.dense = nn.Linear(HIDDEN, 2 * HIDDEN)
        self.norm = nn.LayerNorm(2 * HIDDEN, eps=1e-12 if lxmert else 1e-5)
        self.out = nn.Linear(2 * HIDDEN, answers)

    def forward(self, pooled):
        d = self.dense(pooled)
        h = self.norm(F.gelu(d)) if self.lxmert else F.gelu(self.norm(d))
        return self.out(h)


def additive_mask(keep):
    """[B, T] 1/0 keep mask -> [B, 1, 1, T] additive attention mask."""
    return ((1.0 - keep) * torch.finfo(keep.dtype).min)[:, None, None, :]


class TinyDual(nn.Module):
    """sparsevlp's tiny-dual preset (LXMERT-style)."""

    FEATS, REGIONS = 18, 16

    def __init__(self, answers):
        super().__init__()
        self.text = TextEmbeddings(64)
        self.visn_fc = nn.Linear(self.FEATS, HIDDEN)
        self.visn_norm = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.box_fc = nn.Linear(4, HIDDEN)
        self.box_norm = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.visn_drop = nn.Dropout(DROPOUT)
        self.lang_layers = nn.ModuleList(BertLayer() for _ in range(2))
        self.visn_layers = nn.ModuleList(BertLayer() for _ in range(1))
        self.cross_layers = nn.ModuleList(CrossLayer() for _ in range(1))
        self.pooler = Pooler()
        self.head = Head(answers, lxmert=True)

    def forward(self, ids, text_keep, feats, boxes, visn_keep):
        lang = self.text(ids)
        visn = (self.visn_norm(self.visn_fc(feats)) + self.box_norm(self.box_fc(boxes))) / 2
        visn = self.visn_drop(visn)
        lmask, vmask = additive_mask(text_keep), additive_mask(visn_keep)
        for layer in self.lang_layers:
            lang = layer(lang, lmask)
        for layer in self.visn_layers:
            visn = layer(visn, vmask)
        for layer in self.cross_layers:
            lang, visn = layer(lang, visn, lmask, vmask)
        return self.head(self.pooler(lang))

    @classmethod
    def inputs(cls, batch, gen):
        return (
            torch.randint(0, VOCAB, (batch, TEXT_LEN), generator=gen),
            torch.ones(batch, TEXT_LEN),
            torch.randn(batch, cls.REGIONS, cls.FEATS, generator=gen),
            torch.rand(batch, cls.REGIONS, 4, generator=gen),
            torch.ones(batch, cls.REGIONS),
        )


class TinySingle(nn.Module):
    """sparsevlp's tiny-single preset (ViLT-style)."""

    IMAGE, PATCH = 64, 16

    def __init__(self, answers):
        super().__init__()
        side = self.IMAGE // self.PATCH
        self.text = TextEmbeddings(40)
        self.patch = nn.Conv2d(3, HIDDEN, self.PATCH, stride=self.PATCH)
        self.cls = nn.Parameter(torch.zeros(1, 1, HIDDEN))
        self.position = nn.Parameter(torch.zeros(1, 1 + side * side, HIDDEN))
        self.modality = nn.Embedding(2, HIDDEN)
        self.image_drop = nn.Dropout(DROPOUT)
        self.layers = nn.ModuleList(PreLnLayer() for _ in range(2))
        self.norm = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.pooler = Pooler()
        self.head = Head(answers, lxmert=False)

    def forward(self, ids, text_keep, pixels):
        b = ids.shape[0]
        text = self.text(ids) + self.modality.weight[0]
        patches = self.patch(pixels).flatten(2).transpose(1, 2)
        image = torch.cat([self.cls.expand(b, -1, -1), patches], 1) + self.position
        image = self.image_drop(image) + self.modality.weight[1]
        x = torch.cat([text, image], 1)
        keep = torch.cat([text_keep, torch.ones(b, image.shape[1])], 1)
        mask = additive_mask(keep)
        for layer in self.layers:
            x = layer(x, mask)
        return self.head(self.pooler(self.norm(x)))

    @classmethod
    def inputs(cls, batch, gen):
        return (
            torch.randint(0, VOCAB, (batch, TEXT_LEN), generator=gen),
            torch.ones(batch, TEXT_LEN),
            torch.randn(batch, 3, cls.IMAGE, cls.IMAGE, generator=gen),
        )


MODELS = {"tiny-dual": TinyDual, "tiny-single": TinySingle}


def measure(budget_s, fn):
    """Two warm-up calls, then runs until `budget_s` has passed (at least 5, at most
    1000): (median, min, reps) in seconds."""
    fn()
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < budget_s and len(times) < 1000):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), len(times)


def bench(name, batch, answers, budget_s, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = MODELS[name](answers)
    inputs = MODELS[name].inputs(batch, gen)
    targets = torch.rand(batch, answers, generator=gen)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters())

    def eval_forward():
        model.eval()
        with torch.inference_mode():
            model(*inputs)

    def train_step():
        model.train()
        opt.zero_grad(set_to_none=True)
        logits = model(*inputs)
        loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / batch
        loss.backward()
        opt.step()
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"{name}: the loss became {loss.item()}")

    rows = []
    for phase, fn in (("eval forward", eval_forward), ("train step", train_step)):
        median, fastest, reps = measure(budget_s, fn)
        rows.append(
            {
                "model": name,
                "phase": phase,
                "batch": batch,
                "params": params,
                "median_s": median,
                "min_s": fastest,
                "reps": reps,
                "samples_per_s": batch / median,
            }
        )
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="tiny-dual,tiny-single",
                    help="comma-separated: tiny-dual, tiny-single")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--answers", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget-ms", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", help="write the rows as JSON to this file")
    args = ap.parse_args()
    names = [n.strip() for n in args.model.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or args.batch < 1 or args.answers < 1 or args.threads < 1:
        sys.exit(f"bad arguments: unknown models {unknown} or a size below 1 "
                 f"(models: {', '.join(MODELS)})")
    torch.set_num_threads(args.threads)
    rows = []
    for name in names:
        rows += bench(name, args.batch, args.answers, args.budget_ms / 1e3, args.seed)
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, f32, "
          f"batch {args.batch}, {TEXT_LEN} text tokens, {args.answers} answers")
    header = ["model", "phase", "batch", "params", "median ms", "min ms", "samples/s"]
    cells = [[r["model"], r["phase"], str(r["batch"]), str(r["params"]),
              f"{r['median_s'] * 1e3:.2f}", f"{r['min_s'] * 1e3:.2f}",
              f"{r['samples_per_s']:.1f}"] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    for line in [header] + cells:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths)))
    if args.out:
        meta = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                "text_len": TEXT_LEN, "answers": args.answers}
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
