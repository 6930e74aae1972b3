"""Classical point processes on the same batches: homogeneous Poisson and a marked Hawkes process.

Both give ``log_likelihood(ev) -> (per-event log-likelihood, next-mark logits)`` like
``NeuralTPP``, so one trainer and one set of metrics serve all.

- Poisson: ``lambda_k(t) = mu_k``.  Event log-likelihood ``log mu_k - (sum_k mu_k) d``.
- Hawkes with an exponential kernel: ``lambda_k(t) = mu_k + sum_{t_j < t} alpha_{k, k_j} beta
  exp(-beta (t - t_j))``.  With ``A_i(m) = sum_{j <= i, k_j = m} exp(-beta (t_i - t_j))`` (updated
  by ``A_{i+1} = A_i exp(-beta d) + onehot(k_{i+1})``) the intensity before event ``i + 1`` is
  ``mu + beta alpha A_i exp(-beta d)`` and its integral over the gap
  ``(sum mu) d + sum_k (alpha A_i)_k (1 - exp(-beta d))``.  The next-mark logits are the log
  intensities just after event ``i``.  ``mu``, ``alpha``, ``beta`` are kept positive by softplus.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from streamwise.learn.tpp import Events


class Poisson(torch.nn.Module):
    def __init__(self, n_marks: int) -> None:
        super().__init__()
        self.n_marks = n_marks
        self.raw_mu = torch.nn.Parameter(torch.full((n_marks,), -2.0))

    def log_likelihood(self, ev: Events, prefix: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        mu = F.softplus(self.raw_mu)
        d = ev.gaps[:, 1:]
        ll = (torch.log(mu)[ev.marks[:, 1:]] - mu.sum() * d) * ev.scored[:, 1:]
        logits = torch.log(mu).expand(*d.shape, self.n_marks)
        return ll, logits


class Hawkes(torch.nn.Module):
    def __init__(self, n_marks: int) -> None:
        super().__init__()
        self.n_marks = n_marks
        self.raw_mu = torch.nn.Parameter(torch.full((n_marks,), -3.0))
        self.raw_alpha = torch.nn.Parameter(torch.full((n_marks, n_marks), -3.0))
        self.raw_beta = torch.nn.Parameter(torch.tensor(0.0))

    def log_likelihood(self, ev: Events, prefix: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        mu, alpha = F.softplus(self.raw_mu), F.softplus(self.raw_alpha)
        beta = F.softplus(self.raw_beta) + 1e-3
        onehot = F.one_hot(ev.marks, self.n_marks).float() * ev.mask[..., None]
        gaps = ev.gaps
        a = onehot[:, 0]
        lls, logits = [], []
        for i in range(ev.times.shape[1] - 1):
            excite = a @ alpha.T  # (B, K): sum_m alpha_{k,m} A_i(m)
            logits.append(torch.log(mu + beta * excite))
            d = gaps[:, i + 1, None]
            decay = torch.exp(-beta * d)
            lam = mu + beta * excite * decay
            k = ev.marks[:, i + 1, None]
            integral = mu.sum() * d[:, 0] + (excite * (1 - decay)).sum(1)
            lls.append(torch.log(lam.gather(1, k))[:, 0] - integral)
            a = a * decay + onehot[:, i + 1]
        if not lls:
            empty = torch.zeros(ev.times.shape[0], 0)
            return empty, empty[..., None].expand(-1, -1, self.n_marks)
        ll = torch.stack(lls, 1) * ev.scored[:, 1:]
        return ll, torch.stack(logits, 1)
