#!/usr/bin/python3
"""Writes small scripted TorchScript models and calibration archives for the model, calibration,
instrumentation and CLI tests. Usage: /usr/bin/python3 data/make_graph_fixtures.py OUTDIR"""
import os
import sys
import warnings
from typing import Dict, List, Tuple

warnings.filterwarnings("ignore")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


class SharedClass(nn.Module):  # two instances of one class share one TorchScript method graph
    def __init__(self):
        super().__init__()
        self.b0 = Block()
        self.b1 = Block()

    def forward(self, x):
        return self.b1(self.b0(x))


class CalledTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.fc(self.act(x)))


class WithModuleList(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(3, 3) for _ in range(3)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Branches(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.pos = nn.Linear(3, 3)
        self.neg = nn.Linear(3, 3)

    def forward(self, x):
        if bool(x.sum() > 0):
            y = self.fc(self.pos(x))
        else:
            y = self.fc(self.neg(x))
        return y


class NeverCalled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.unused = nn.Linear(3, 3)

    def forward(self, x):
        return self.fc(x)


class TwoInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 4)
        self.b = nn.Linear(3, 4)

    def forward(self, x, y, scale: float = 1.0):
        return self.a(x) * scale + self.b(y)


class ConvRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


class Failing(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        if bool(x.sum() > 1000):
            raise RuntimeError("input too large")
        return self.fc(x)


class TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        y = self.fc(x)
        return y, y * 2


class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.fc = nn.Linear(4, 2)

    def forward(self, ids):
        return self.fc(self.emb(ids))


class DictOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x) -> Dict[str, torch.Tensor]:
        return {"logits": self.fc(x), "input": x}


class Slow(nn.Module):
    """Enough work per batch (a few ms) for the SIGINT test to interrupt calibration midway."""
    def __init__(self):
        super().__init__()
        self.convs = nn.Sequential(*[nn.Conv2d(16, 16, 3, padding=1) for _ in range(4)])

    def forward(self, x):
        return self.convs(x)


class FunctionalLinear(nn.Module):
    """A user's F.linear(x, self.proj.weight): proj is never called, its weight is applied directly."""
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3, 4)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(torch.nn.functional.linear(x, self.proj.weight, self.proj.bias))


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True)
        self.gru = nn.GRU(4, 2)

    def forward(self, x):
        y, _ = self.lstm(x)
        z, _ = self.gru(y)
        return z


class Attention(nn.Module):
    """batch_first attention: takes aten::_native_multi_head_attention without grad."""
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        return self.drop(self.attn(x, x, x, need_weights=False)[0])


class Layouts(nn.Module):
    """Weightless modules whose input layout only the graph tells: after a conv, before a Linear, neither."""
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 3, 1)
        self.after_conv = nn.ReLU()
        self.before_linear = nn.Dropout(0.1)
        self.fc = nn.Linear(5, 2)
        self.unknown = nn.Identity()

    def forward(self, x, t, u):
        y = self.after_conv(torch.relu(self.conv(x)))
        return y.sum() + self.fc(self.before_linear(t * 2.0)).sum() + self.unknown(u).sum()


class PairNorm(nn.Module):
    """Returns (scaled, input) as Hugging Face's LlamaRMSNorm does once traced: a tuple-returning module."""
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(5))

    def forward(self, x) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.weight * x, x


class TupleLayouts(nn.Module):
    """first's input: consumed (through first's tuple) by fc; third's: produced (through second's) by fc;
    fourth's: produced by an Embedding (Llama's final norm: only the token embedding tells)."""
    def __init__(self):
        super().__init__()
        self.first, self.second, self.third, self.fourth = PairNorm(), PairNorm(), PairNorm(), PairNorm()
        self.fc = nn.Linear(5, 5)
        self.embed = nn.Embedding(10, 5)

    def forward(self, x, ids):
        a, _ = self.first(x)
        b, s = self.second(self.fc(a))
        c, _ = self.third(s)
        e, _ = self.fourth(self.embed(ids))
        return (b + c).sum() + e.sum()


@torch.jit.interface
class BlockIface(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pass


class IfaceBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)) * 10.0)


class WithInterface(nn.Module):
    """blk is typed by a module interface: its calls are dynamic dispatch in the graph."""
    blk: BlockIface

    def __init__(self):
        super().__init__()
        self.blk = IfaceBlock()

    def forward(self, x):
        return self.blk(x)


class Forked(nn.Module):
    """Calls run through torch.jit.fork: a submodule, and every member of a ModuleList."""
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])

    def forward(self, x):
        fut = torch.jit.fork(self.a, x)
        futs: List[torch.jit.Future[torch.Tensor]] = []
        for layer in self.layers:
            futs.append(torch.jit.fork(layer, x * 2.0))
        y = torch.jit.wait(fut)
        for f in futs:
            y = y + torch.jit.wait(f)
        return y


class MyLinear(nn.Linear):
    """A user's Linear subclass: PyTorch's isinstance rules take it, the exact-type rule does not."""
    def forward(self, x):
        return torch.nn.functional.linear(x, self.weight, self.bias) * 2.0


class MyConv(nn.Conv2d):
    pass


class Subclasses(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = MyConv(2, 3, 1)
        self.lin = MyLinear(3, 2)
        self.up = nn.ConvTranspose2d(3, 3, 1)  # not a Conv2d subclass

    def forward(self, x):
        return self.lin(self.up(self.conv(x)).mean((2, 3)))


def hook_inputs(model, x, names):
    """The inputs of the named modules' calls, by forward pre-hooks on the eager model, in name order."""
    seen = {}
    mods = dict(model.named_modules())
    hooks = [mods[n].register_forward_pre_hook(lambda m, inp, n=n: seen.setdefault(n, inp[0].detach().clone()))
             for n in names]
    model(x)
    for h in hooks:
        h.remove()
    return [seen[n] for n in names]


def save(model, path):
    torch.jit.save(torch.jit.script(model.eval()), path)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    save(SharedClass(), f"{out}/shared_class.pt")
    save(CalledTwice(), f"{out}/called_twice.pt")
    # Traced, the second call of act is a method of its own, act.forward1.
    torch.jit.save(torch.jit.trace(CalledTwice().eval(), torch.randn(2, 3)), f"{out}/called_twice_traced.pt")
    save(WithModuleList(), f"{out}/module_list.pt")
    save(Branches(), f"{out}/branches.pt")
    save(NeverCalled(), f"{out}/never_called.pt")
    save(TwoInput(), f"{out}/two_input.pt")
    save(nn.Linear(3, 2), f"{out}/bare_linear.pt")
    save(Failing(), f"{out}/failing.pt")
    save(TupleOut(), f"{out}/tuple_out.pt")
    save(Embed(), f"{out}/embed.pt")
    save(DictOut(), f"{out}/dict_out.pt")
    save(Slow(), f"{out}/slow.pt")
    save(FunctionalLinear(), f"{out}/functional_linear.pt")
    save(Recurrent(), f"{out}/recurrent.pt")
    save(Attention(), f"{out}/attention.pt")
    save(Layouts(), f"{out}/layouts.pt")
    save(TupleLayouts(), f"{out}/tuple_layouts.pt")
    # Interfaces and forks, with the values forward hooks see on the same input (the oracle).
    x = torch.randn(3, 4)
    torch.save([x], f"{out}/calib_iface.pt")
    m = WithInterface().eval()
    save(m, f"{out}/interface.pt")
    torch.save(hook_inputs(m, x, ["blk.fc1", "blk.fc2"]), f"{out}/interface_hooks.pt")
    m = Forked().eval()
    save(m, f"{out}/forked.pt")
    torch.save(hook_inputs(m, x, ["a", "layers.0", "layers.1"]), f"{out}/forked_hooks.pt")
    save(Subclasses(), f"{out}/subclasses.pt")
    # Already quantized (convert_fx), QAT (prepare_qat_fx, still float), and half-precision models.
    from torch.ao.quantization import get_default_qat_qconfig_mapping, get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx, prepare_qat_fx
    img = torch.randn(2, 2, 4, 4)
    prepared = prepare_fx(ConvRelu().eval(), get_default_qconfig_mapping("x86"), (img,))
    prepared(img)
    torch.jit.save(torch.jit.script(convert_fx(prepared)), f"{out}/quantized.pt")
    qat = prepare_qat_fx(ConvRelu().train(), get_default_qat_qconfig_mapping("x86"), (img,))
    qat(img)
    torch.jit.save(torch.jit.script(qat.eval()), f"{out}/qat.pt")
    save(ConvRelu().half(), f"{out}/half.pt")
    torch.save([img.half(), img.half()], f"{out}/calib_img_half.pt")
    # Frozen models: nothing left to observe.
    frozen = torch.jit.freeze(torch.jit.script(TwoInput().eval()))
    torch.jit.save(frozen, f"{out}/frozen.pt")
    torch.jit.save(torch.jit.optimize_for_inference(torch.jit.script(ConvRelu().eval())), f"{out}/optimized.pt")
    from torch.ao.quantization.quantize_fx import fuse_fx
    save(fuse_fx(ConvRelu().eval()), f"{out}/fused.pt")
    import torchvision
    save(torchvision.models.resnet18(), f"{out}/resnet18.pt")
    save(torchvision.models.mobilenet_v2(), f"{out}/mobilenet_v2.pt")
    # Calibration archives.
    x = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    torch.save([x, x + 1], f"{out}/calib_list.pt")
    torch.save([x, x + 1], f"{out}/calib_legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(x, f"{out}/calib_tensor.pt")
    torch.save({"x": [torch.randn(4, 2), torch.randn(4, 2)], "y": [torch.randn(4, 3), torch.randn(4, 3)]},
               f"{out}/calib_dict.pt")
    torch.save([(torch.randn(4, 2), torch.randn(4, 3))], f"{out}/calib_tuples.pt")
    torch.save({"x": torch.randn(4, 2), "z": torch.randn(4, 3)}, f"{out}/calib_dict_badkey.pt")
    torch.save([], f"{out}/calib_empty_list.pt")
    torch.save(["a", 1], f"{out}/calib_nontensor.pt")
    torch.save([torch.randn(4, 5)], f"{out}/calib_wrong_shape.pt")
    torch.save([torch.randn(2, 2, 4, 4), torch.randn(2, 2, 4, 4) * 3], f"{out}/calib_img.pt")
    torch.save([torch.full((2, 3), 2000.0)], f"{out}/calib_large.pt")
    torch.save([torch.zeros(4, 3), torch.zeros(4, 3)], f"{out}/calib_zeros.pt")
    torch.save([torch.randint(0, 10, (2, 5))], f"{out}/calib_ids.pt")
    torch.save([torch.randn(4, 3), torch.tensor([[1.0, float("nan"), 2.0]])], f"{out}/calib_nan.pt")
    torch.save([torch.tensor([[1.0, float("inf"), 2.0]])], f"{out}/calib_inf.pt")
    torch.save([torch.randn(3), torch.randn(3)], f"{out}/calib_1d.pt")
    torch.save([torch.randn(2, 3).to(torch.float64)], f"{out}/calib_float64.pt")
    torch.save([torch.randn(4, 16, 32, 32) for _ in range(400)], f"{out}/calib_slow.pt")
    # The same list re-zipped with compression: storages cannot be mapped in place and are read instead.
    import zipfile
    with zipfile.ZipFile(f"{out}/calib_list.pt") as src, \
            zipfile.ZipFile(f"{out}/calib_deflated.pt", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    print("graph fixtures ->", out)


if __name__ == "__main__":
    main()
