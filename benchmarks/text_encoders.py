"""BERT- and DistilBERT-style encoders from transformers config objects (random init, no
network), wrapped to take (input_ids, attention_mask) and return the last hidden state: the
models the text benchmarks and tests compile."""

from __future__ import annotations

import torch


class LastHiddenState(torch.nn.Module):
    """transformers' encoder with the two int64 inputs a tokenizer produces, one tensor out."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids, attention_mask):
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def build_encoder(kind: str = "bert", layers: int = 2, hidden: int = 32, heads: int = 4, seq: int = 8,
                  vocab: int = 1000, seed: int = 0) -> tuple[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """(model, (input_ids, attention_mask)) for `kind` "bert" or "distilbert"; the mask pads
    the last quarter of the sequence, so the padding-mask path is exercised."""
    import transformers

    torch.manual_seed(seed)
    if kind == "bert":
        config = transformers.BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                                         num_attention_heads=heads, intermediate_size=4 * hidden,
                                         max_position_embeddings=max(512, seq))
        encoder = transformers.BertModel(config)
    elif kind == "distilbert":
        config = transformers.DistilBertConfig(vocab_size=vocab, dim=hidden, n_layers=layers, n_heads=heads,
                                               hidden_dim=4 * hidden, max_position_embeddings=max(512, seq))
        encoder = transformers.DistilBertModel(config)
    else:
        raise ValueError(f"unknown encoder kind '{kind}'; expected bert or distilbert")
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (1, seq), generator=generator)
    mask = torch.ones(1, seq, dtype=torch.int64)
    mask[0, seq - max(1, seq // 4):] = 0
    return LastHiddenState(encoder).eval(), (ids, mask)
