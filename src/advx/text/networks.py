"""The networks of the text zoo: word-level ``bow``, ``wordcnn``, ``lstm``, and ``minilm``.

Each reads token ids ``(N, L)`` and returns logits ``(N, C)``; each also exposes what a
white-box text attack needs (:meth:`encode`, :meth:`from_embeddings`, the embedding
table and which token each word of a text is). They are registered as architectures of
the model zoo by :mod:`advx.text.archs` and wrapped for attacks by
:class:`advx.text.classifier.TextClassifier`.

* word-level nets (:class:`BagOfEmbeddings`, :class:`WordCNN`, :class:`BiLSTM`) read
  tokens of :func:`advx.data.text.tokenize` through a :class:`~advx.data.text.Vocab`;
* :class:`MiniLMNet` reads WordPiece ids into the all-MiniLM-L6-v2 encoder (frozen by
  default), mean-pools and applies a trained head.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from advx.errors import ConfigError

__all__ = ["BagOfEmbeddings", "BiLSTM", "MiniLMNet", "WordCNN", "is_text_net"]


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
        out: Tensor = self.out(self.drop(mean))
        return out


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
        out: Tensor = self.out(self.drop(torch.cat(pooled, dim=1)))
        return out


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
        out: Tensor = self.out(self.drop(h.amax(dim=1)))
        return out


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
        out: Tensor = self.head(self.pool(hidden, mask))
        return out

    def from_embeddings(self, e: Tensor, mask: Tensor) -> Tensor:
        """Logits from input embeddings ``(N, T, 384)`` and a token mask ``(N, T)``."""
        hidden = self.bert(inputs_embeds=e, attention_mask=mask.long()).last_hidden_state
        out: Tensor = self.head(self.pool(hidden, mask))
        return out

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


def is_text_net(net: Any) -> bool:
    """True when ``net`` is one of the networks of this module (a text model of the zoo)."""
    return isinstance(net, (_WordNet, MiniLMNet))
