"""Benchmark: the Seg-SPL pixel-similarity loss (Saab et al., Sec. 4.2.2), O(P D), against the O(P^2 D) pairwise sum.

Times forward + backward of :class:`spatialspec.losses.PixelSimilarityLoss` on 65,536 positive pixels x 16 channels
(goal: under 0.5 s on the 2-core CPU machine), then both the loss and a pairwise version on a size both can do
(2,048 positive pixels: a 2,048 x 2,048 similarity matrix), and prints the times, their ratio and the difference of
the two losses. Each figure is the median of ``--repeats`` runs after one untimed warm-up.

    .venv/bin/python scripts/bench_pixel_similarity.py [--pixels 65536] [--channels 16] [--pair-pixels 2048]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from spatialspec.losses import PixelSimilarityLoss


def pairwise_loss(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The O(P^2) reference: minus the mean off-diagonal entry of the positive pixels' cosine-similarity matrix."""
    flat = embeddings.movedim(1, -1).reshape(-1, embeddings.shape[1])[labels.reshape(-1) > 0.5]
    units = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-8)
    sims = units @ units.T
    p = units.shape[0]
    return -(sims.sum() - sims.diagonal().sum()) / (p * (p - 1))


def _time(fn, embeddings: torch.Tensor, labels: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median seconds of forward + backward, and the loss value."""
    times, value = [], float("nan")
    for i in range(repeats + 1):
        emb = embeddings.detach().clone().requires_grad_(True)
        start = time.perf_counter()
        loss = fn(emb, labels)
        loss.backward()
        elapsed = time.perf_counter() - start
        value = loss.item()
        if i:  # the first run is the warm-up
            times.append(elapsed)
    return statistics.median(times), value


def _batch(pixels: int, channels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of 64 x 64 images holding ``pixels`` positive pixels (all of them; 2 x 32 x 32 when 2,048)."""
    gen = torch.Generator().manual_seed(seed)
    side = 64 if pixels % 4096 == 0 else 32
    if pixels % (side * side):
        raise ValueError(f"--pixels must be a multiple of 1024, got {pixels}")
    embeddings = torch.randn(pixels // (side * side), channels, side, side, generator=gen)
    return embeddings, torch.ones(embeddings.shape[0], 1, side, side)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", type=int, default=65_536)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--pair-pixels", type=int, default=2_048)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loss_fn = PixelSimilarityLoss()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats} runs")

    embeddings, labels = _batch(args.pixels, args.channels, seed=0)
    seconds, value = _time(loss_fn, embeddings, labels, args.repeats)
    verdict = "OK" if seconds < 0.5 else "OVER the 0.5 s goal"
    print(f"PixelSimilarityLoss, {args.pixels:,} positive pixels x {args.channels} channels: forward + backward "
          f"{seconds * 1e3:.2f} ms ({verdict}); loss {value:.3e}")

    embeddings, labels = _batch(args.pair_pixels, args.channels, seed=1)
    fast, fast_value = _time(loss_fn, embeddings, labels, args.repeats)
    slow, slow_value = _time(pairwise_loss, embeddings, labels, args.repeats)
    print(f"{args.pair_pixels:,} positive pixels x {args.channels} channels: PixelSimilarityLoss {fast * 1e3:.2f} ms, "
          f"pairwise O(P^2) {slow * 1e3:.2f} ms, speed ratio {slow / fast:.1f}x; "
          f"|loss difference| {abs(fast_value - slow_value):.2e}")


if __name__ == "__main__":
    main()
