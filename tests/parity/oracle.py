"""Runs PyTorch's own ModelReport (Debian python3-torch) on a fixture, once per detector, so that every
detector has its own observers (PyTorch's shared pre-observer would otherwise clobber settings)."""
import math

import torch
from torch.ao.quantization import default_qconfig
from torch.ao.quantization.fx._model_report.detector import (DynamicStaticDetector,
                                                              InputWeightEqualizationDetector,
                                                              OutlierDetector, PerChannelDetector)
from torch.ao.quantization.fx._model_report.model_report import ModelReport

import fixtures

DETECTORS = {
    "per_channel_detector": lambda: PerChannelDetector("x86"),
    "dynamic_vs_static_detector": lambda: DynamicStaticDetector(tolerance=0.5),
    "input_weight_equalization_detector": lambda: InputWeightEqualizationDetector(0.5),
    "outlier_detector": lambda: OutlierDetector(),
}


def plain(v):
    """A report value as JSON: tensors to numbers/lists, non-finite floats to None."""
    if isinstance(v, torch.Tensor):
        v = v.detach().tolist()
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def run(name, detector_name):
    gm, batches = fixtures.fused(name)
    for m in gm.modules():
        m.qconfig = default_qconfig  # what PerChannelDetector reads; qreport's --weight-qscheme per-tensor
    det = DETECTORS[detector_name]()
    mr = ModelReport(gm, {det})
    prepared = mr.prepare_detailed_calibration()
    with torch.no_grad():
        for b in batches:
            prepared(*b)
    reports = mr.generate_model_report(remove_inserted_observers=False)
    text, info = reports[detector_name]
    qinfo = {fqn: [bool(i.is_activation_dynamic), bool(i.is_weight_per_channel), bool(i.is_equalization_recommended)]
             for fqn, i in det.get_qconfig_info(prepared).items()}
    return {"report": text,
            "modules": {fqn: {k: plain(v) for k, v in d.items()} for fqn, d in info.items()},
            "qconfig_info": qinfo}


def run_all(name):
    return {det: run(name, det) for det in DETECTORS}
