"""``rtclassify backends``: which inference backends and GPU parts can run here, and why not."""

from __future__ import annotations

import argparse
import json

NAME = "backends"
#: what the command prints is its output: a reader that leaves early ends it with status 0 (see cli.main)
PRINTS_ITS_OUTPUT = True
HELP = "list the inference backends (onnx, torch, tensorrt) and the CUDA frontend: available, or why not"
DESCRIPTION = """\
List each inference backend and the CUDA frontend with "available" or the exact reason it is not
(no GPU, a missing package and the extra that provides it, a build without CUDA), and which backend
`--backend auto` picks. Nothing is loaded: packages are looked up, not imported, and the GPU is
probed through the NVIDIA driver.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _onnx():
    from ..gpu import Availability, package_available

    if not package_available("onnxruntime"):
        return Availability(False, "onnxruntime is not installed (pip install onnxruntime)")
    import onnxruntime as ort

    providers = ", ".join(ort.get_available_providers())
    return Availability(True, detail=f"CPU; ONNX Runtime {ort.__version__}; providers: {providers}")


def _torch():
    from ..gpu import Availability, package_available

    if not package_available("torch"):
        return Availability(False, "torch is not installed (pip install 'rtclassify[train]'); development only")
    return Availability(True, detail="CPU; development only: runs a bundle's training weights (its weights.pt or "
                                     f"the checkpoint its model.json names); {_default_weights()}")


def _default_weights() -> str:
    """Whether the default bundle's training weights are here (looked up, not loaded or verified)."""
    import json

    from ..model.backend_torch import _checkpoint_candidates
    from ..model.bundle import default_bundle_path

    folder = default_bundle_path()
    if (folder / "weights.pt").is_file():
        return "the default bundle holds them"
    try:
        ref = json.loads((folder / "model.json").read_text()).get("training", {}).get("checkpoint")
    except (OSError, ValueError, AttributeError):
        ref = None
    if isinstance(ref, str) and ref and _checkpoint_candidates(folder, ref):
        return f"a file named as the default bundle's checkpoint ({ref}) is here; loading checks it is that one"
    return (f"the default bundle's are not here (its checkpoint {ref} is not installed with the package)"
            if isinstance(ref, str) and ref else "the default bundle has none")


def collect() -> dict:
    """``{name: Availability}`` for onnx, torch, tensorrt and cuda-frontend, plus what auto picks."""
    from .. import build_info
    from ..gpu import cuda_frontend_availability, tensorrt_availability

    items = {
        "onnx": _onnx(),
        "torch": _torch(),
        "tensorrt": tensorrt_availability(),
        "cuda-frontend": cuda_frontend_availability(),
    }
    info = build_info()
    if items["cuda-frontend"].available:
        items["cuda-frontend"] = type(items["cuda-frontend"])(
            True, detail=f"{items['cuda-frontend'].detail}; CUDA {info['cuda_version']}, "
                         f"architectures {info['cuda_architectures']}")
    # None: neither runs here (auto then fails, naming both)
    auto = "tensorrt" if items["tensorrt"].available else "onnx" if items["onnx"].available else None
    return {"items": items, "auto": auto}


def run(args) -> int:
    res = collect()
    items, auto = res["items"], res["auto"]
    if args.json:
        print(json.dumps({
            "backends": {k: {"available": v.available, "reason": v.reason, "detail": v.detail}
                         for k, v in items.items()},
            "auto": auto,
        }, indent=1))
        return 0
    width = max(len(k) for k in items)
    for name, a in items.items():
        if a.available:
            print(f"{name:<{width}}  available" + (f"  ({a.detail})" if a.detail else ""))
        else:
            print(f"{name:<{width}}  not available: {a.reason}")
    if auto is None:
        print("\n--backend auto picks: nothing (neither TensorRT nor ONNX Runtime can run here)")
        return 0
    why = "a GPU, tensorrt and cupy are present" if auto == "tensorrt" else "TensorRT cannot run here"
    print(f"\n--backend auto picks: {auto} ({why})")
    return 0
