#!/usr/bin/env python3
"""Writes the Hugging Face parity fixtures of sparsevlp (tests/fixtures/hf/).

Builds tiny random `LxmertForQuestionAnswering` and `ViltForQuestionAnswering` models with
the `transformers` package, saves each as a checkpoint directory (`config.json` +
`model.safetensors`, exactly as `save_pretrained` writes them), and beside it one or more
input cases: `<case>.inputs.safetensors` (the tensors the model's `forward` takes, named
as in transformers) and `<case>.logits.safetensors` (the answer logits under `logits`,
computed in eval mode in float32). tests/hf_parity.rs runs sparsevlp on the same inputs
and requires a max relative error of at most 1e-4. The fixtures are committed: the tests
and CI need no Python.

Cases: LXMERT with padded text, without and with a visual attention mask; ViLT (32x32
config images in 8x8 patches) on square 32x32 images (one with padded pixels), and on
non-square 48x32 images, where ViLT interpolates its 4x4 patch position table to the 6x4
patch grid (and to 6x3 for the second image, padded from 48x24).

Regenerate (nothing is installed inside the repository):

    python3 -m venv /tmp/hfvenv
    /tmp/hfvenv/bin/pip install torch transformers safetensors
    /tmp/hfvenv/bin/python tools/hf_parity_fixtures.py [--out tests/fixtures/hf]

Weights are redrawn from a fixed seed with a larger spread than the transformers
initialiser (so every layer matters to the logits); different torch versions may draw
different numbers, which is fine: the fixtures are self-consistent.
"""

import argparse
import os

import torch
from safetensors.torch import save_file
from transformers import (
    LxmertConfig,
    LxmertForQuestionAnswering,
    ViltConfig,
    ViltForQuestionAnswering,
)

SEED = 20261122


def randomise(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Redraws every parameter so that the output depends on every weight: LayerNorm
    scales 1 + N(0, 0.1), other vectors (biases, LayerNorm shifts) N(0, 0.1), matrices,
    convolution kernels and tables N(0, 0.15)."""
    with torch.no_grad():
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                noise = torch.randn(p.shape, generator=generator)
                if isinstance(module, torch.nn.LayerNorm) and name == "weight":
                    p.copy_(1.0 + 0.1 * noise)
                elif p.dim() == 1:
                    p.copy_(0.1 * noise)
                else:
                    p.copy_(0.15 * noise)


def text_inputs(generator, batch, length, vocab, lengths):
    """Word ids, a right-padded attention mask with the given lengths, and segments."""
    input_ids = torch.randint(1, vocab, (batch, length), generator=generator)
    attention_mask = torch.zeros(batch, length, dtype=torch.long)
    for row, n in enumerate(lengths):
        attention_mask[row, :n] = 1
    token_type_ids = torch.randint(0, 2, (batch, length), generator=generator)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
    }


def save_case(out_dir, case, model, inputs):
    """Runs `model` on `inputs` and writes the inputs and the logits of one case."""
    with torch.no_grad():
        output = model(**inputs)
    # ViLT names its answer scores `logits`, LXMERT `question_answering_score`.
    logits = getattr(output, "logits", None)
    if logits is None:
        logits = output.question_answering_score
    save_file({k: v.contiguous() for k, v in inputs.items()},
              os.path.join(out_dir, f"{case}.inputs.safetensors"))
    save_file({"logits": logits.float().contiguous()},
              os.path.join(out_dir, f"{case}.logits.safetensors"))
    print(f"{out_dir}/{case}: logits {tuple(logits.shape)}, |logits| max {logits.abs().max():.3f}")


def save_model(model, out_dir):
    """Saves a checkpoint directory as transformers writes it (safetensors)."""
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)


def lxmert(out_dir, generator):
    config = LxmertConfig(
        vocab_size=97,
        hidden_size=32,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=16,
        l_layers=2,
        r_layers=1,
        x_layers=2,
        visual_feat_dim=20,
        visual_pos_dim=4,
        num_qa_labels=7,
    )
    model = LxmertForQuestionAnswering(config).eval()
    randomise(model, generator)
    save_model(model, out_dir)
    batch, regions = 3, 5
    inputs = text_inputs(generator, batch, 9, config.vocab_size, [9, 6, 3])
    inputs["visual_feats"] = torch.randn(batch, regions, config.visual_feat_dim, generator=generator)
    inputs["visual_pos"] = torch.rand(batch, regions, 4, generator=generator)
    save_case(out_dir, "plain", model, inputs)
    visual_mask = torch.ones(batch, regions, dtype=torch.long)
    visual_mask[1, 3:] = 0
    visual_mask[2, 1:] = 0
    inputs["visual_attention_mask"] = visual_mask
    save_case(out_dir, "visual_mask", model, inputs)


def vilt(out_dir, generator):
    config = ViltConfig(
        vocab_size=97,
        hidden_size=32,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=12,
        num_hidden_layers=2,
        image_size=32,
        patch_size=8,
        num_channels=3,
        num_labels=6,
        max_image_length=-1,
    )
    model = ViltForQuestionAnswering(config).eval()
    randomise(model, generator)
    save_model(model, out_dir)
    for case, (height, width), valid in [
        # Second image: its bottom 8 pixel rows are padding (a 3x4 patch extent).
        ("square", (32, 32), [(32, 32), (24, 32)]),
        # Non-square: a 6x4 patch grid; second image 48x24 padded to 48x32 (6x3).
        ("non_square", (48, 32), [(48, 32), (48, 24)]),
    ]:
        batch = len(valid)
        inputs = text_inputs(generator, batch, 7, config.vocab_size, [7, 4])
        inputs["pixel_values"] = torch.randn(batch, 3, height, width, generator=generator)
        pixel_mask = torch.zeros(batch, height, width, dtype=torch.long)
        for row, (h, w) in enumerate(valid):
            pixel_mask[row, :h, :w] = 1
        inputs["pixel_values"] = inputs["pixel_values"] * pixel_mask[:, None]
        inputs["pixel_mask"] = pixel_mask
        save_case(out_dir, case, model, inputs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("tests", "fixtures", "hf"))
    args = parser.parse_args()
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    lxmert(os.path.join(args.out, "lxmert"), generator)
    vilt(os.path.join(args.out, "vilt"), generator)


if __name__ == "__main__":
    main()
