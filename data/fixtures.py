"""Fixture models for qreport's tests, built deterministically with Debian's python3-torch.

Every builder returns (eager_model, batches) from a fixed seed, so the parity oracle and the scripted
model see identical weights and data. Parity models are fused with fuse_fx (eval mode, so Conv+BN is
folded) and then scripted, so that qreport and PyTorch's ModelReport see the same module names.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class TwoLinear(nn.Module):  # reference spec §7.2, fixed weights
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.fc2 = nn.Linear(3, 2)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, -1.0, 2.0], [2.0, 2.0, -3.0, 0.25]]))
            self.fc1.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
            self.fc2.weight.copy_(torch.tensor([[1.0, -1.0, 0.5], [-2.0, 0.5, 1.0]]))
            self.fc2.bias.copy_(torch.tensor([0.0, 1.0]))

    def forward(self, x):
        return self.fc2(self.fc1(x))


def two_linear():
    base = torch.arange(8, dtype=torch.float32).reshape(2, 4) - 3.5
    return TwoLinear(), [(base * (k + 1) * 0.5 + 2.0 * k,) for k in range(4)]


class ConvBnRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 4, 3, stride=2)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.conv2(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def conv_bn_relu():
    torch.manual_seed(1)
    m = ConvBnRelu()
    with torch.no_grad():
        m.bn1.running_mean.uniform_(-0.5, 0.5)
        m.bn1.running_var.uniform_(0.5, 2.0)
    return m, [(torch.randn(2, 3, 12, 12) * (1 + k),) for k in range(3)]


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3)
        self.act = nn.ReLU()
        self.fc = nn.Linear(6 * 14, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.act(self.conv(x)), 1))


def conv1d():
    torch.manual_seed(2)
    return Conv1dNet(), [(torch.randn(3, 4, 16) + k,) for k in range(3)]


class Conv3dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(2, 4, 2)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv3d(4, 3, 1)

    def forward(self, x):
        return self.conv2(self.act(self.conv(x)))


def conv3d():
    torch.manual_seed(3)
    return Conv3dNet(), [(torch.randn(2, 2, 5, 5, 5) * (k + 1),) for k in range(3)]


class GroupedConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.grouped = nn.Conv2d(4, 6, 3, groups=2)
        self.depthwise = nn.Conv2d(6, 6, 3, groups=6, padding=1)
        self.point = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.point(self.depthwise(self.grouped(x)))


def grouped_conv():
    torch.manual_seed(4)
    return GroupedConv(), [(torch.randn(2, 4, 9, 9) * (k + 1) + k,) for k in range(3)]


class Linear3d(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 8)
        self.act = nn.GELU()
        self.out = nn.Linear(8, 4)

    def forward(self, x):
        return self.out(self.act(self.proj(x)))


def linear_3d():
    # [batch, tokens, features]: ch_axis 1 is the token axis, as in PyTorch. 8 tokens keep it divisible.
    torch.manual_seed(5)
    return Linear3d(), [(torch.randn(2, 8, 4) * (k + 1),) for k in range(3)]


class TwoInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(5, 6)
        self.b = nn.Linear(3, 6)
        self.head = nn.Linear(6, 2)

    def forward(self, x, y):
        return self.head(torch.relu(self.a(x) + self.b(y)))


def two_input():
    torch.manual_seed(6)
    return TwoInput(), [(torch.randn(4, 5) * (k + 1), torch.randn(4, 3) - k) for k in range(3)]


class DeadChannel(nn.Module):
    """conv1's channel 0 has a large negative bias, so after the ReLU it is zero in every batch."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv1.bias[0] = -100.0

    def forward(self, x):
        return self.conv2(self.relu(self.conv1(x)))


def dead_channel():
    torch.manual_seed(7)
    return DeadChannel(), [(torch.randn(2, 2, 4, 4),) for _ in range(3)]


class Spiky(nn.Module):  # the spike-outlier model of PyTorch's test 25 (LargeBatchModel, p = 8)
    def __init__(self, p=8):
        super().__init__()
        self.linear = nn.Linear(p, p)
        self.relu_1 = nn.ReLU()
        self.conv = nn.Conv2d(p, p, 1)
        self.relu_2 = nn.ReLU()

    def forward(self, x):
        return self.relu_2(self.conv(self.relu_1(self.linear(x))))


def spiky():
    torch.manual_seed(8)
    p = 8
    batches = []
    for i in range(6):
        x = torch.randn(1, p, p, p)
        x[:, 0:p:2, 0, 3] = 3.28e8
        if i % 4 == 0:
            x[:, 1, :, :] = 0
        batches.append((x,))
    return Spiky(p), batches


def resnet18():
    import torchvision
    torch.manual_seed(9)
    return torchvision.models.resnet18(), [(torch.randn(2, 3, 64, 64),) for _ in range(2)]


def mobilenet_v2():
    import torchvision
    torch.manual_seed(10)
    return torchvision.models.mobilenet_v2(), [(torch.randn(2, 3, 64, 64),) for _ in range(2)]


PARITY = {
    "two_linear": two_linear,
    "conv_bn_relu": conv_bn_relu,
    "conv1d": conv1d,
    "conv3d": conv3d,
    "grouped_conv": grouped_conv,
    "linear_3d": linear_3d,
    "two_input": two_input,
    "dead_channel": dead_channel,
    "spiky": spiky,
    "resnet18": resnet18,
    "mobilenet_v2": mobilenet_v2,
}


def script(model, attempts=3):
    """torch.jit.script, retried on a fresh deep copy when it fails with "builtin cannot be used as a value".
    TorchScript looks builtins up by id() of the Python object; an id left in that table by a freed object
    can be reused by a new attribute (Conv2d's `_reversed_padding_repeated_twice` list), which then reads
    as a builtin. It is random per object: 1 in 30 scripts of the fused dead_channel model failed in one
    process on PyTorch 2.14. A copy has new objects and ids; a model that truly cannot be scripted fails
    every attempt."""
    import copy
    for attempt in range(attempts):
        try:
            return torch.jit.script(model if attempt == 0 else copy.deepcopy(model))
        except RuntimeError as e:
            if "builtin cannot be used as a value" not in str(e) or attempt == attempts - 1:
                raise
            # The failed attempt left half-compiled types behind ("Can't redefine method" next time):
            # forget them, as PyTorch's own tests do between scripts (jit_utils.clear_class_registry).
            torch._C._jit_clear_class_registry()
            torch.jit._recursive.concrete_type_store = torch.jit._recursive.ConcreteTypeStore()
            torch.jit._state._clear_class_state()


def dealias(gm):
    """Gives every module path its own object. fuse_fx reuses one ReLU object both inside a fused
    ConvReLU2d and at its own name (resnet's `relu`, called again after the residual add); PyTorch's
    ModelReport then sees one module under the first name only and never observes the second call.
    TorchScript has no aliasing (scripting copies each path), so qreport reports both; the oracle is
    given the same view (docs/differences.md, "aliased modules")."""
    import copy
    seen = set()
    for name, mod in list(gm.named_modules(remove_duplicate=False)):
        if not name:
            continue
        if id(mod) in seen:
            parent = gm.get_submodule(name.rpartition(".")[0]) if "." in name else gm
            setattr(parent, name.rpartition(".")[2], copy.deepcopy(mod))
        seen.add(id(mod))
    return gm


def fused(name):
    """The eager model fused with fuse_fx (eval mode), de-aliased, and its batches."""
    from torch.ao.quantization.quantize_fx import fuse_fx
    model, batches = PARITY[name]()
    return dealias(fuse_fx(model.eval())), batches
