"""Transformer, attention, recurrent and Conv1d fixtures for the per-feature tests (--ch-axis auto).

Every builder returns (eager_model, batches, weightless_axis) from a fixed seed. weightless_axis is the
fixture's ground truth for modules without a weight (dropout, GELU, ...): "last" where activations are
[..., features], 1 where they are [B, C, L]. Modules with a weight use the axis their weight consumes.
Where one model holds both layouts (Swin and ConvNeXt permute between [B, C, H, W] and [B, H, W, C]),
weightless_axis is a dict: "*" the default, and per module fqn the axis that holds its input's features,
for any module (torchvision's LayerNorm2d is an nn.LayerNorm whose weight consumes axis 1).
"""
import torch
import torch.nn as nn


def encoder(batch_first):
    torch.manual_seed(20 + int(batch_first))
    layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=batch_first)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    shape = (2, 6, 16) if batch_first else (6, 2, 16)
    return model, [(torch.randn(*shape) * (1 + 0.5 * k),) for k in range(3)], "last"


def encoder_batch_first():  # takes the fused fast path under inference mode
    return encoder(True)


def encoder_seq_first():  # never takes the fast path (batch_first is False)
    return encoder(False)


class Decoder(nn.Module):
    def __init__(self, batch_first=True):
        super().__init__()
        self.layer = nn.TransformerDecoderLayer(16, 4, 32, batch_first=batch_first, activation="gelu")

    def forward(self, tgt, memory):
        return self.layer(tgt, memory)


def decoder_layer():
    torch.manual_seed(22)
    return Decoder(), [(torch.randn(2, 5, 16) * (k + 1), torch.randn(2, 7, 16) + k) for k in range(3)], "last"


def decoder_layer_seq_first():  # [T, B, F]: the batch/sequence transposes inside attention
    torch.manual_seed(28)
    return Decoder(False), [(torch.randn(5, 2, 16) * (k + 1), torch.randn(7, 2, 16) + k) for k in range(3)], "last"


class SelfAttention(nn.Module):
    def __init__(self, batch_first=False):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 2, batch_first=batch_first)  # [T, B, F], batch_first [B, T, F]

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


def mha_seq_first():  # F.multi_head_attention_forward, scaled_dot_product_attention (need_weights=False)
    torch.manual_seed(23)
    return SelfAttention(), [(torch.randn(5, 3, 16) * (k + 1),) for k in range(3)], "last"


def mha_batch_first():  # batch_first self-attention takes aten::_native_multi_head_attention without grad
    torch.manual_seed(29)
    return SelfAttention(True), [(torch.randn(3, 5, 16) * (k + 1),) for k in range(3)], "last"


class HandAttention(nn.Module):
    """A block written by hand: q/k/v projections, softmax attention, LayerNorm, a GELU MLP."""

    def __init__(self, d=16):
        super().__init__()
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.softmax = nn.Softmax(dim=-1)
        self.proj = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * d, d)
        self.scale = d ** -0.5

    def forward(self, x):
        a = self.softmax(torch.matmul(self.q(x), self.k(x).transpose(-2, -1)) * self.scale)
        x = self.norm(x + self.proj(torch.matmul(a, self.v(x))))
        return x + self.fc2(self.act(self.fc1(x)))


def hand_attention():
    torch.manual_seed(24)
    m = HandAttention()
    batches = []
    for k in range(3):
        x = torch.randn(2, 7, 16)
        x[..., 3] *= 20.0  # one outlier feature, as in LLM.int8()'s analysis
        batches.append((x * (k + 1),))
    return m, batches, "last"


def vit():
    import torchvision
    torch.manual_seed(25)
    m = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32,
                                             mlp_dim=64, num_classes=10)
    with torch.no_grad():  # torchvision zero-initialises the head: give it a range to compare with
        m.heads.head.weight.normal_(0.0, 0.2)
    return m, [(torch.randn(2, 3, 32, 32) * (k + 1),) for k in range(2)], "last"


def swin():
    import torchvision
    torch.manual_seed(30)
    m = torchvision.models.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 2],
                                           window_size=[4, 4], num_classes=10)
    # [B, H, W, C] from the patch embedding's permute on; [B, C, H, W] before it and after the last one.
    return m, [(torch.randn(2, 3, 32, 32) * (k + 1),) for k in range(2)], \
        {"*": "last", "features.0.1": 1, "avgpool": 1, "flatten": 1}


def convnext():
    import torchvision
    from torchvision.models.convnext import CNBlockConfig
    torch.manual_seed(31)
    m = torchvision.models.ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 1)], num_classes=10)
    # [B, C, H, W] except inside each block, between its two permutes ([B, H, W, C]).
    axes = {"*": 1, "features.0.1": 1, "features.2.0": 1, "classifier.0": 1}  # LayerNorm2d: channels
    for b in ("features.1.0", "features.3.0"):
        axes.update({f"{b}.block.4": "last", f"{b}.block.6": "last"})
    return m, [(torch.randn(2, 3, 32, 32) * (k + 1),) for k in range(2)], axes


def efficientnet():
    import torchvision
    from torchvision.models.efficientnet import MBConvConfig
    torch.manual_seed(32)
    m = torchvision.models.EfficientNet([MBConvConfig(1, 3, 1, 8, 8, 1), MBConvConfig(4, 3, 2, 8, 16, 1)],
                                        dropout=0.2, last_channel=32, num_classes=10)
    return m, [(torch.randn(2, 3, 32, 32) * (k + 1),) for k in range(2)], 1  # [B, C, H, W], then [B, C]


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        self.gru = nn.GRU(16, 12)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        y, _ = self.lstm(x)                   # [B, T, 16]
        z, _ = self.gru(y.transpose(0, 1))    # sequence first: [T, B, 12]
        return self.head(z[-1])


def recurrent():
    torch.manual_seed(26)
    return Recurrent(), [(torch.randn(3, 5, 8) * (k + 1),) for k in range(3)], "last"


class Conv1dFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(0.1)
        self.point = nn.Conv1d(6, 5, 1)
        self.fc = nn.Linear(5 * 8, 3)

    def forward(self, x):
        y = self.point(self.drop(self.act(self.conv(x))))  # [B, C, L]: channels on axis 1
        return self.fc(torch.flatten(y, 1))


def conv1d_channels():
    torch.manual_seed(27)
    return Conv1dFeatures(), [(torch.randn(2, 4, 10) + k,) for k in range(3)], 1


# Hugging Face models built from small configs (no download), with the eager attention so that every
# projection is an nn.Linear call; traced (TorchScript cannot script them), as users export them for C++.
# GPT-2's projections are transformers' own Conv1D (weight [in, out], applied with addmm), which neither
# prepare_fx nor PT2E quantizers treat as a Linear: qreport does not either (docs/usage.md). Generated by
# make_feature_fixtures.py OUT --hf, where the Python has transformers (the features_hf_* tests skip otherwise).
def _token_batches(seed, vocab=100, shape=(2, 12), n=3):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randint(0, vocab, shape, generator=g),) for _ in range(n)]


def hf_bert():
    from transformers import BertConfig, BertModel
    torch.manual_seed(40)
    m = BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, torchscript=True, attn_implementation="eager"))
    return m, _token_batches(40), "last"


def hf_llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(41)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2, intermediate_size=64, use_cache=False,
                                     torchscript=True, attn_implementation="eager"))
    return m, _token_batches(41), "last"


def hf_vit():
    from transformers import ViTConfig, ViTModel
    torch.manual_seed(42)
    m = ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, torchscript=True, attn_implementation="eager"))
    return m, [(torch.randn(2, 3, 32, 32) * (k + 1),) for k in range(2)], "last"


def hf_gpt2():
    from transformers import GPT2Config, GPT2Model
    torch.manual_seed(43)
    m = GPT2Model(GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, use_cache=False, bos_token_id=0,
                             eos_token_id=0, torchscript=True, attn_implementation="eager"))
    return m, _token_batches(43), "last"


HF_FEATURES = {"hf_bert": hf_bert, "hf_llama": hf_llama, "hf_vit": hf_vit, "hf_gpt2": hf_gpt2}

FEATURES = {
    "encoder_batch_first": encoder_batch_first,
    "encoder_seq_first": encoder_seq_first,
    "decoder_layer": decoder_layer,
    "decoder_layer_seq_first": decoder_layer_seq_first,
    "mha_seq_first": mha_seq_first,
    "mha_batch_first": mha_batch_first,
    "hand_attention": hand_attention,
    "vit": vit,
    "swin": swin,
    "convnext": convnext,
    "efficientnet": efficientnet,
    "recurrent": recurrent,
    "conv1d_channels": conv1d_channels,
}
