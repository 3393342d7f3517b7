"""User models of every kind advx accepts, written for the bring-your-own-model tests.

* :func:`write_image_models` — one trained digits classifier as a TorchScript file, an
  ONNX file, and a ``module:function`` factory (a Python file that builds the network and
  loads safetensors weights, the pattern the README recommends instead of pickles);
* :func:`hf_text_dir` — a Hugging Face sequence-classification directory built from the
  MiniLM encoder the project ships (``BertForSequenceClassification`` with its config and
  weights) and a 2-class sentiment head fitted on tweets (logistic regression on the
  pooled outputs of a few hundred texts; the head is cached under the test cache).
"""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import torch
from torch import nn

from advx.models.adapter import Classifier
from tests._models import CACHE

FACTORY_SOURCE = textwrap.dedent(
    '''
    """A user's model file: builds the network, loads its weights (safetensors)."""
    from pathlib import Path

    from safetensors.torch import load_file
    from torch import nn

    HERE = Path(__file__).resolve().parent


    def make():
        net = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
        net.load_state_dict(load_file(str(HERE / "weights.safetensors")))
        return net.eval()


    def make_classifier():
        from advx.models import Classifier

        return Classifier(make(), input_shape=(1, 8, 8), num_classes=10,
                          class_names=[f"digit {i}" for i in range(10)])


    def make_zoo():
        import torch

        from advx.models import build

        torch.manual_seed(0)
        return build("linear", input_shape=(1, 8, 8), num_classes=10)


    def broken():
        raise RuntimeError("no weights here")


    NOT_CALLABLE = 3
    '''
)


def write_image_models(root: Path, clf: Classifier) -> dict[str, Path | str]:
    """``clf`` (a digits MLP with ``net = Sequential(Flatten, Linear, ReLU, Linear)``,
    inputs in [0, 1], no normalisation) as a TorchScript file, an ONNX file and a
    factory in ``root``; returns the specs by kind."""
    from safetensors.torch import save_file

    from advx.adapters import export_onnx

    root.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(clf.net).save(str(root / "net.pt"))
    torch.save(clf.net.state_dict(), root / "state_dict.pt")  # a pickle: must be refused
    export_onnx(clf, root / "net.onnx")
    save_file({k: v.contiguous() for k, v in clf.net.state_dict().items()},
              str(root / "weights.safetensors"))  # fmt: skip
    (root / "usermodels.py").write_text(FACTORY_SOURCE)
    return {
        "torchscript": root / "net.pt",
        "onnx": root / "net.onnx",
        "factory": f"{root / 'usermodels.py'}:make",
        "pickle": root / "state_dict.pt",
    }


def hf_text_dir(root: Path, n_fit: int = 320) -> Path:
    """A Hugging Face sentiment classifier directory (negative/positive) in ``root``."""
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    from advx.text.minilm import model_dir

    hf_logging.set_verbosity_error()
    src = model_dir()
    labels = {0: "negative", 1: "positive"}
    config = BertConfig.from_pretrained(
        str(src), num_labels=2, id2label=labels, label2id={v: k for k, v in labels.items()}
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    encoder = load_file(str(src / "model.safetensors"))
    encoder.pop("embeddings.position_ids", None)
    model.bert.load_state_dict(encoder, strict=True)
    tokenizer = AutoTokenizer.from_pretrained(str(src))
    model.eval()
    head_file = CACHE / f"hf-minilm-tweets-head-{n_fit}.safetensors"
    if head_file.exists():
        head = load_file(str(head_file))
    else:
        head = _fit_head(model, tokenizer, n_fit)
        CACHE.mkdir(parents=True, exist_ok=True)
        save_file(head, str(head_file))
    model.classifier.load_state_dict(head)
    out = root / "hf-sentiment"
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out


def _fit_head(model: nn.Module, tokenizer: object, n: int) -> dict[str, torch.Tensor]:
    """Logistic regression on the pooled outputs of ``n`` training tweets."""
    from sklearn.linear_model import LogisticRegression

    from advx.data import load

    ds = load("tweets-binary", "train", limit=n)
    with torch.no_grad():
        batch = tokenizer(list(ds.texts), padding=True, truncation=True, max_length=48,
                          return_tensors="pt")  # type: ignore[operator]  # fmt: skip
        bert = model.bert
        assert isinstance(bert, nn.Module)
        pooled = bert(**batch).pooler_output.numpy()
    lr = LogisticRegression(max_iter=2000, C=10.0).fit(pooled, ds.y.numpy())
    w = torch.tensor(lr.coef_[0], dtype=torch.float32)
    b = torch.tensor(lr.intercept_, dtype=torch.float32)
    # two logits whose difference is the regression's: softmax equals its probability
    return {"weight": torch.stack([-w / 2, w / 2]), "bias": torch.cat([-b / 2, b / 2])}
