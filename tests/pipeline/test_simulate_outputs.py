#!/usr/bin/python3
"""--simulate on a model whose quantized run returns another number of outputs than its float run (a list
whose length depends on the values): the model's output SQNR cannot pair them, so it is null in both
configurations with one warning naming the first such batch; before, the outputs that happened to pair
were compared and the rest ignored without a word. The per-layer figures stand.
Usage: test_simulate_outputs.py QREPORT"""
import json
import re
import os
import subprocess
import sys
import tempfile
import warnings
from typing import List

warnings.filterwarnings("ignore")
QREPORT = sys.argv[1]
import torch  # noqa: E402


class ValueDependentOutputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(16, 16)

    def forward(self, x) -> List[torch.Tensor]:
        y = self.fc(x)
        out = [y]
        # The parity of the fourth decimals: quantization noise changes it on about half the batches.
        if int(torch.floor(y * 1e4).sum().item()) % 2 == 1:
            out.append(y * 2)
        return out


def main():
    t = tempfile.mkdtemp(prefix="qreport-simulate-")
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(ValueDependentOutputs().eval()), f"{t}/m.pt")
    torch.save([torch.randn(4, 16) for _ in range(8)], f"{t}/c.pt")
    r = subprocess.run([QREPORT, "analyze", f"{t}/m.pt", "--calib", f"{t}/c.pt", "--simulate", "--format", "json",
                        "--threads", "1"], capture_output=True, text=True)
    failures = []
    # Which batch first differs depends on the quantization noise (the mapping decides it): any of the 8, once.
    want = re.compile(r"qreport: warning: --simulate: on batch [0-7] the quantized model returned other outputs than "
                      r"the float model \(their number or shapes\), so the model's output SQNR is null; the per-layer "
                      r"figures stand$")
    if r.returncode != 0:
        failures.append(f"exit {r.returncode}: {r.stderr.strip()!r}")
    else:
        sim = json.loads(r.stdout)["simulation"]
        for config in ("default_qconfig", "recommended"):
            if sim[config]["output_sqnr_db"] is not None:
                failures.append(f"{config}: output SQNR {sim[config]['output_sqnr_db']}, want null")
            if sim[config]["layers_output_sqnr_db"].get("fc") is None:
                failures.append(f"{config}: the layer's figure is missing")
        if sum(1 for line in r.stderr.splitlines() if want.match(line)) != 1:
            failures.append(f"stderr {r.stderr.strip()!r} lacks one line matching {want.pattern!r}")
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("ok output SQNR null, with the warning, when the outputs do not pair")


if __name__ == "__main__":
    main()
