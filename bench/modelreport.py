#!/usr/bin/python3
"""PyTorch's own ModelReport with all four detectors on a bench input (the issue's reference point):
    /usr/bin/python3 bench/modelreport.py DIR THREADS
DIR holds fx_model.pth and calib.pt from bench/make_inputs.py. Whole-process time is what bench/run.py
measures, as for qreport and the baseline."""
import sys
import warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402
from torch.ao.quantization import default_qconfig  # noqa: E402
from torch.ao.quantization.fx._model_report.detector import (DynamicStaticDetector,  # noqa: E402
                                                              InputWeightEqualizationDetector,
                                                              OutlierDetector, PerChannelDetector)
from torch.ao.quantization.fx._model_report.model_report import ModelReport  # noqa: E402


def main():
    d, threads = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(threads)
    gm = torch.load(d + "/fx_model.pth", weights_only=False)  # a pickled GraphModule
    batches = torch.load(d + "/calib.pt", weights_only=False)
    for m in gm.modules():
        m.qconfig = default_qconfig
    mr = ModelReport(gm, {PerChannelDetector("x86"), DynamicStaticDetector(), InputWeightEqualizationDetector(0.5),
                          OutlierDetector()})
    prepared = mr.prepare_detailed_calibration()
    with torch.no_grad():
        for b in batches:
            prepared(b)
    mr.generate_model_report(remove_inserted_observers=False)


if __name__ == "__main__":
    main()
