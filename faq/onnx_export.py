"""
Exporting the sentence-transformers model for onnxruntime (`faq.embedding.OnnxEncoder`): the one
place that runs torch for the default model, called by `embedding.export_onnx` (`manage.py
export_model`, the worker, the test session). Web processes only read what it writes.

Two files, each written to a temporary name and renamed over the final one, so a process starting
at the same moment reads either no file or a whole one:
- the model's tokenizer as a `tokenizers` JSON file, set to truncate at the model's
  max_seq_length and to pad to a batch's longest text, as sentence-transformers tokenizes;
- the transformer's forward pass as ONNX (torch's TorchScript exporter), written last: the
  encoder looks for both.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured


def check_modules(model: Any) -> None:
    """Only a Transformer, mean Pooling and optionally Normalize: what OnnxEncoder computes."""
    kinds = [type(module).__name__ for module in model]
    pooling = model[1].get_config_dict() if len(kinds) > 1 else {}
    if (
        kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
        or pooling.get("pooling_mode") != "mean"
    ):
        raise ImproperlyConfigured(
            f"EMBEDDING_RUNTIME=onnx supports Transformer + mean Pooling models only; "
            f"this one is {kinds} ({pooling}). Use EMBEDDING_RUNTIME=torch."
        )


def export(model: Any, onnx_file: Path, tokenizer_file: Path) -> None:
    """Write `model`'s (a SentenceTransformer's) tokenizer and transformer beside each other."""
    import torch
    from tokenizers import Tokenizer

    check_modules(model)
    onnx_file.parent.mkdir(parents=True, exist_ok=True)
    hf_tokenizer = model[0].tokenizer
    tokenizer = Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str())
    tokenizer.enable_truncation(max_length=model.max_seq_length)
    tokenizer.enable_padding(pad_id=hf_tokenizer.pad_token_id, pad_token=hf_tokenizer.pad_token)
    with _replacing(tokenizer_file) as tmp:
        tokenizer.save(str(tmp))

    sample = model.preprocess(["an example sentence to trace the model with"])
    names = [key for key in sample if key != "modality"]  # the tokenizer's tensors
    transformer = model[0].auto_model

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.transformer(**dict(zip(names, inputs, strict=True))).last_hidden_state

    axes = {"batch": 0, "tokens": 1}
    with _replacing(onnx_file) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            Wrapped().eval(),
            tuple(sample[name] for name in names),
            str(tmp),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={
                name: {index: axis for axis, index in axes.items()}
                for name in [*names, "last_hidden_state"]
            },
            opset_version=17,
            dynamo=False,
        )


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary file beside `path`, renamed over it when the block succeeds (removed if not),
    readable by all: mkstemp's file is private (0600), and a release step exporting as another
    user than the service's must still leave a file the service can read."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
