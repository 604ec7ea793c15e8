"""Convert the official DISTS α/β weights to the safetensors file shipped with the toolkit.

Source: ``DISTS_pytorch/weights.pt`` inside the wheel ``DISTS_pytorch-0.1-py3-none-any.whl``
(PyPI project ``dists-pytorch`` 0.1, MIT licence, from https://github.com/dingkeyan93/DISTS).
The file is read with ``torch.load(weights_only=True)`` (no code runs), its SHA-256 is checked
against the digest recorded below and in the wheel's RECORD, and the two tensors are written
unchanged (float32 ``[1, 1475, 1, 1]``) to
``bapps_toolkit/metrics/weights/dists/alpha_beta.safetensors`` with the source in the metadata::

    env -u PIP_FIND_LINKS pip download --no-deps dists-pytorch==0.1 -d /tmp/dists-wheel
    python data_scripts/convert_dists_weights.py /tmp/dists-wheel/DISTS_pytorch-0.1-py3-none-any.whl

Then update ``WEIGHTS_SHA256`` in ``bapps_toolkit/metrics/dists.py`` if the printed digest
changed (it does not for the same safetensors version).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save

#: SHA-256 of DISTS_pytorch/weights.pt in dists-pytorch 0.1 (also the file in the GitHub repository
#: dingkeyan93/DISTS at commit 1267d8cb626c98706db3697422701c56a85ebf2e).
SOURCE_SHA256 = "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218"
MEMBER = "DISTS_pytorch/weights.pt"
TARGET = (Path(__file__).resolve().parents[1] / "bapps_toolkit" / "metrics" / "weights" / "dists"
          / "alpha_beta.safetensors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("wheel", type=Path, help="DISTS_pytorch-0.1-py3-none-any.whl")
    args = parser.parse_args()
    with zipfile.ZipFile(args.wheel) as zf:
        raw = zf.read(MEMBER)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SOURCE_SHA256:
        raise SystemExit(f"{args.wheel}:{MEMBER} has SHA-256 {digest}, expected {SOURCE_SHA256}")
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    if sorted(state) != ["alpha", "beta"]:
        raise SystemExit(f"unexpected entries {sorted(state)}")
    tensors = {k: state[k].detach().contiguous() for k in ("alpha", "beta")}
    # one metadata key: safetensors writes a metadata map in no fixed order, so several keys would
    # make the file (and its recorded SHA-256) differ from run to run
    meta = {"source": f"PyPI dists-pytorch 0.1 {MEMBER} sha256:{SOURCE_SHA256} "
                      "(MIT, Copyright (c) 2020 Keyan Ding; https://github.com/dingkeyan93/DISTS)"}
    data = save(tensors, metadata=meta)
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    tmp = TARGET.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(TARGET)
    print(TARGET, hashlib.sha256(data).hexdigest())


if __name__ == "__main__":
    main()
