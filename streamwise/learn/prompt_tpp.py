"""PromptTPP (Xue et al. 2023): continual learning of a point process through a prompt pool.

A neural TPP (``tpp.NeuralTPP``) is trained on the first period of the stream and then frozen:
its mark embedding and GRU never change again, so nothing it learned can be overwritten.  What
adapts to later periods is a pool of ``M`` prompts, each a learnable key ``key_m`` (in the GRU's
state space) and ``P`` learnable input vectors (in the GRU's input space), and the intensity head.
For a sequence, the query ``q`` is the frozen model's history after the sequence's first event
(its context: nothing later is looked at); the ``N`` prompts whose keys are most similar to it,

    S(q) = top-N_m cos(q, key_m),

are read by the GRU before the events (their ``N * P`` vectors prepended), which shifts the
history every later intensity reads.  Training maximises the log-likelihood plus a pull of the
selected keys towards their queries, ``mu * mean_{m in S(q)} (1 - cos(q, key_m))``, so that
sequences that look alike select the same prompts (L2P's key-query matching).  Prompts used by
one period's sequences and not another's carry that period's adjustment; the frozen base keeps
the shared part.  The head (``v_k``, ``b_k``, ``w``, ``mu_k``) is trained with the prompts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from streamwise.learn.tpp import Events, NeuralTPP


class PromptTPP(torch.nn.Module):
    def __init__(self, base: NeuralTPP, pool: int = 10, length: int = 2, top: int = 2,
                 match: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        if not 1 <= top <= pool or length < 1:
            raise ValueError(f"need 1 <= top <= pool and length >= 1, got top={top}, "
                             f"pool={pool}, length={length}")
        gen = torch.Generator().manual_seed(seed)
        self.base = base
        for p in (*base.embed.parameters(), *base.rnn.parameters()):
            p.requires_grad_(False)
        hidden, width = base.rnn.hidden_size, base.rnn.input_size
        self.keys = torch.nn.Parameter(torch.randn(pool, hidden, generator=gen))
        self.prompts = torch.nn.Parameter(0.1 * torch.randn(pool, length, width, generator=gen))
        self.top, self.match = top, match
        self.n_marks = base.n_marks

    def trainable(self) -> list[torch.nn.Parameter]:
        return [self.keys, self.prompts, *self.base.head.parameters(), self.base.omega,
                self.base.raw_mu]

    def query(self, ev: Events) -> torch.Tensor:
        """The frozen model's history after each sequence's first event, ``(B, hidden)``."""
        with torch.no_grad():
            first = Events(ev.times[:, :1], ev.marks[:, :1], ev.mask[:, :1])
            return self.base.histories(first)[:, 0]

    def select(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices of the ``top`` most similar keys ``(B, top)`` and their similarities."""
        sim = F.normalize(q, dim=1) @ F.normalize(self.keys, dim=1).T
        best = sim.topk(self.top, dim=1)
        return best.indices, best.values

    def prefix(self, ev: Events) -> tuple[torch.Tensor, torch.Tensor]:
        """The prompt vectors each sequence reads first ``(B, top * length, width)`` and the
        key-matching loss."""
        idx, sim = self.select(self.query(ev))
        chosen = self.prompts[idx]  # (B, top, length, width)
        return chosen.reshape(len(idx), -1, chosen.shape[-1]), self.match * (1 - sim).mean()

    def log_likelihood(self, ev: Events, prefix: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        p, _ = self.prefix(ev)
        return self.base.log_likelihood(ev, p)

    def matching_loss(self, ev: Events) -> torch.Tensor:
        return self.prefix(ev)[1]
