#!/usr/bin/env python3
"""Fixtures for the .pt2/.pt parity test (tests/exported/test_parity.py, issue 25 item 4): one eager model
saved twice, scripted (or traced, for Hugging Face models) as model.pt and exported with torch.export.export
+ torch.export.save as model.pt2, with its calibration batches as calib.pt. qreport analyze must give the
same report on both.
Usage: make_exported_parity.py OUT_DIR NAME...   (exit 77 when this PyTorch has no torch.export.save, or a
Hugging Face model is asked for and transformers is missing)"""
import os
import sys
import warnings

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

if not hasattr(torch, "export") or not hasattr(torch.export, "save"):
    print(f"skipped: PyTorch {torch.__version__} has no torch.export.save")
    sys.exit(77)

import fixtures  # noqa: E402
import transformer_fixtures  # noqa: E402


def encoder():
    """A TransformerEncoder, sequence first (its layers never take the fused fast path)."""
    model, batches, _ = transformer_fixtures.encoder_seq_first()
    return model, batches


def hf(name):
    def build():
        model, batches, _ = transformer_fixtures.HF_FEATURES[name]()
        return model, batches
    return build


def fused(name):
    """The parity fixture's fuse_fx model. fuse_fx keeps each FX node's nn_module_stack from tracing the
    model before fusion (`conv` a Conv1d, no `conv.0`/`conv.1`), and torch.export keeps metadata it finds on
    a GraphModule's nodes, so the program would name modules that no longer exist. Dropped, export records
    the fused modules (`conv` a ConvReLU1d calling `conv.0` and `conv.1`), as for any eager model."""
    gm, batches = fixtures.fused(name)
    for node in gm.graph.nodes:
        node.meta.pop("nn_module_stack", None)
    gm.recompile()
    return gm, batches


class TiedEmbedding(torch.nn.Module):
    """A language-model head tied to its embedding. torch.export gives tied parameters one placeholder,
    named after the later one in named_parameters(), that both the embedding and the head's linear read:
    quantizing the head must not quantize the embedding (the scripted head swaps its own `weight`
    attribute alone), and with the head first (head_first) the linear reads `emb.weight` and must still
    be the head's own call."""

    def __init__(self, head_first, vocab=96, width=48):
        super().__init__()
        if head_first:
            self.head = torch.nn.Linear(width, vocab, bias=False)
        self.emb = torch.nn.Embedding(vocab, width)
        self.mid = torch.nn.Linear(width, width)
        if head_first:
            self.emb.weight = self.head.weight
        else:  # GPT-2's order: lm_head.weight = wte.weight
            self.head = torch.nn.Linear(width, vocab, bias=False)
            self.head.weight = self.emb.weight

    def forward(self, ids):
        h = self.emb(ids)
        return self.head(torch.relu(self.mid(h)) + h)


def tied(head_first):
    def build():
        torch.manual_seed(0)
        model = TiedEmbedding(head_first)
        return model, [(torch.randint(0, 96, (2, 16)),) for _ in range(4)]
    return build


MODELS = {name: (lambda n=name: fused(n)) for name in fixtures.PARITY}
MODELS.update({"encoder": encoder, "hf_bert": hf("hf_bert"), "hf_llama": hf("hf_llama"),
               "tied_embedding": tied(False), "tied_head_first": tied(True)})


def main():
    out, names = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(1)
    for name in names:
        if name.startswith("hf_"):
            try:
                import transformers  # noqa: F401
            except ImportError:
                print(f"skipped: {sys.executable} has no transformers")
                sys.exit(77)
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        model, batches = MODELS[name]()
        model.eval()
        if name.startswith("hf_"):
            with torch.no_grad():
                scripted = torch.jit.trace(model, batches[0], strict=False, check_trace=False)
        else:
            scripted = fixtures.script(model)
        torch.jit.save(scripted, os.path.join(d, "model.pt"))
        # Every batch has the first one's shapes here; a dynamic batch dimension is tested in tests/exported.
        assert all(tuple(t.shape for t in b) == tuple(t.shape for t in batches[0]) for b in batches)
        ep = torch.export.export(model, tuple(batches[0]))
        torch.export.save(ep, os.path.join(d, "model.pt2"))
        items = [b[0] if len(b) == 1 else tuple(b) for b in batches]
        torch.save(items, os.path.join(d, "calib.pt"))
        print("fixture", name, "->", d)


if __name__ == "__main__":
    main()
